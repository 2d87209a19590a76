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
// with one sendmmsg per socket (the fallback).
func BenchmarkWakeup(b *testing.B) {
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
