package paging

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
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

// A reader that starts after the talker has begun (an output still setting
// up, or waiting for its zone's first-audio moment) plays the page from
// its start, delayed, not from the live edge; the margin-trimming keeps
// that delay (cutting it would drop words), and a reader that had not
// started when the talker finished still plays the page.
func TestLiveReaderJoinsLateFromStart(t *testing.T) {
	for _, pull := range []bool{true, false} {
		b := NewLiveBuffer()
		b.Write(ramp(1, 100)) // before Go: not part of the page
		b.Go(nil)
		b.Write(ramp(1000, 5*codec.FrameSamples)) // 100 ms before the reader starts
		r := b.NewReader()
		f := make([]int16, codec.FrameSamples)
		read := func() {
			t.Helper()
			if pull {
				if !r.Read(f) {
					t.Fatal("Read: over")
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := r.Next(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		read()
		if f[0] != 1000 || f[319] != 1319 {
			t.Fatalf("pull %v: first frame %d..%d, want the page's start 1000..1319", pull, f[0], f[319])
		}
		// A second and more of steady reading: the 100 ms delay stays (80
		// ms left after each read).
		next := int16(1000 + 5*codec.FrameSamples)
		for range 2 * liveTrimAt {
			b.Write(ramp(int(next), codec.FrameSamples))
			next += codec.FrameSamples
			read()
		}
		if want := int64(4 * codec.FrameSamples); b.w-r.(*liveReader).r != want {
			t.Fatalf("pull %v: delay after two windows %d samples, want %d", pull, b.w-r.(*liveReader).r, want)
		}
	}

	// Closed before the reader started: it plays all of it.
	b := NewLiveBuffer()
	b.Go(nil)
	b.Write(ramp(1, 2*codec.FrameSamples))
	b.Close()
	r := b.NewReader()
	if r.Over() {
		t.Fatal("over before playing the page")
	}
	f := make([]int16, codec.FrameSamples)
	for k := range 2 {
		if !r.Read(f) || int(f[0]) != 1+k*codec.FrameSamples {
			t.Fatalf("frame %d: %d", k, f[0])
		}
	}
	if !r.Over() || r.Read(f) {
		t.Fatal("after the page: want over")
	}

	// With a prelude, the page starts where the prelude ends: what the
	// talker said during the chime is not played, whenever the reader
	// starts.
	b = NewLiveBuffer()
	b.Go(ramp(30000, codec.FrameSamples))
	b.Write(ramp(1, codec.FrameSamples))      // during the chime
	b.Write(ramp(2000, 3*codec.FrameSamples)) // after it
	r = b.NewReader()
	if !r.Read(f) || f[0] != 30000 {
		t.Fatalf("prelude: %d", f[0])
	}
	if !r.Read(f) || f[0] != 2000 {
		t.Fatalf("after the prelude: %d, want 2000", f[0])
	}
}
