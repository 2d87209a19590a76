package pacer

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel-timed sends ("look-ahead").
//
// After each wake-up the loop needs one of the Go scheduler's Ps, and a
// garbage collection or CPU-bound goroutines can keep it waiting: measured
// 40–64 ms gap p99 and up to 237 ms gaps with 50 pages while the process
// allocated hard (BenchmarkGCLoad), against 21 ms for a real-time sender in
// a process of its own. So for streams whose packets are known before they
// fall due (Ahead: rendered announcements, Polycom pages) the loop builds
// packets up to the look-ahead before their due time and hands each to the
// kernel as an io_uring chain: an absolute CLOCK_MONOTONIC IORING_OP_TIMEOUT
// (IORING_TIMEOUT_ETIME_SUCCESS, so its expiry does not sever the link),
// linked to the packet's IORING_OP_SENDMSG. The timer's expiry runs the send
// as task work of the loop's thread: in the kernel, whether the thread waits
// for a P, sleeps in a GC phase or in its timerfd read, and first in line
// under SCHED_FIFO. The process may then stall for up to the look-ahead
// without a late packet.
//
// Cancelling such a stream (an emergency pre-empting a page, a hang-up)
// cancels its queued timeouts (IORING_OP_ASYNC_CANCEL of every request
// carrying the stream's key), which fails their linked sends; once all of
// its chains have completed, the Source is told how many packets never left
// (Ahead.Rewind) and only then Stop, so the closing packets follow the last
// packet sent without a hole in sequence numbers or timestamps.
//
// Also considered: SO_TXTIME with the fq or etf qdisc, where the kernel
// holds each packet in the qdisc until its transmit time. Not built, for
// three reasons. The io_uring chains already meet the goal: with the
// process allocating flat out on every CPU, 50 streams keep a gap p99 of
// 20.1 ms and no late packet (BenchmarkGCLoad, against 85 ms p99 sending
// from the loop). A packet handed to a qdisc cannot be taken back: an
// emergency pre-empting a page, or a hang-up, would let up to the
// look-ahead of the old stream still play, and its closing packets could
// not follow the last packet sent; a queued io_uring chain is cancelled.
// And it needs the qdisc on every outgoing interface (root; the appliance
// kernel has CONFIG_NET_SCH_FQ/ETF, a plain Debian box's qdisc is
// whatever its admin set, and this development host's kernel has neither:
// `tc qdisc add dev lo root fq` in a new network namespace says "Specified
// qdisc kind is unknown"), with etf also on CLOCK_TAI. io_uring timeouts
// need nothing of the interface and work on loopback, which the tests use.
//
// Needs Linux 5.19 (IORING_TIMEOUT_ETIME_SUCCESS: 5.16, ASYNC_CANCEL_ALL:
// 5.19); the loop probes for both when it opens its ring and otherwise
// sends every packet at its due time, as it does for other streams, saying
// so in the log.

// Ahead is implemented by Sources whose packets do not depend on when they
// are built (rendered audio), so the Pacer may build them up to its
// look-ahead early and let the kernel send them at their due times.
type Ahead interface {
	// Rewind takes back the last n packets Append produced: they were
	// built early and cancelled before they left. The Source continues as
	// if they had never been appended. The Pacer calls it only just before
	// Stop.
	Rewind(n int)
}

// DefaultLookahead is how long before their due time packets of an Ahead
// stream are handed to the kernel: longer than the loop's stalls measured
// under in-process GC load (up to ~240 ms on a quiet host, ~0.5 s with the
// host at load 28: BenchmarkGCLoad), so no packet waits for Go. It costs
// memory only (50 pages × 50 queued packets ≈ 1 MB): a cancelled stream
// takes its queued packets back at once.
const DefaultLookahead = time.Second

// WithLookahead sets how far ahead packets of Ahead streams are queued in
// the kernel (0: send every packet at its due time from the loop).
func WithLookahead(d time.Duration) Option { return func(p *Pacer) { p.lookahead = max(d, 0) } }

