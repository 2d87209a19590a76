package pacer

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// batcher collects one wake-up's packets per socket for sendmmsg. Its
// buffers are kept from one wake-up to the next, so once they have grown
// to the working set a wake-up allocates nothing.
type batcher struct {
	arena []byte
	conns []*connBatch // touched this wake-up, in first-use order
	free  []*connBatch

	firstDue  int64 // earliest due time among this wake-up's packets
	firstSend int64 // when the first batch went out

	// ring sends every batch whose socket it has registered in one system
	// call (uring.go); nil: sendmmsg per socket.
	ring  *ring
	refs  []ringRef
	timed []int32 // slots of this wake-up's timed packets (ahead.go)
}

type connBatch struct {
	pc     *ipv4.PacketConn
	msgs   []ipv4.Message
	owners []*stream
	dues   []int64

	fixed  bool  // pc is registered in the ring: sent through it
	slot   int32 // its fixed-file slot
	family int   // its address family
}

func (b *batcher) reset() {
	b.arena = b.arena[:0]
	for _, c := range b.conns {
		clear(c.owners)
		for i := range c.msgs {
			c.msgs[i].Buffers[0], c.msgs[i].Addr = nil, nil
		}
		c.msgs, c.owners, c.dues = c.msgs[:0], c.owners[:0], c.dues[:0]
		c.pc = nil
		b.free = append(b.free, c)
	}
	b.conns = b.conns[:0]
	b.timed = b.timed[:0]
	b.firstDue, b.firstSend = 0, 0
}

// batchFor returns the batch of socket pc, starting one if needed. Streams
// are visited in the same order every wake-up, so a stream's socket is
// usually where it was last time (hint): with a socket per call leg this
// keeps the lookup constant rather than a scan of every leg's socket.
func (b *batcher) batchFor(s *stream, pc *ipv4.PacketConn) *connBatch {
	if s.hint < len(b.conns) && b.conns[s.hint].pc == pc {
		return b.conns[s.hint]
	}
	for i, c := range b.conns {
		if c.pc == pc {
			s.hint = i
			return c
		}
	}
	var c *connBatch
	if n := len(b.free); n > 0 {
		c, b.free = b.free[n-1], b.free[:n-1]
	} else {
		c = &connBatch{}
	}
	c.pc = pc
	c.fixed = false
	if b.ring != nil {
		if fs := b.ring.slots[pc]; fs != nil {
			c.fixed, c.slot, c.family = true, fs.idx, fs.family
		}
	}
	s.hint = len(b.conns)
	b.conns = append(b.conns, c)
	return c
}

// add appends s's next packet, due at due, to its socket's batch. A Source
// that appends nothing sends nothing.
func (b *batcher) add(s *stream, due int64) {
	off := len(b.arena)
	b.arena = s.src.Append(b.arena)
	if len(b.arena) == off {
		return
	}
	pc, addr := s.out.Conn()
	if b.ring != nil && s.ringPC != pc {
		s.releaseRing(b.ring)
		if _, ok := b.ring.acquire(pc); ok {
			s.ringPC = pc
		}
	}
	c := b.batchFor(s, pc)
	// If the arena grew, earlier packets still point into the old array,
	// which stays alive and unchanged until the flush.
	pkt := b.arena[off:len(b.arena):len(b.arena)]
	c.msgs = slices.Grow(c.msgs, 1)[:len(c.msgs)+1] // reuses earlier wake-ups' Messages
	m := &c.msgs[len(c.msgs)-1]
	if m.Buffers == nil {
		m.Buffers = make([][]byte, 1)
	}
	m.Buffers[0], m.Addr = pkt, addr
	c.owners = append(c.owners, s)
	c.dues = append(c.dues, due)
	if b.firstDue == 0 || due < b.firstDue {
		b.firstDue = due
	}
}

// flush sends every batch and books the outcome on the owning streams and
// the Pacer's counters. It returns an error when the ring failed (the
// batches it held were booked as failed; the caller drops the ring).
func (b *batcher) flush(lateAfter time.Duration, cs *counters) error {
	var ringErr error
	if b.ring != nil {
		ringErr = b.flushRing(lateAfter, cs)
	}
	for _, c := range b.conns {
		if c.fixed {
			continue
		}
		sendTime := Now()
		if b.firstSend == 0 {
			b.firstSend = sendTime
		}
		for i := 0; i < len(c.msgs); {
			n, err := c.pc.WriteBatch(c.msgs[i:], 0)
			n = max(n, 0) // sendmmsg's -1 comes through on error
			if n == 0 && err == nil {
				err = syscall.EIO // sendmmsg sent nothing yet reported no error
			}
			for j := i; j < i+n; j++ {
				c.book(j, sendTime, nil, lateAfter, cs)
			}
			i += n
			if err == nil {
				continue
			}
			if i < len(c.msgs) { // message i failed
				c.book(i, sendTime, err, lateAfter, cs)
				i++
			}
		}
	}
	return ringErr
}

// flushRing sends the batches of registered sockets in one io_uring_enter
// (or a few, beyond ringEntries packets).
func (b *batcher) flushRing(lateAfter time.Duration, cs *counters) error {
	b.refs = b.refs[:0]
	for _, c := range b.conns {
		if c.fixed {
			for j := range c.msgs {
				b.refs = append(b.refs, ringRef{c, j})
			}
		}
	}
	if len(b.refs) == 0 {
		return nil
	}
	sendTime := Now()
	b.firstSend = sendTime
	err := b.ring.send(b.refs)
	for i, ref := range b.refs {
		var serr error
		if res := b.ring.res[i]; res < 0 {
			serr = syscall.Errno(-res)
		}
		ref.c.book(ref.j, sendTime, serr, lateAfter, cs)
	}
	clear(b.refs)
	return err
}

// book records the outcome of message j on its stream and the counters.
func (c *connBatch) book(j int, sendTime int64, err error, lateAfter time.Duration, cs *counters) {
	bookPacket(c.owners[j], len(c.msgs[j].Buffers[0]), c.dues[j], sendTime, c.msgs[j].Addr, err, lateAfter, cs)
}

// bookPacket records the outcome of one packet of s, due at due and sent
// (or refused) at sendTime, on s and the counters.
func bookPacket(s *stream, size int, due, sendTime int64, addr net.Addr, err error, lateAfter time.Duration, cs *counters) {
	if err == nil {
		s.stats.Packets++
		s.stats.Bytes += size
		cs.packets.Add(1)
		cs.bytes.Add(uint64(size))
		if late := time.Duration(sendTime - due); late > lateAfter {
			s.stats.Late++
			s.stats.MaxLate = max(s.stats.MaxLate, late)
			cs.latePackets.Add(1)
			if int64(late) > cs.maxLate.Load() {
				cs.maxLate.Store(int64(late))
			}
		}
		if s.rep != nil {
			s.rep.Sent(nil)
		}
		return
	}
	dropped := errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN)
	if dropped {
		s.stats.Dropped++
		cs.dropped.Add(1)
	} else {
		cs.errors.Add(1)
	}
	switch {
	case s.rep != nil:
		s.rep.Sent(err)
	case !dropped && s.err == nil:
		s.err = fmt.Errorf("send to %v: %w", addr, err)
	}
}
