package pacer

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkWakeup measures one wake-up of the loop with every stream due:
// each stream appends a 172-byte packet (PCMU RTP's size) and the batches
// go out with sendmmsg to a receiver on 127.0.0.1. "sockets=shared" is
// multicast pages on one Sender socket; "sockets=own" is call legs, each
// with its own socket. allocs/op must be 0: the per-packet path allocates
// nothing once the buffers have grown. "send=io_uring" sends a wake-up's
// packets with one io_uring_enter whatever their sockets; "send=sendmmsg"
// with one sendmmsg per socket (the fallback). "send=ahead" queues each
// stream's packet in the kernel 1 ms ahead of its due time (Ahead streams:
// a chain of a timeout and a send per packet) and books the completions of
// earlier ones.
func BenchmarkWakeup(b *testing.B) {
	for _, shared := range []bool{true, false} {
		for _, n := range []int{1, 50, 500} {
			name := fmt.Sprintf("send=ahead/sockets=%s/streams=%d", map[bool]string{true: "shared", false: "own"}[shared], n)
			b.Run(name, func(b *testing.B) { benchWakeupAhead(b, n, shared) })
		}
	}
	for _, ring := range []bool{true, false} {
		for _, shared := range []bool{true, false} {
			for _, n := range []int{1, 50, 500} {
				name := fmt.Sprintf("send=%s/sockets=%s/streams=%d", map[bool]string{true: "io_uring", false: "sendmmsg"}[ring],
					map[bool]string{true: "shared", false: "own"}[shared], n)
				b.Run(name, func(b *testing.B) { benchWakeup(b, n, shared, ring) })
			}
		}
	}
}

// dueSource has one packet due whenever ready is set.
type dueSource struct {
	payload [172]byte
	ready   bool
}

func (s *dueSource) Due() (time.Duration, bool) {
	if s.ready {
		return 0, true
	}
	return time.Hour, true
}
func (s *dueSource) Append(dst []byte) []byte { s.ready = false; return append(dst, s.payload[:]...) }
func (s *dueSource) Stop()                    {}

func benchWakeup(b *testing.B, n int, shared, ring bool) {
	p := New(nil, WithStartGrid(0))
	r := newReceiver(b)
	pc := newConn(b)
	var (
		streams []*stream
		srcs    []*dueSource
	)
	for range n {
		if !shared {
			pc = newConn(b)
		}
		src := &dueSource{}
		srcs = append(srcs, src)
		streams = append(streams, &stream{src: src, out: sink{pc, r.addr()}, ctx: context.Background()})
	}
	var bt batcher
	if ring {
		r, err := newRing()
		if err != nil {
			b.Skipf("io_uring unavailable: %v", err)
		}
		defer r.close()
		bt.ring = r
	}
	wakeup := func() {
		for _, s := range srcs {
			s.ready = true
		}
		streams, _, _ = p.tick(streams, &bt)
	}
	wakeup() // grow the buffers
	runs := 1
	b.ReportAllocs()
	for b.Loop() {
		wakeup()
		runs++
	}
	if c := p.Counters(); c.Errors != 0 || c.Packets != uint64(n)*uint64(runs) {
		b.Fatalf("counters %+v after %d wake-ups of %d streams", c, runs, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(runs-1)/float64(n), "ns/packet")
}

// aheadDueSource is a dueSource whose packet, when ready, is due 1 ms from
// now: queued in the kernel rather than sent by the loop.
type aheadDueSource struct{ dueSource }

func (s *aheadDueSource) Due() (time.Duration, bool) {
	if s.ready {
		return time.Duration(Now() + int64(time.Millisecond)), true
	}
	return time.Duration(1 << 62), true
}
func (s *aheadDueSource) Rewind(int) {}

func benchWakeupAhead(b *testing.B, n int, shared bool) {
	p := New(nil, WithStartGrid(0))
	r := newReceiver(b)
	pc := newConn(b)
	var (
		streams []*stream
		srcs    []*aheadDueSource
	)
	for range n {
		if !shared {
			pc = newConn(b)
		}
		src := &aheadDueSource{}
		srcs = append(srcs, src)
		// Offset 0 at CLOCK_MONOTONIC 0, so a Due is an absolute time.
		streams = append(streams, &stream{src: src, ahead: src, out: sink{pc, r.addr()}, ctx: context.Background(), started: true})
	}
	ring, err := newRing()
	if err != nil {
		b.Skipf("io_uring unavailable: %v", err)
	}
	defer ring.close()
	if err := ring.probeTimed(); err != nil {
		b.Skipf("kernel-timed sends unavailable: %v", err)
	}
	ring.ahead.ok = true
	bt := batcher{ring: ring}
	wakeup := func() {
		for _, s := range srcs {
			s.ready = true
		}
		streams, _, _ = p.tick(streams, &bt)
	}
	// Grow the buffers and the slot pool to the working set: packets in
	// flight for the 1 ms they wait in the kernel.
	for end := Now() + int64(200*time.Millisecond); Now() < end; {
		wakeup()
	}
	runs := 0
	b.ReportAllocs()
	for b.Loop() {
		wakeup()
		runs++
	}
	time.Sleep(5 * time.Millisecond)
	bt.bookTimed(p.lateAfter, &p.c)
	if c := p.Counters(); c.Errors != 0 || c.Ahead == 0 {
		b.Fatalf("counters %+v after %d wake-ups of %d streams", c, runs, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(runs)/float64(n), "ns/packet")
}