// user_data tags: the top two bits say what a completion is for.
const (
	tagShift   = 62
	tagNow     = 0 // an immediate send: index into the submission
	tagTimed   = 1 // a timed send: index of its aheadSlot
	tagTimeout = 2 // the timeout heading a chain: the stream's key
	tagMisc    = 3 // cancellations and probes
	tagMask    = 1<<tagShift - 1

	ioringOpNop         = 0
	ioringOpTimeout     = 11
	ioringOpAsyncCancel = 14
	ioSqeIOLink         = 1 << 2
	ioSqeIOHardlink     = 1 << 3
	ioringTimeoutAbs    = 1 << 0
	ioringTimeoutETime  = 1 << 5 // IORING_TIMEOUT_ETIME_SUCCESS
	ioringCancelAll     = 1 << 0
	ioringCancelAny     = 1 << 2
	sqeOffOff           = 8
	miscCancel          = 1
	miscProbeTimeout    = 2
	miscProbeNop        = 3
	miscProbeCancel     = 4
)

// aheadSlot holds one timed packet and everything the kernel reads when it
// sends it, until its completion: it must not move or be reused before.
type aheadSlot struct {
	s    *stream
	due  int64
	addr net.Addr
	buf  []byte
	hdr  unix.Msghdr
	iov  unix.Iovec
	name unix.RawSockaddrInet6
	ts   unix.Timespec
	slot int32 // fixed-file slot of its socket
}

// timedCQE is a completion of a timed send, booked by the loop.
type timedCQE struct {
	slot int32
	res  int32
}

// aheadState is the ring's part for timed sends.
type aheadState struct {
	ok       bool // the kernel can do it (probed)
	slots    []*aheadSlot
	free     []int32
	done     []timedCQE // reaped, not yet booked
	inflight int
	probe    [8]int32
}

// getSlot returns a free slot, growing the pool if needed.
func (r *ring) getSlot() int32 {
	a := &r.ahead
	if n := len(a.free); n > 0 {
		i := a.free[n-1]
		a.free = a.free[:n-1]
		return i
	}
	a.slots = append(a.slots, &aheadSlot{})
	return int32(len(a.slots) - 1)
}

func (r *ring) putSlot(i int32) {
	sl := r.ahead.slots[i]
	sl.s, sl.addr = nil, nil
	sl.buf = sl.buf[:0]
	r.ahead.free = append(r.ahead.free, i)
}

// sqe returns the next free submission entry, cleared, submitting what is
// queued first if the ring is full; nil if the ring failed.
func (r *ring) sqe(queued *uint32) (unsafe.Pointer, error) {
	tail := *r.sqTail
	if tail+*queued-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		if err := r.submit(queued); err != nil {
			return nil, err
		}
	}
	idx := (tail + *queued) & r.sqMask
	p := unsafe.Pointer(&r.sqeMem[int(idx)*sizeofSQE])
	clear(unsafe.Slice((*byte)(p), sizeofSQE))
	*(*uint32)(unsafe.Add(unsafe.Pointer(r.sqArray), 4*idx)) = idx
	*queued++
	return p, nil
}

// submit hands the queued entries to the kernel without waiting for any
// completion.
func (r *ring) submit(queued *uint32) error {
	if *queued == 0 {
		return nil
	}
	atomic.StoreUint32(r.sqTail, *r.sqTail+*queued)
	left := *queued
	*queued = 0
	for tries := 0; left > 0; tries++ {
		n, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(left), 0, 0, 0, 0)
		switch errno {
		case 0:
			left -= uint32(n)
		case unix.EINTR, unix.EAGAIN, unix.EBUSY:
			if tries > 1000 {
				return fmt.Errorf("io_uring_enter: %w", errno)
			}
		default:
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
		r.reap()
	}
	return nil
}

func putU8(sqe unsafe.Pointer, off uintptr, v uint8)   { *(*uint8)(unsafe.Add(sqe, off)) = v }
func putU32(sqe unsafe.Pointer, off uintptr, v uint32) { *(*uint32)(unsafe.Add(sqe, off)) = v }
func putU64(sqe unsafe.Pointer, off uintptr, v uint64) { *(*uint64)(unsafe.Add(sqe, off)) = v }

