package multicast

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/multicast/polycom"
)

// render encodes pcm (16 kHz) into 20 ms frames of the named codec.
func render(t testing.TB, name codec.Name, pcm []int16) [][]byte {
	t.Helper()
	enc, err := codec.NewEncoder(name)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for i := 0; i+codec.FrameSamples <= len(pcm); i += codec.FrameSamples {
		f, err := enc.Encode(nil, pcm[i:i+codec.FrameSamples])
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	return frames
}

// decodeAll decodes payloads in order with a fresh decoder.
func decodeAll(t testing.TB, name codec.Name, payloads [][]byte) []int16 {
	t.Helper()
	dec, err := codec.NewDecoder(name)
	if err != nil {
		t.Fatal(err)
	}
	var pcm []int16
	for _, p := range payloads {
		if pcm, err = dec.Decode(pcm, p); err != nil {
			t.Fatal(err)
		}
	}
	return pcm
}

func cloneFrames(frames [][]byte) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = bytes.Clone(f)
	}
	return out
}

const recvTimeout = 5 * time.Second

// fastTiming keeps the packet counts but shortens the Alert and End spacing,
// so tests other than TestPolycomPage (which uses the real cadence) run quickly.
var fastTiming = polycom.Timing{AlertInterval: 2 * time.Millisecond, EndDelay: 5 * time.Millisecond, EndInterval: 2 * time.Millisecond}

