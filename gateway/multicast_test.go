package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/multicast"
	"github.com/parkpage/parkpage/multicast/polycom"
	"github.com/parkpage/parkpage/relays"
)

// Integration: real config, multicast.Outputs, Pacer, multicast sockets on lo, the
// real relay Bank on test pins, and real multicast listeners joined on lo.

// Groups no other package's tests use, so parallel package runs on lo do not
// cross.
const (
	polycomGroup = "239.255.42.1"
	rtpGroup     = "239.255.42.2"
)

// pcmAudio is a tone encoded once per codec, as announce's renderer does.
type pcmAudio struct {
	pcm    []int16
	mu     sync.Mutex
	frames map[codec.Name][][]byte
}

func toneAudio(d time.Duration, hz float64) *pcmAudio {
	n := int(d * codec.SampleRate / time.Second)
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/codec.SampleRate))
	}
	return &pcmAudio{pcm: pcm, frames: map[codec.Name][][]byte{}}
}

func (a *pcmAudio) PCM() []int16 { return a.pcm }

func (a *pcmAudio) Frames(c codec.Name) ([][]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.frames[c]; ok {
		return f, nil
	}
	enc, err := codec.NewEncoder(c)
	if err != nil {
		return nil, err
	}
	var frames [][]byte
	for i := 0; i+codec.FrameSamples <= len(a.pcm); i += codec.FrameSamples {
		f, err := enc.Encode(nil, a.pcm[i:i+codec.FrameSamples])
		if err != nil {
			return nil, err
		}
		frames = append(frames, f)
	}
	a.frames[c] = frames
	return frames, nil
}

// mcastListener is a socket bound to group:0 and joined to the group on lo.
type mcastListener struct{ *mcasttest.Conn }

func listenLo(t *testing.T, group string) *mcastListener {
	t.Helper()
	return &mcastListener{mcasttest.Listen(t, group, 0)}
}

// collect reads datagrams in the background until stop returns true for the
// packets so far, or timeout. The result channel gets them all.
func (l *mcastListener) collect(t *testing.T, timeout time.Duration, stop func([][]byte) bool) <-chan [][]byte {
	out := make(chan [][]byte, 1)
	go func() {
		var got [][]byte
		buf := make([]byte, 2048)
		deadline := time.Now().Add(timeout)
		for !stop(got) {
			l.PC.SetReadDeadline(deadline)
			n, _, _, err := l.PC.ReadFrom(buf)
			if err != nil {
				t.Errorf("multicast listener on port %d: %v after %d packets", l.Port(), err, len(got))
				break
			}
			got = append(got, bytes.Clone(buf[:n]))
		}
		out <- got
	}()
	return out
}

type rig struct {
	g        *Gateway
	pin      *gpiotest.Pin
	sub      *events.Subscription
	polycom  *mcastListener
	rtp      *mcastListener
	relayCfg *config.Config
}