// probeTimed checks that the kernel keeps a link after an expired timeout
// (IORING_TIMEOUT_ETIME_SUCCESS) and cancels by key (ASYNC_CANCEL_ALL).
func (r *ring) probeTimed() error {
	var queued uint32
	var ts unix.Timespec // CLOCK_MONOTONIC 0: long past, expires at once
	sqe, err := r.sqe(&queued)
	if err != nil {
		return err
	}
	putU8(sqe, sqeOffOpcode, ioringOpTimeout)
	putU8(sqe, sqeOffFlg, ioSqeIOLink)
	putU64(sqe, sqeOffAddr, uint64(uintptr(unsafe.Pointer(&ts))))
	putU32(sqe, sqeOffLen, 1)
	putU32(sqe, sqeOffFlags, ioringTimeoutAbs|ioringTimeoutETime)
	putU64(sqe, sqeOffUserData, tagMisc<<tagShift|miscProbeTimeout)
	if sqe, err = r.sqe(&queued); err != nil {
		return err
	}
	putU8(sqe, sqeOffOpcode, ioringOpNop)
	putU64(sqe, sqeOffUserData, tagMisc<<tagShift|miscProbeNop)
	if sqe, err = r.sqe(&queued); err != nil {
		return err
	}
	putU8(sqe, sqeOffOpcode, ioringOpAsyncCancel)
	putU64(sqe, sqeOffAddr, tagTimeout<<tagShift|tagMask) // no such request
	putU32(sqe, sqeOffFlags, ioringCancelAll)
	putU64(sqe, sqeOffUserData, tagMisc<<tagShift|miscProbeCancel)
	for i := range r.ahead.probe {
		r.ahead.probe[i] = 1
	}
	atomic.StoreUint32(r.sqTail, *r.sqTail+queued)
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(queued), 3, ioringEnterGetevents, 0, 0)
	runtime.KeepAlive(&ts)
	if errno != 0 {
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
	for range 100 {
		r.reap()
		if r.ahead.probe[miscProbeNop] != 1 && r.ahead.probe[miscProbeTimeout] != 1 && r.ahead.probe[miscProbeCancel] != 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	pr := r.ahead.probe
	switch {
	case pr[miscProbeTimeout] != -int32(unix.ETIME) || pr[miscProbeNop] != 0:
		return fmt.Errorf("no IORING_TIMEOUT_ETIME_SUCCESS (Linux ≥ 5.16): timeout %d, linked nop %d", pr[miscProbeTimeout], pr[miscProbeNop])
	case pr[miscProbeCancel] < 0 && pr[miscProbeCancel] != -int32(unix.ENOENT): // ALL: how many were cancelled
		return fmt.Errorf("no IORING_ASYNC_CANCEL_ALL (Linux ≥ 5.19): %d", pr[miscProbeCancel])
	}
	return nil
}

// queueTimed hands the wake-up's timed packets to the kernel: one chain per
// stream and due time, a timeout linked to its sends. Sends are hard-linked
// to each other, so one refused packet does not cancel the next.
func (r *ring) queueTimed(items []int32) error {
	var queued uint32
	for i := 0; i < len(items); {
		first := r.ahead.slots[items[i]]
		j := i + 1
		for j < len(items) && r.ahead.slots[items[j]].s == first.s && r.ahead.slots[items[j]].due == first.due {
			j++
		}
		// A chain must not be split across two submissions.
		if uint32(j-i+1)+queued+*r.sqTail-atomic.LoadUint32(r.sqHead) > r.sqEntries {
			if err := r.submit(&queued); err != nil {
				return err
			}
		}
		sqe, err := r.sqe(&queued)
		if err != nil {
			return err
		}
		first.ts = unix.NsecToTimespec(first.due)
		putU8(sqe, sqeOffOpcode, ioringOpTimeout)
		putU8(sqe, sqeOffFlg, ioSqeIOLink)
		putU64(sqe, sqeOffAddr, uint64(uintptr(unsafe.Pointer(&first.ts))))
		putU32(sqe, sqeOffLen, 1)
		putU32(sqe, sqeOffFlags, ioringTimeoutAbs|ioringTimeoutETime)
		putU64(sqe, sqeOffUserData, tagTimeout<<tagShift|first.s.key)
		for k := i; k < j; k++ {
			sl := r.ahead.slots[items[k]]
			if sqe, err = r.sqe(&queued); err != nil {
				return err
			}
			flags := uint8(ioSqeFixedFile)
			if k < j-1 {
				flags |= ioSqeIOHardlink
			}
			putU8(sqe, sqeOffOpcode, ioringOpSendmsg)
			putU8(sqe, sqeOffFlg, flags)
			*(*int32)(unsafe.Add(sqe, sqeOffFD)) = sl.slot
			putU64(sqe, sqeOffAddr, uint64(uintptr(unsafe.Pointer(&sl.hdr))))
			putU32(sqe, sqeOffLen, 1)
			putU32(sqe, sqeOffFlags, unix.MSG_DONTWAIT)
			putU64(sqe, sqeOffUserData, tagTimed<<tagShift|uint64(items[k]))
			r.ahead.inflight++
		}
		i = j
	}
	return r.submit(&queued)
}

// cancel cancels the queued timeouts of the stream with key (every one
// with ANY when all is set); their linked sends complete with ECANCELED.
func (r *ring) cancel(key uint64, all bool) error {
	var queued uint32
	sqe, err := r.sqe(&queued)
	if err != nil {
		return err
	}
	putU8(sqe, sqeOffOpcode, ioringOpAsyncCancel)
	if all {
		putU32(sqe, sqeOffFlags, ioringCancelAny)
	} else {
		putU64(sqe, sqeOffAddr, tagTimeout<<tagShift|key)
		putU32(sqe, sqeOffFlags, ioringCancelAll)
	}
	putU64(sqe, sqeOffUserData, tagMisc<<tagShift|miscCancel)
	return r.submit(&queued)
}

// drain cancels every queued chain and waits until the kernel has
// finished with all timed slots, so their memory may go.
func (r *ring) drain() {
	if r.ahead.inflight == 0 || r.fd < 0 {
		return
	}
	if r.cancel(0, true) != nil {
		return
	}
	for tries := 0; r.ahead.inflight > 0 && tries < 1000; tries++ {
		r.reap()
		r.ahead.inflight -= len(r.ahead.done)
		for _, d := range r.ahead.done {
			r.putSlot(d.slot)
		}
		r.ahead.done = r.ahead.done[:0]
		if r.ahead.inflight > 0 {
			_, _, _ = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, 1, ioringEnterGetevents, 0, 0)
		}
	}
}

