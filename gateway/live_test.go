package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"periph.io/x/conn/v3/gpio"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/multicast/polycom"
)

func ramp(start, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(start + i)
	}
	return s
}

func isSilent(f []int16) bool {
	for _, v := range f {
		if v != 0 {
			return false
		}
	}
	return true
}

// The pull reader: silence before Go, the prelude whole, then the talker
// from the live edge (what was said during the prelude is skipped), one
// whole frame at a time, silence while a frame is late, drained on Close.
func TestLiveReaderRead(t *testing.T) {
	b := NewLiveBuffer()
	r := b.NewReader()
	f := make([]int16, codec.FrameSamples)
	if !r.Read(f) || !isSilent(f) {
		t.Fatal("before Go: want silence")
	}
	if n, _ := b.Started(); n != 1 {
		t.Fatalf("started = %d", n)
	}
	b.Write(ramp(1, 100)) // before Go: never played
	pre := ramp(1000, 400)
	b.Go(pre)
	if !r.Read(f) || f[0] != 1000 || f[319] != 1319 {
		t.Fatalf("prelude frame 1: %d..%d", f[0], f[319])
	}
	b.Write(ramp(1, 50)) // during the prelude: skipped
	if !r.Read(f) || f[0] != 1320 || f[79] != 1399 || !isSilent(f[80:]) {
		t.Fatalf("prelude frame 2 (padded): %d %d %d", f[0], f[79], f[80])
	}
	// Live edge: nothing yet, then half a frame (still priming), then a frame.
	if !r.Read(f) || !isSilent(f) {
		t.Fatal("live edge without audio: want silence")
	}
	b.Write(ramp(5000, 160))
	if !r.Read(f) || !isSilent(f) {
		t.Fatal("half a frame: want silence while priming")
	}
	b.Write(ramp(5160, 480))
	if !r.Read(f) || f[0] != 5000 || f[319] != 5319 {
		t.Fatalf("first live frame: %d..%d", f[0], f[319])
	}
	if !r.Read(f) || f[0] != 5320 || f[319] != 5639 {
		t.Fatalf("second live frame: %d..%d", f[0], f[319])
	}
	// Late: silence, and the next frame waits until whole.
	if !r.Read(f) || !isSilent(f) {
		t.Fatal("late frame: want silence")
	}
	b.Write(ramp(5640, 100))
	b.Close()
	if r.Over() {
		t.Fatal("over with 100 samples left")
	}
	if !r.Read(f) || f[0] != 5640 || f[99] != 5739 || !isSilent(f[100:]) {
		t.Fatalf("tail after close: %d %d", f[0], f[99])
	}
	if !r.Over() || r.Read(f) {
		t.Fatal("after the tail: want over")
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("Done not closed")
	}
	if _, err := b.Frames(codec.PCMU); !errors.Is(err, output.ErrLiveAudio) {
		t.Errorf("Frames: %v", err)
	}
}

// Margin a reader has not needed for a whole window is dropped, so one
// burst of jitter does not add latency for the rest of the page.
func TestLiveReaderTrimsMargin(t *testing.T) {
	b := NewLiveBuffer()
	r := b.NewReader()
	f := make([]int16, codec.FrameSamples)
	b.Go(nil)
	r.Read(f)                                    // joins the live edge
	b.Write(make([]int16, 3*codec.FrameSamples)) // a burst: 60 ms at once
	for i := range liveTrimAt {
		b.Write(make([]int16, codec.FrameSamples))
		r.Read(f)
		if i == 0 {
			if left := b.w - r.(*liveReader).r; left != 3*codec.FrameSamples {
				t.Fatalf("margin after the burst = %d", left)
			}
		}
	}
	if left := b.w - r.(*liveReader).r; left != liveSlack {
		t.Fatalf("margin after a window = %d, want %d", left, liveSlack)
	}
}

// A reader that joins late, or falls far behind, skips to the edge.
func TestLiveReaderOverrun(t *testing.T) {
	b := NewLiveBuffer()
	r := b.NewReader()
	f := make([]int16, codec.FrameSamples)
	b.Go(nil)
	r.Read(f)
	b.Write(ramp(0, liveKeep+1000))
	if !r.Read(f) {
		t.Fatal("read after overrun")
	}
	if left := b.w - r.(*liveReader).r; left != 0 {
		t.Fatalf("after overrun %d samples left, want the edge", left)
	}
}