// receivePolycom reads one page: until the 12th End packet.
func receivePolycom(t *testing.T, l *listener) []polycom.Packet {
	t.Helper()
	var pkts []polycom.Packet
	for ends := 0; ends < 12; {
		p, err := polycom.Parse(l.next(t, recvTimeout))
		if err != nil {
			t.Fatal(err)
		}
		if p.Op == polycom.OpEnd {
			ends++
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// checkPolycomPage checks a received page against what was sent: 31 Alerts,
// one Transmit per sent frame (when complete), 12 Ends; header fields; the
// sample count steps by 160; the redundant frame is the previous one. It
// returns the Current frames in order.
func checkPolycomPage(t *testing.T, pkts []polycom.Packet, opts PolycomOptions, sent [][]byte, complete bool) [][]byte {
	t.Helper()
	var alerts, ends int
	var cur [][]byte
	var count uint32
	for i, p := range pkts {
		if int(p.Channel) != opts.Channel || p.HostSerial != opts.HostSerial || p.CallerID != opts.CallerID {
			t.Fatalf("packet %d header %+v", i, p.Header)
		}
		switch p.Op {
		case polycom.OpAlert:
			if len(cur) > 0 || ends > 0 {
				t.Fatalf("packet %d: Alert after the audio", i)
			}
			alerts++
		case polycom.OpTransmit:
			if alerts != 31 || ends > 0 {
				t.Fatalf("packet %d: Transmit after %d Alerts and %d Ends", i, alerts, ends)
			}
			k := len(cur)
			if p.Codec != opts.Codec || p.Flags != 0 {
				t.Fatalf("transmit %d: codec %s flags %d", k, p.Codec, p.Flags)
			}
			if k == 0 && p.Redundant != nil {
				t.Fatal("first Transmit carries a redundant frame")
			}
			if k > 0 {
				if p.SampleCount-count != 160 {
					t.Fatalf("transmit %d: sample count step %d, want 160", k, p.SampleCount-count)
				}
				if !bytes.Equal(p.Redundant, cur[k-1]) {
					t.Fatalf("transmit %d: redundant frame is not the previous frame", k)
				}
			}
			if !bytes.Equal(p.Current, sent[k]) {
				t.Fatalf("transmit %d: frame differs from the one sent", k)
			}
			count = p.SampleCount
			cur = append(cur, p.Current)
		case polycom.OpEnd:
			ends++
		}
	}
	if alerts != 31 || ends != 12 || (complete && len(cur) != len(sent)) {
		t.Fatalf("received %d Alerts, %d Transmits, %d Ends; want 31, %d, 12", alerts, len(cur), ends, len(sent))
	}
	// The receive-side reassembler must see one clean page.
	r := polycom.Reassembler{Channel: opts.Channel}
	var evs []polycom.Event
	now := time.Now()
	for i := range pkts {
		evs = r.Push(evs, now, &pkts[i])
	}
	if len(evs) != len(cur)+2 || evs[0].Kind != polycom.EventStart || evs[len(evs)-1].Kind != polycom.EventEnd ||
		evs[len(evs)-1].Reason != polycom.EndPacket || r.Stats.Recovered+r.Stats.Lost != 0 {
		t.Fatalf("reassembler: %d events, stats %+v", len(evs), r.Stats)
	}
	return cur
}

func TestPolycomPage(t *testing.T) {
	t.Parallel()
	pacer := startPacer(t, nil)
	pcm := sweep(25 * codec.FrameSamples) // 0.5 s
	tests := []struct {
		name    string
		group   string
		codec   codec.Name
		pcodec  polycom.Codec
		minCorr float64
	}{
		{"g711u", "239.77.1.1", codec.PCMU, polycom.CodecG711U, 0.99},
		{"g722", "239.77.1.2", codec.G722, polycom.CodecG722, 0.99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := listen(t, tt.group)
			out, err := NewPolycomOutput(pacer, loSender(t, tt.group, l.port), PolycomOptions{
				Channel: 26, CallerID: "parkpage", Codec: tt.pcodec, HostSerial: 0x12345678})
			if err != nil {
				t.Fatal(err)
			}
			frames := render(t, tt.codec, pcm)
			keep := cloneFrames(frames)
			type played struct {
				st  Stats
				err error
			}
			done := make(chan played, 1)
			go func() {
				st, err := out.Play(context.Background(), frames)
				done <- played{st, err}
			}()
			pkts := receivePolycom(t, l)
			res := <-done
			if res.err != nil {
				t.Fatalf("Play: %v", res.err)
			}
			if res.st.Packets != 31+25+12 || res.st.Packets != len(pkts) || res.st.Stopped {
				t.Fatalf("stats %+v, received %d", res.st, len(pkts))
			}
			t.Logf("stats %+v", res.st)
			got := checkPolycomPage(t, pkts, out.opts, keep, true)
			for i := range frames {
				if !bytes.Equal(frames[i], keep[i]) {
					t.Fatalf("Play modified frame %d", i)
				}
			}
			if c := bestCorrelation(pcm, decodeAll(t, tt.codec, got), 200, 320); c < tt.minCorr {
				t.Fatalf("decoded audio correlation %.4f, want > %.2f", c, tt.minCorr)
			}
			l.expectSilence(t, 100*time.Millisecond)
		})
	}
}

func TestPolycomCancelSendsEnds(t *testing.T) {
	t.Parallel()
	pacer := startPacer(t, nil)
	const group = "239.77.1.3"
	l := listen(t, group)
	opts := PolycomOptions{Channel: 50, CallerID: "Emergency", HostSerial: 1, Timing: fastTiming}
	out, err := NewPolycomOutput(pacer, loSender(t, group, l.port), opts)
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, 500) // 10 s if not cut short
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte(i)}, 160)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type played struct {
		st  Stats
		err error
	}
	done := make(chan played, 1)
	go func() {
		st, err := out.Play(ctx, frames)
		done <- played{st, err}
	}()
	var pkts []polycom.Packet
	transmits := 0
	for transmits < 5 {
		p, err := polycom.Parse(l.next(t, recvTimeout))
		if err != nil {
			t.Fatal(err)
		}
		if p.Op == polycom.OpTransmit {
			transmits++
		}
		pkts = append(pkts, p)
	}
	cancel() // pickup: stop the page
	pkts = append(pkts, receivePolycom(t, l)...)
	res := <-done
	if !errors.Is(res.err, context.Canceled) || !res.st.Stopped {
		t.Fatalf("Play after cancel: %+v, %v", res.st, res.err)
	}
	got := checkPolycomPage(t, pkts, opts, frames, false)
	if len(got) >= len(frames) || res.st.Packets != len(pkts) {
		t.Fatalf("%d of %d frames sent; stats %+v, received %d", len(got), len(frames), res.st, len(pkts))
	}
	if last := pkts[len(pkts)-1]; last.Op != polycom.OpEnd {
		t.Fatalf("last packet %s", last.Op)
	}
	l.expectSilence(t, 100*time.Millisecond)
}