// addTimed builds s's next packet into a slot to be sent by the kernel at
// due. It returns false, having built nothing, when s's socket is not in
// the ring: the caller sends the packet from the loop instead.
func (b *batcher) addTimed(s *stream, due int64) bool {
	r := b.ring
	pc, addr := s.out.Conn()
	if s.ringPC != pc {
		s.releaseRing(r)
		if _, ok := r.acquire(pc); !ok {
			return false
		}
		s.ringPC = pc
	}
	fs := r.slots[pc]
	i := r.getSlot()
	sl := r.ahead.slots[i]
	sl.buf = s.src.Append(sl.buf[:0])
	if len(sl.buf) == 0 {
		r.putSlot(i)
		return true // a pause
	}
	sl.s, sl.due, sl.addr, sl.slot = s, due, addr, fs.idx
	sl.iov = unix.Iovec{Base: unsafe.SliceData(sl.buf)}
	sl.iov.SetLen(len(sl.buf))
	sl.hdr = unix.Msghdr{Iov: &sl.iov}
	sl.hdr.SetIovlen(1)
	if n := putSockaddr(&sl.name, fs.family, addr); n > 0 {
		sl.hdr.Name, sl.hdr.Namelen = (*byte)(unsafe.Pointer(&sl.name)), n
	}
	s.inflight++
	s.lastQueued = max(s.lastQueued, due)
	b.timed = append(b.timed, i)
	return true
}

// bookTimed books the timed sends the kernel has completed on their
// streams and the counters. A packet cancelled on its stream's request is
// not sent: it is counted for the stream's Rewind.
func (b *batcher) bookTimed(lateAfter time.Duration, cs *counters) {
	r := b.ring
	if r == nil {
		return
	}
	r.reap()
	for _, d := range r.ahead.done {
		sl := r.ahead.slots[d.slot]
		s := sl.s
		s.inflight--
		r.ahead.inflight--
		var err error
		switch {
		case d.res == -int32(unix.ECANCELED) && s.cancelling:
			s.unsent++
		case d.res < 0:
			err = syscall.Errno(-d.res)
			fallthrough
		default:
			// Sent by the kernel when its timer expired: on time unless the
			// loop thread could not run its task work (not measured here).
			bookPacket(s, len(sl.buf), sl.due, sl.due, sl.addr, err, lateAfter, cs)
			if err == nil {
				cs.ahead.Add(1)
			}
		}
		r.putSlot(d.slot)
	}
	r.ahead.done = r.ahead.done[:0]
}

// ensureRing registers s's socket in the ring if it is not yet; false if
// it cannot be (the stream is then sent from the loop).
func (b *batcher) ensureRing(s *stream) bool {
	pc, _ := s.out.Conn()
	if s.ringPC == pc {
		return true
	}
	s.releaseRing(b.ring)
	if _, ok := b.ring.acquire(pc); !ok {
		return false
	}
	s.ringPC = pc
	return true
}