// The push reader (SIP legs, sound cards): the prelude at real-time pace,
// then the talker as whole frames arrive, io.EOF at the end.
func TestLiveReaderNext(t *testing.T) {
	b := NewLiveBuffer()
	r := b.NewReader()
	f := make([]int16, codec.FrameSamples)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() { got <- r.Next(ctx, f) }()
	select {
	case err := <-got:
		t.Fatalf("Next returned %v before Go", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.Go(ramp(1, 3*codec.FrameSamples))
	if err := <-got; err != nil || f[0] != 1 {
		t.Fatalf("prelude frame 1: %v %d", err, f[0])
	}
	t0 := time.Now()
	for k := 1; k < 3; k++ {
		if err := r.Next(ctx, f); err != nil || int(f[0]) != 1+k*codec.FrameSamples {
			t.Fatalf("prelude frame %d: %v %d", k+1, err, f[0])
		}
	}
	if d := time.Since(t0); d < 30*time.Millisecond {
		t.Errorf("prelude frames 2 and 3 came after %v: not paced", d)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		b.Write(ramp(7000, 2*codec.FrameSamples))
		b.Close()
	}()
	for k := range 2 {
		if err := r.Next(ctx, f); err != nil || int(f[0]) != 7000+k*codec.FrameSamples {
			t.Fatalf("live frame %d: %v %d", k, err, f[0])
		}
	}
	if err := r.Next(ctx, f); !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v", err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	b2 := NewLiveBuffer()
	if err := b2.NewReader().Next(cctx, f); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// tone returns 20 ms chunks of a sine at hz.
func toneChunk(k int, hz float64) []int16 {
	f := make([]int16, codec.FrameSamples)
	for i := range f {
		n := k*codec.FrameSamples + i
		f[i] = int16(8000 * math.Sin(2*math.Pi*hz*float64(n)/codec.SampleRate))
	}
	return f
}

// goertzel is the relative power of hz in x (sample rate sr).
func goertzel(x []int16, hz float64, sr int) float64 {
	w := 2 * math.Pi * hz / float64(sr)
	c := 2 * math.Cos(w)
	var s1, s2, e float64
	for _, v := range x {
		s := float64(v) + c*s1 - s2
		s2, s1 = s1, s
		e += float64(v) * float64(v)
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	if e == 0 {
		return 0
	}
	return p / (e * float64(len(x)) / 2)
}

// A live page on a zone with Polycom and RTP outputs over lo: both
// listeners get the talker's tone as it is spoken, the Polycom page on the
// live (priority) channel with Alerts, Transmits and the End burst, the RTP
// stream in order; the relay holds while the talker talks.
func TestLivePageMulticast(t *testing.T) {
	fast := polycom.Timing{AlertCount: 3, AlertInterval: 5 * time.Millisecond, EndDelay: 5 * time.Millisecond, EndInterval: 2 * time.Millisecond}
	r := newRig(t, fast)
	pcC := r.polycom.collect(t, 10*time.Second, polycomEnds(1))
	rtpDone := make(chan struct{})
	rtpC := collectUntil(r.rtp, rtpDone)
	buf := NewLiveBuffer()
	h, err := r.g.Submit(context.Background(), Page{ID: "live-801", Priority: output.PriorityLive, Zones: []string{"lobby"}, Audio: buf})
	if err != nil {
		t.Fatal(err)
	}
	// The talker: 1 s of 1 kHz in 20 ms chunks, in real time, once both
	// outputs are reading.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, ch := buf.Started()
		if n == 2 {
			break
		}
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("%d readers started", n)
		}
	}
	if r.pinLevel() != gpio.High {
		t.Error("relay off while the live page plays")
	}
	buf.Go(nil)
	tick := time.NewTicker(20 * time.Millisecond)
	for k := range 50 {
		<-tick.C
		buf.Write(toneChunk(k, 1000))
	}
	tick.Stop()
	buf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if reason, err := h.Wait(ctx); err != nil || reason != ReasonDone {
		t.Fatalf("page ended %q, %v", reason, err)
	}
	// The RTP stream has ended; let the last packets land.
	time.Sleep(50 * time.Millisecond)
	close(rtpDone)
	pkts, rtps := <-pcC, <-rtpC

	var pcm []int16
	dec, _ := codec.NewDecoder(codec.G722)
	var alerts, transmits, ends int
	for i, b := range pkts {
		p, err := polycom.Parse(b)
		if err != nil {
			t.Fatalf("polycom packet %d: %v", i, err)
		}
		if p.Channel != 49 {
			t.Fatalf("polycom packet %d on channel %d, want the live (priority) channel 49", i, p.Channel)
		}
		switch p.Op {
		case polycom.OpAlert:
			alerts++
		case polycom.OpTransmit:
			transmits++
			pcm, _ = dec.Decode(pcm, p.Current)
		case polycom.OpEnd:
			ends++
		}
	}
	if alerts != 3 || ends != 12 || transmits < 45 || transmits > 150 {
		t.Errorf("polycom: %d alerts, %d transmits, %d ends", alerts, transmits, ends)
	}
	if p := goertzel(pcm, 1000, codec.SampleRate); p < 0.5 {
		t.Errorf("polycom audio: 1 kHz holds %.2f of the power, want most", p)
	}

	var rpcm []int16
	udec, _ := codec.NewDecoder(codec.PCMU)
	var first pionrtp.Packet
	for i, b := range rtps {
		var p pionrtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatalf("rtp packet %d: %v", i, err)
		}
		if i == 0 {
			first = p
		}
		if p.SSRC != first.SSRC || p.SequenceNumber != first.SequenceNumber+uint16(i) {
			t.Fatalf("rtp packet %d out of sequence", i)
		}
		rpcm, _ = udec.Decode(rpcm, p.Payload)
	}
	if len(rtps) < 45 {
		t.Errorf("rtp: %d packets", len(rtps))
	}
	if p := goertzel(rpcm, 1000, codec.SampleRate); p < 0.5 {
		t.Errorf("rtp audio: 1 kHz holds %.2f of the power", p)
	}
}

// collectUntil reads datagrams until done is closed.
func collectUntil(l *mcastListener, done <-chan struct{}) <-chan [][]byte {
	out := make(chan [][]byte, 1)
	go func() {
		var got [][]byte
		buf := make([]byte, 2048)
		for {
			select {
			case <-done:
				out <- got
				return
			default:
			}
			l.pc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, _, _, err := l.pc.ReadFrom(buf)
			if err == nil {
				got = append(got, bytes.Clone(buf[:n]))
			}
		}
	}()
	return out
}
