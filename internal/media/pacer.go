package media

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// FrameDuration is the packet time parkpage sends.
const FrameDuration = 20 * time.Millisecond

// paced is something the Pacer calls once per 20 ms tick, on the pacer
// thread. It must not block.
type paced interface {
	tick(n uint64)
}

// Pacer sends every registered stream's next packet every 20 ms from one
// loop on a locked OS thread woken by an absolute CLOCK_MONOTONIC timerfd.
// Producers (shared hold music) are ticked before the legs that read them.
type Pacer struct {
	log      *slog.Logger
	realtime bool

	mu        sync.Mutex // serialises Add/Remove; readers use the atomic snapshots
	producers atomic.Pointer[[]paced]
	streams   atomic.Pointer[[]paced]

	ticks    atomic.Uint64
	missed   atomic.Uint64
	maxWork  atomic.Int64 // longest tick, ns
	running  atomic.Bool
	stopOnce sync.Once
}

// NewPacer returns a stopped Pacer. With realtime, Run asks for SCHED_FIFO
// priority for its thread and carries on at normal priority if refused.
func NewPacer(log *slog.Logger, realtime bool) *Pacer {
	p := &Pacer{log: log, realtime: realtime}
	p.producers.Store(&[]paced{})
	p.streams.Store(&[]paced{})
	return p
}

// PacerStats are counters for metrics and benchmarks.
type PacerStats struct {
	Ticks   uint64        // ticks run
	Missed  uint64        // ticks the loop woke too late for (sent late, in a burst)
	MaxWork time.Duration // longest time one tick took
	Streams int           // legs currently sending
}

// Stats returns the counters.
func (p *Pacer) Stats() PacerStats {
	return PacerStats{
		Ticks:   p.ticks.Load(),
		Missed:  p.missed.Load(),
		MaxWork: time.Duration(p.maxWork.Load()),
		Streams: len(*p.streams.Load()),
	}
}

func (p *Pacer) add(list *atomic.Pointer[[]paced], s paced) {
	p.mu.Lock()
	old := *list.Load()
	n := make([]paced, len(old), len(old)+1)
	copy(n, old)
	n = append(n, s)
	list.Store(&n)
	p.mu.Unlock()
}

func (p *Pacer) remove(list *atomic.Pointer[[]paced], s paced) {
	p.mu.Lock()
	old := *list.Load()
	n := make([]paced, 0, len(old))
	for _, x := range old {
		if x != s {
			n = append(n, x)
		}
	}
	list.Store(&n)
	p.mu.Unlock()
}

// Run ticks until ctx ends. It returns an error only when the timer cannot
// be set up.
func (p *Pacer) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("pacer: already running")
	}
	defer p.running.Store(false)
	errc := make(chan error, 1)
	var stop atomic.Bool
	go func() {
		// The loop owns its thread for its whole life: the timerfd read
		// blocks the thread, not a P, and nothing else runs on it.
		runtime.LockOSThread()
		errc <- p.loop(&stop)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		stop.Store(true)
		return <-errc
	}
}

func (p *Pacer) loop(stop *atomic.Bool) error {
	if p.realtime {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 10}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			p.log.Info("pacer: real-time priority refused, pacing at normal priority", "error", err)
		} else {
			p.log.Debug("pacer: running at SCHED_FIFO priority 10")
		}
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("pacer: timerfd: %w", err)
	}
	defer unix.Close(fd)
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return fmt.Errorf("pacer: clock: %w", err)
	}
	start := unix.NsecToTimespec(now.Nano() + int64(FrameDuration))
	spec := unix.ItimerSpec{Value: start, Interval: unix.NsecToTimespec(int64(FrameDuration))}
	if err := unix.TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
		return fmt.Errorf("pacer: timerfd settime: %w", err)
	}
	buf := make([]byte, 8)
	for !stop.Load() {
		if _, err := unix.Read(fd, buf); err != nil {
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			return fmt.Errorf("pacer: timerfd read: %w", err)
		}
		exp := binary.NativeEndian.Uint64(buf)
		if exp > 1 {
			p.missed.Add(exp - 1)
		}
		// Catch up on up to two missed ticks so timestamps and audio stay
		// continuous; a longer stall is skipped rather than burst.
		runs := min(exp, 3)
		for i := uint64(0); i < runs; i++ {
			t0 := time.Now()
			p.tickOnce()
			if w := int64(time.Since(t0)); w > p.maxWork.Load() {
				p.maxWork.Store(w)
			}
		}
	}
	return nil
}

func (p *Pacer) tickOnce() {
	n := p.ticks.Add(1)
	for _, s := range *p.producers.Load() {
		s.tick(n)
	}
	for _, s := range *p.streams.Load() {
		s.tick(n)
	}
}
