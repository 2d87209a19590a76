package gateway

import (
	"context"
	"math"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/multicast/polycom"
)

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
	buf := paging.NewLiveBuffer()
	h, err := r.g.Submit(context.Background(), paging.Page{ID: "live-801", Priority: output.PriorityLive, Zones: []string{"lobby"}, Audio: buf})
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
	if reason, err := h.Wait(ctx); err != nil || reason != paging.ReasonDone {
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
	ps := parseRTP(t, rtps)
	for i, p := range ps {
		if first := ps[0]; p.SSRC != first.SSRC || p.SequenceNumber != first.SequenceNumber+uint16(i) {
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
		for _, p := range <-l.CollectUntil(done) {
			got = append(got, p.Data)
		}
		out <- got
	}()
	return out
}