// receiveRTP reads n packets.
func receiveRTP(t *testing.T, l *listener, n int) []pionrtp.Packet {
	t.Helper()
	pkts := make([]pionrtp.Packet, n)
	for i := range pkts {
		if err := pkts[i].Unmarshal(l.next(t, recvTimeout)); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	return pkts
}

// checkRTP checks marker, payload type, SSRC, sequence and timestamp steps
// and payloads, and returns the payloads.
func checkRTP(t *testing.T, pkts []pionrtp.Packet, pt uint8, step uint32, sent [][]byte) [][]byte {
	t.Helper()
	var payloads [][]byte
	for i, p := range pkts {
		if p.Version != 2 || p.PayloadType != pt || p.Marker != (i == 0) || p.Padding || p.Extension || len(p.CSRC) != 0 {
			t.Fatalf("packet %d header %v", i, p.Header)
		}
		if i > 0 {
			prev := pkts[i-1].Header
			if p.SSRC != prev.SSRC || p.SequenceNumber != prev.SequenceNumber+1 || p.Timestamp != prev.Timestamp+step {
				t.Fatalf("packet %d: ssrc %#x seq %d ts %d after ssrc %#x seq %d ts %d", i, p.SSRC, p.SequenceNumber, p.Timestamp,
					prev.SSRC, prev.SequenceNumber, prev.Timestamp)
			}
		}
		if !bytes.Equal(p.Payload, sent[i]) {
			t.Fatalf("packet %d: payload differs from the frame sent", i)
		}
		payloads = append(payloads, p.Payload)
	}
	return payloads
}

func TestRTPPage(t *testing.T) {
	t.Parallel()
	pacer := startPacer(t, nil)
	pcm := sweep(15 * codec.FrameSamples)
	tests := []struct {
		group   string
		codec   codec.Name
		pt      uint8 // option; 0 = default
		wantPT  uint8
		step    uint32
		minCorr float64
	}{
		{"239.77.2.1", codec.PCMU, 0, 0, 160, 0.99},
		{"239.77.2.2", codec.PCMA, 0, 8, 160, 0.99},
		{"239.77.2.3", codec.G722, 0, 9, 160, 0.99},
		{"239.77.2.4", codec.Opus, 0, 111, 960, 0.9},
		{"239.77.2.5", codec.Opus, 101, 101, 960, 0.9},
	}
	for _, tt := range tests {
		t.Run(string(tt.codec), func(t *testing.T) {
			t.Parallel()
			l := listen(t, tt.group)
			out, err := NewRTPOutput(pacer, loSender(t, tt.group, l.port), RTPOptions{Codec: tt.codec, PayloadType: tt.pt})
			if err != nil {
				t.Fatal(err)
			}
			frames := render(t, tt.codec, pcm)
			done := make(chan Stats, 1)
			go func() {
				st, err := out.Play(context.Background(), frames)
				if err != nil {
					t.Errorf("Play: %v", err)
				}
				done <- st
			}()
			got := checkRTP(t, receiveRTP(t, l, len(frames)), tt.wantPT, tt.step, frames)
			if st := <-done; st.Packets != len(frames) {
				t.Fatalf("stats %+v", st)
			}
			c := bestCorrelation(pcm, decodeAll(t, tt.codec, got), 400, 960)
			t.Logf("%s: decoded correlation %.4f", tt.codec, c)
			if c < tt.minCorr {
				t.Fatalf("decoded audio correlation %.4f, want > %.2f", c, tt.minCorr)
			}
			l.expectSilence(t, 100*time.Millisecond)
		})
	}
}

func TestRTPCancelStops(t *testing.T) {
	t.Parallel()
	pacer := startPacer(t, nil)
	const group = "239.77.2.9"
	l := listen(t, group)
	out, err := NewRTPOutput(pacer, loSender(t, group, l.port), RTPOptions{Codec: codec.PCMU})
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, 500)
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte(i)}, 160)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		st, err := out.Play(ctx, frames)
		done <- Result{Stats: st, Err: err}
	}()
	pkts := receiveRTP(t, l, 5)
	cancel()
	res := <-done
	if !errors.Is(res.Err, context.Canceled) || !res.Stopped || res.Packets >= len(frames) {
		t.Fatalf("Play after cancel: %+v", res)
	}
	pkts = append(pkts, receiveRTP(t, l, res.Packets-5)...)
	checkRTP(t, pkts, 0, 160, frames)
	l.expectSilence(t, 100*time.Millisecond)
}