func newRig(t *testing.T, timing polycom.Timing) *rig {
	t.Helper()
	r := &rig{polycom: listenLo(t, polycomGroup), rtp: listenLo(t, rtpGroup)}
	yaml := fmt.Sprintf(`
relays:
  lobby-amp: { pin: GPIO17, lead: 50ms, hold: 100ms }
zones:
  lobby:
    description: Lobby phones and ceiling speakers
    relays: [lobby-amp]
    outputs:
      - { type: polycom, group: %s, port: %d, interface: lo, loopback: true, codec: g722, channel: 26, caller_id: Lobby, host_serial: 0x12345678 }
      - { type: rtp, group: %s, port: %d, interface: lo, loopback: true, codec: pcmu }
`, polycomGroup, r.polycom.Port(), rtpGroup, r.rtp.Port())
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r.pin = &gpiotest.Pin{N: "GPIO17"}
	bus := events.New()
	r.sub = bus.Subscribe(256)
	bank, err := relays.New(relays.ConfigOf(cfg), relays.Options{Resolve: func(name string) (gpio.PinOut, error) {
		if name != r.pin.N {
			return nil, fmt.Errorf("no pin %s", name)
		}
		return r.pin, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	pacer := multicast.NewPacer(nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { pacer.Run(ctx) })
	mc := multicast.NewOutputs(multicast.OutputsOptions{Pacer: pacer, PolycomTiming: timing})
	kinds := output.Kinds{config.OutputPolycom: mc.Polycom, config.OutputRTP: mc.RTP}
	r.g, err = New(cfg.Zones, Options{Outputs: kinds.Output, Relays: LeaseRelays(bank.Acquire), Events: bus,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.g.Close()
		bank.Close()
		cancel()
		wg.Wait()
	})
	return r
}

func (r *rig) pinLevel() gpio.Level {
	r.pin.Lock()
	defer r.pin.Unlock()
	return r.pin.L
}

// polycomEnds stops after n pages' End bursts (12 Ends each).
func polycomEnds(pages int) func([][]byte) bool {
	return func(got [][]byte) bool {
		ends := 0
		for _, b := range got {
			if len(b) > 0 && b[0] == byte(polycom.OpEnd) {
				ends++
			}
		}
		return ends >= 12*pages
	}
}

// A page to a zone with a Polycom and an RTP output reaches both listeners
// whole, with the relay on while the audio flows and off after its hold.
func TestMulticastZone(t *testing.T) {
	r := newRig(t, polycom.Timing{}) // the phones' real cadence
	audio := toneAudio(500*time.Millisecond, 440)
	g722Frames, _ := audio.Frames(codec.G722)
	pcmuFrames, _ := audio.Frames(codec.PCMU)

	var relayAtFirstPacket gpio.Level
	var once sync.Once
	firstPacket := func() { once.Do(func() { relayAtFirstPacket = r.pinLevel() }) }
	pcC := r.polycom.collect(t, 10*time.Second, func(got [][]byte) bool {
		if len(got) == 1 {
			firstPacket()
		}
		return polycomEnds(1)(got)
	})
	rtpC := r.rtp.collect(t, 10*time.Second, func(got [][]byte) bool {
		if len(got) == 1 {
			firstPacket()
		}
		return len(got) >= len(pcmuFrames)
	})

	h, err := r.g.Submit(context.Background(), paging.Page{ID: "park-704", Priority: output.PriorityPark, Zones: []string{"lobby"}, Audio: audio, Text: "Sales call on seven oh four"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if reason, err := h.Wait(ctx); err != nil || reason != paging.ReasonDone {
		t.Fatalf("page ended %q, %v", reason, err)
	}
	pkts, rtps := <-pcC, <-rtpC

	// Polycom: 31 Alerts, one Transmit per frame with the previous frame as
	// redundancy, 12 Ends; channel 26, caller ID from config, G.722.
	var alerts, transmits, ends int
	var prev uint32
	for i, b := range pkts {
		p, err := polycom.Parse(b)
		if err != nil {
			t.Fatalf("polycom packet %d: %v", i, err)
		}
		if p.Channel != 26 || p.CallerID != "Lobby" || p.HostSerial != 0x12345678 {
			t.Fatalf("polycom packet %d header %+v", i, p.Header)
		}
		switch p.Op {
		case polycom.OpAlert:
			alerts++
		case polycom.OpTransmit:
			k := transmits
			if p.Codec != polycom.CodecG722 || !bytes.Equal(p.Current, g722Frames[k]) {
				t.Fatalf("transmit %d: codec %s, frame equal %v", k, p.Codec, bytes.Equal(p.Current, g722Frames[k]))
			}
			if k > 0 && (p.SampleCount-prev != 160 || !bytes.Equal(p.Redundant, g722Frames[k-1])) {
				t.Fatalf("transmit %d: sample count step %d, redundancy wrong", k, p.SampleCount-prev)
			}
			prev = p.SampleCount
			transmits++
		case polycom.OpEnd:
			ends++
		}
	}
	if alerts != 31 || transmits != len(g722Frames) || ends != 12 {
		t.Errorf("polycom page: %d alerts, %d transmits, %d ends; want 31, %d, 12", alerts, transmits, ends, len(g722Frames))
	}

	// RTP: PCMU, one stream, steps of 1 and 160, marker on the first packet,
	// payloads exactly the rendered frames.
	if len(rtps) != len(pcmuFrames) {
		t.Fatalf("rtp: %d packets, want %d", len(rtps), len(pcmuFrames))
	}
	ps := parseRTP(t, rtps)
	for i, p := range ps {
		first := ps[0]
		if p.PayloadType != 0 || p.Marker != (i == 0) || p.SSRC != first.SSRC ||
			p.SequenceNumber != first.SequenceNumber+uint16(i) || p.Timestamp != first.Timestamp+uint32(160*i) {
			t.Fatalf("rtp packet %d header %+v (first %+v)", i, p.Header, first.Header)
		}
		if !bytes.Equal(p.Payload, pcmuFrames[i]) {
			t.Fatalf("rtp packet %d payload differs from the rendered frame", i)
		}
	}

	if relayAtFirstPacket != gpio.High {
		t.Error("relay was off when the first packet arrived")
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.pinLevel() != gpio.Low {
		if time.Now().After(deadline) {
			t.Fatal("relay still on after the page and its hold")
		}
		time.Sleep(10 * time.Millisecond)
	}

	zs := r.g.Zones()
	if len(zs) != 1 || len(zs[0].Outputs) != 2 || zs[0].Outputs[0].Type != "polycom" ||
		zs[0].Outputs[0].Address != fmt.Sprintf("%s:%d", polycomGroup, r.polycom.Port()) || zs[0].Outputs[1].Codec != "pcmu" {
		t.Errorf("zones: %+v", zs)
	}
}

// An emergency during a park announcement, over the wire: the park page is
// cut with its End burst on channel 26, the emergency goes out whole on the
// emergency channel 50, then the park announcement is replayed on 26. On the
// RTP group the three streams follow each other without interleaving.
func TestMulticastEmergencyPreemptsPark(t *testing.T) {
	fast := polycom.Timing{AlertInterval: 2 * time.Millisecond, EndDelay: 5 * time.Millisecond, EndInterval: 2 * time.Millisecond}
	r := newRig(t, fast)
	park := toneAudio(time.Second, 440)
	emergency := toneAudio(200*time.Millisecond, 880)
	parkFrames, _ := park.Frames(codec.G722)
	emFrames, _ := emergency.Frames(codec.G722)
	parkTransmits := make(chan struct{})
	var once sync.Once
	pcC := r.polycom.collect(t, 10*time.Second, func(got [][]byte) bool {
		n := 0
		for _, b := range got {
			if len(b) > 0 && b[0] == byte(polycom.OpTransmit) {
				n++
			}
		}
		if n >= 10 {
			once.Do(func() { close(parkTransmits) })
		}
		return polycomEnds(3)(got)
	})
	rtpC := r.rtp.collect(t, 10*time.Second, func(got [][]byte) bool {
		// Stop when the replay (third stream) is complete.
		ssrcs, last := 0, uint32(0)
		n := 0
		for _, b := range got {
			var h pionrtp.Header
			if _, err := h.Unmarshal(b); err != nil {
				continue
			}
			if ssrcs == 0 || h.SSRC != last {
				ssrcs, last, n = ssrcs+1, h.SSRC, 0
			}
			n++
		}
		return ssrcs == 3 && n == len(parkFrames)
	})

	p, err := r.g.Submit(context.Background(), paging.Page{ID: "park", Priority: output.PriorityPark, Zones: []string{"lobby"}, Audio: park,
		Replay: true, StillWanted: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-parkTransmits:
	case <-time.After(10 * time.Second):
		t.Fatal("park page never reached the listener")
	}
	e, err := r.g.Submit(context.Background(), paging.Page{ID: "fire", Priority: output.PriorityEmergency, Zones: []string{"lobby"}, Audio: emergency})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range []*paging.Handle{e, p} {
		if reason, err := h.Wait(ctx); err != nil || reason != paging.ReasonDone {
			t.Fatalf("page %s ended %q, %v", h.ID(), reason, err)
		}
	}
	pkts, rtps := <-pcC, <-rtpC

	// Polycom: runs of (channel, op) must be: 26 A T E, 50 A T E, 26 A T E.
	type run struct {
		ch     uint8
		op     polycom.Op
		n      int
		frames [][]byte
	}
	var runs []run
	for i, b := range pkts {
		pk, err := polycom.Parse(b)
		if err != nil {
			t.Fatalf("polycom packet %d: %v", i, err)
		}
		if len(runs) == 0 || runs[len(runs)-1].ch != pk.Channel || runs[len(runs)-1].op != pk.Op {
			runs = append(runs, run{ch: pk.Channel, op: pk.Op})
		}
		last := &runs[len(runs)-1]
		last.n++
		if pk.Op == polycom.OpTransmit {
			last.frames = append(last.frames, bytes.Clone(pk.Current))
		}
	}
	var shape []string
	for _, r := range runs {
		shape = append(shape, fmt.Sprintf("%d:%s", r.ch, r.op))
	}
	want := fmt.Sprint([]string{"26:alert", "26:transmit", "26:end", "50:alert", "50:transmit", "50:end", "26:alert", "26:transmit", "26:end"})
	if got := fmt.Sprint(shape); got != want {
		t.Fatalf("polycom session runs %s, want %s", got, want)
	}
	if cut := runs[1].n; cut < 10 || cut >= len(parkFrames) {
		t.Errorf("park page sent %d of %d frames before the cut", cut, len(parkFrames))
	}
	if runs[2].n != 12 || runs[5].n != 12 || runs[8].n != 12 {
		t.Errorf("End bursts %d, %d, %d; want 12 each", runs[2].n, runs[5].n, runs[8].n)
	}
	if !equalFrames(runs[4].frames, emFrames) || !equalFrames(runs[7].frames, parkFrames) {
		t.Error("emergency or replayed park audio differs from what was rendered")
	}

	// RTP: three streams, each contiguous.
	seen := map[uint32]bool{}
	var order []uint32
	for _, b := range rtps {
		var h pionrtp.Header
		if _, err := h.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if len(order) == 0 || order[len(order)-1] != h.SSRC {
			if seen[h.SSRC] {
				t.Fatalf("rtp streams interleave: SSRC %08x came back", h.SSRC)
			}
			seen[h.SSRC] = true
			order = append(order, h.SSRC)
		}
	}
	if len(order) != 3 {
		t.Errorf("rtp: %d streams, want 3 (park, emergency, park replay)", len(order))
	}

	evs := map[string][]string{}
	for len(r.sub.C()) > 0 {
		ev := <-r.sub.C()
		evs[ev.Page] = append(evs[ev.Page], fmt.Sprintf("%s %s", ev.Type, ev.Reason))
	}
	checkEvents(t, evs["park"],
		"page.started ",
		"page.preempted preempted by emergency page fire",
		"page.started replay",
		"page.ended done")
	checkEvents(t, evs["fire"], "page.started ", "page.ended done")
}

func equalFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