// TestOnePageManyOutputs plays one page to a Polycom group and two RTP
// groups at once from the same frames, the RTP ones on one shared socket.
func TestOnePageManyOutputs(t *testing.T) {
	t.Parallel()
	pacer := startPacer(t, nil)
	pcm := sweep(10 * codec.FrameSamples)
	frames := render(t, codec.PCMU, pcm)
	keep := cloneFrames(frames)
	lp, l1, l2 := listen(t, "239.77.3.1"), listen(t, "239.77.3.2"), listen(t, "239.77.3.3")
	s1 := loSender(t, "239.77.3.2", l1.port)
	s2, err := s1.Share("239.77.3.3", l2.port)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	popts := PolycomOptions{Channel: 27, CallerID: "Sales", HostSerial: 9, Timing: fastTiming}
	po, err := NewPolycomOutput(pacer, loSender(t, "239.77.3.1", lp.port), popts)
	if err != nil {
		t.Fatal(err)
	}
	r1, err1 := NewRTPOutput(pacer, s1, RTPOptions{Codec: codec.PCMU})
	r2, err2 := NewRTPOutput(pacer, s2, RTPOptions{Codec: codec.PCMU})
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errs := make(chan error, 3)
	go func() { _, err := po.Play(ctx, frames); errs <- err }()
	go func() { _, err := r1.Play(ctx, frames); errs <- err }()
	go func() { _, err := r2.Play(ctx, frames); errs <- err }()
	a := checkRTP(t, receiveRTP(t, l1, len(frames)), 0, 160, keep)
	b := checkRTP(t, receiveRTP(t, l2, len(frames)), 0, 160, keep)
	checkPolycomPage(t, receivePolycom(t, lp), popts, keep, true)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(a) != len(b) {
		t.Fatal("outputs differ")
	}
	for i := range frames {
		if !bytes.Equal(frames[i], keep[i]) {
			t.Fatalf("frame %d modified", i)
		}
	}
}

func TestOutputOptions(t *testing.T) {
	p := NewPacer(nil)
	s := loSender(t, "239.77.4.1", 5004)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"polycom channel", second(NewPolycomOutput(p, s, PolycomOptions{Channel: 51})), "channel 51"},
		{"polycom g711a", second(NewPolycomOutput(p, s, PolycomOptions{Channel: 1, Codec: polycom.CodecG711A})), "codec g711a"},
		{"rtp codec", second(NewRTPOutput(p, s, RTPOptions{Codec: "g729"})), "codec"},
		{"rtp static pt", second(NewRTPOutput(p, s, RTPOptions{Codec: codec.PCMU, PayloadType: 8})), "payload_type 8"},
		{"rtp dynamic range", second(NewRTPOutput(p, s, RTPOptions{Codec: codec.Opus, PayloadType: 95})), "payload_type 95"},
	}
	for _, tt := range tests {
		if tt.err == nil || !bytes.Contains([]byte(tt.err.Error()), []byte(tt.want)) {
			t.Errorf("%s: error %v, want %q", tt.name, tt.err, tt.want)
		}
	}
	if _, err := NewPolycomOutput(p, s, PolycomOptions{Channel: 1, Codec: polycom.CodecG711A, AllowG711A: true}); err != nil {
		t.Errorf("g711a opt-in refused: %v", err)
	}
	po, _ := NewPolycomOutput(p, s, PolycomOptions{Channel: 1})
	if _, err := po.Play(context.Background(), [][]byte{make([]byte, 100)}); err == nil {
		t.Error("Polycom Play accepted a 100-byte frame")
	}
}

func second[T any](_ T, err error) error { return err }
