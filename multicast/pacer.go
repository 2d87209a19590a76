package multicast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Source is one stream's packets in order, each with its own due time.
// polycom.Session and rtp.Stream implement it. The Pacer calls a Source from
// its loop thread only.
type Source interface {
	// Due reports when the next packet is due, as an offset from the start of
	// the stream; ok is false when the stream is over.
	Due() (due time.Duration, ok bool)
	// Append appends the next packet to dst and advances.
	Append(dst []byte) []byte
	// Stop asks the stream to finish early. Due and Append then yield only
	// the stream's closing packets (Polycom's End burst), if it has any.
	Stop()
}

// Sink is where a stream's packets go. Sender implements it. The Pacer
// batches the packets due at the same time on the same PacketConn into one
// sendmmsg call, so Conn must return the same PacketConn every time. addr
// may be nil for a connected socket.
type Sink interface {
	Conn() (pc *ipv4.PacketConn, addr net.Addr)
}

// Stats describes how a stream went.
type Stats struct {
	Packets int // packets sent
	Bytes   int // UDP payload bytes sent
	// Late counts packets sent more than the Pacer's late threshold after
	// their due time; MaxLate is the worst lateness seen.
	Late    int
	MaxLate time.Duration
	Dropped int  // packets the kernel refused for lack of buffer space (ENOBUFS/EAGAIN)
	Stopped bool // cut short by cancellation (Source.Stop was called)
}

// Result is the outcome of one Play: the stats, and an error if the stream
// was cancelled (the context's error, after the closing packets went out),
// failed to send, or the Pacer shut down first (ErrPacerClosed).
type Result struct {
	Stats
	Err error
}

// ErrPacerClosed ends streams still playing when the Pacer stops, and any
// Play after that.
var ErrPacerClosed = errors.New("pacer closed")

// Pacer defaults.
const (
	DefaultPriority   = 10                   // SCHED_FIFO priority asked for; any real-time priority beats normal threads
	DefaultLateAfter  = 2 * time.Millisecond // lateness that counts a packet as late
	DefaultStartGrid  = time.Millisecond     // streams start on this grid so their packets share wake-ups
	DefaultMaxSpin    = time.Millisecond     // bound of the early wake-up, see WithMaxSpin
	maxPacketsPerTick = 1 << 16
)

// PacerOption configures a Pacer.
type PacerOption func(*Pacer)

// WithPriority sets the SCHED_FIFO priority (1–99) the loop thread asks for;
// 0 keeps normal scheduling.
func WithPriority(prio int) PacerOption { return func(p *Pacer) { p.priority = prio } }

// WithLateAfter sets how late a packet may go out before it counts as late.
func WithLateAfter(d time.Duration) PacerOption { return func(p *Pacer) { p.lateAfter = d } }

// WithMaxSpin bounds the early wake-up (default DefaultMaxSpin; 0 turns it
// off). Under SCHED_FIFO the loop wakes a little before packets are due, by
// the recent 99th percentile of its own timer wake-up latency, and polls the
// clock until they are: it costs that much CPU per wake-up and removes the
// timer's latency jitter (measured 0.1–0.7 ms on a VM, tens of µs on bare
// metal). Without real-time priority the loop could be preempted while
// polling, so it does not poll.
func WithMaxSpin(d time.Duration) PacerOption { return func(p *Pacer) { p.spin = d } }

// WithStartGrid sets the grid stream starts are rounded up to (0: start at
// once). Streams on one grid with 20 or 30 ms cadences share wake-ups and
// sendmmsg calls instead of waking the loop at scattered times. The grid is
// also the most it delays a page's first packet: the default 1 ms keeps a
// cached announcement's first packet within a few milliseconds of Play while
// letting the streams of one page (started within microseconds) and pages
// started together share every wake-up.
func WithStartGrid(d time.Duration) PacerOption { return func(p *Pacer) { p.grid = d } }

const (
	stateNew = iota
	stateRunning
	stateClosed
)

// Pacer sends the packets of many streams at their due times from a single
// OS thread (see the package doc). Create it with NewPacer, run it with Run,
// and start streams with Play, before or while it runs.
type Pacer struct {
	log       *slog.Logger
	priority  int
	lateAfter time.Duration
	grid      time.Duration
	spin      time.Duration

	mu      sync.Mutex
	state   int
	tfd     int // timerfd while running
	pending []*stream
	wakeReq bool

	realtime atomic.Bool
	tid      atomic.Int64 // loop thread id, for CPU accounting
}

// NewPacer returns a Pacer that logs to log (nil: discard).
func NewPacer(log *slog.Logger, opts ...PacerOption) *Pacer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pacer{log: log, priority: DefaultPriority, lateAfter: DefaultLateAfter, grid: DefaultStartGrid, spin: DefaultMaxSpin, tfd: -1}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Realtime reports whether the loop thread runs under SCHED_FIFO.
func (p *Pacer) Realtime() bool { return p.realtime.Load() }

// stream is the loop's state for one Play.
type stream struct {
	src    Source
	pc     *ipv4.PacketConn
	addr   net.Addr
	ctx    context.Context
	result chan Result
	unhook func() bool // releases the context.AfterFunc

	stopReq  atomic.Bool // set from the context's AfterFunc
	started  bool
	start    int64 // CLOCK_MONOTONIC ns of offset 0
	next     int64 // absolute due time of the next packet
	finished bool
	stats    Stats
	err      error
}

// Play starts playing src to out and returns a channel that receives the
// Result once, then closes. Cancelling ctx stops the stream: the Source gets
// to send its closing packets (Polycom's End burst), then the Result carries
// ctx's error.
func (p *Pacer) Play(ctx context.Context, out Sink, src Source) <-chan Result {
	res := make(chan Result, 1)
	if out == nil || src == nil {
		res <- Result{Err: errors.New("pacer: play: nil sink or source")}
		close(res)
		return res
	}
	pc, addr := out.Conn()
	s := &stream{src: src, pc: pc, addr: addr, ctx: ctx, result: res}
	// Hooked before the loop can see s, so finish always finds unhook set.
	s.unhook = context.AfterFunc(ctx, func() {
		s.stopReq.Store(true)
		p.wake()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == stateClosed {
		s.finish(Result{Err: ErrPacerClosed})
		return res
	}
	p.pending = append(p.pending, s)
	p.wakeLocked()
	return res
}

func (s *stream) finish(r Result) {
	if s.unhook != nil {
		s.unhook()
	}
	s.result <- r
	close(s.result)
}

// wake makes the loop run an iteration now.
func (p *Pacer) wake() {
	p.mu.Lock()
	p.wakeLocked()
	p.mu.Unlock()
}

func (p *Pacer) wakeLocked() {
	p.wakeReq = true
	if p.tfd >= 0 {
		armAt(p.tfd, 1) // an absolute time in the past expires at once
	}
}

// armAt sets the timer to expire at CLOCK_MONOTONIC time t ns; t = 0 disarms.
func armAt(tfd int, t int64) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(t)}
	// Cannot fail with a valid fd and a normalised time.
	_ = unix.TimerfdSettime(tfd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail
	return ts.Nano()
}

// Run runs the sending loop until ctx is done. Streams still playing then end
// with ErrPacerClosed, without their closing packets: cancel pages first for
// a clean shutdown. Run may be called once.
func (p *Pacer) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.state != stateNew {
		p.mu.Unlock()
		return errors.New("pacer: run called twice")
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		p.state = stateClosed
		p.mu.Unlock()
		p.failPending()
		return fmt.Errorf("pacer: timerfd: %w", err)
	}
	p.tfd, p.state = tfd, stateRunning
	p.mu.Unlock()

	defer context.AfterFunc(ctx, p.wake)()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.loop(ctx)
	}()
	<-done
	return nil
}

func (p *Pacer) failPending() {
	p.mu.Lock()
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, s := range pending {
		s.finish(Result{Err: ErrPacerClosed})
	}
}

// loop is the sending thread. It locks its OS thread and never unlocks it, so
// the thread, and the real-time priority it may get, dies with the goroutine
// instead of going back to the Go scheduler's pool.
func (p *Pacer) loop(ctx context.Context) {
	runtime.LockOSThread()
	p.tid.Store(int64(unix.Gettid()))
	p.raisePriority()

	var (
		streams []*stream
		b       batcher
		tick    [8]byte
		lat     wakeLatency
	)
	for {
		p.mu.Lock()
		streams = append(streams, p.pending...)
		clear(p.pending)
		p.pending = p.pending[:0]
		p.wakeReq = false
		closing := ctx.Err() != nil
		if closing {
			p.state = stateClosed
			unix.Close(p.tfd)
			p.tfd = -1
		}
		p.mu.Unlock()
		if closing {
			for _, s := range streams {
				s.finish(Result{Stats: s.stats, Err: ErrPacerClosed})
			}
			return
		}

		var next, target int64
		streams, next = p.tick(streams, &b)

		p.mu.Lock()
		switch {
		case p.wakeReq || len(p.pending) > 0:
			armAt(p.tfd, 1)
		case next == 0:
			armAt(p.tfd, 0) // no streams: sleep until Play or Run's end wakes us
		default:
			target = max(next-lat.margin, 1)
			if target <= monotonic() {
				target = 0 // already due: not a sample of the timer's latency
			}
			armAt(p.tfd, max(target, 1))
		}
		p.mu.Unlock()
		// A blocking read: this thread sleeps in the kernel until the timer
		// expires, then runs at once (under SCHED_FIFO, ahead of everything else).
		if _, err := unix.Read(p.tfd, tick[:]); err != nil && !errors.Is(err, syscall.EINTR) && !errors.Is(err, syscall.EAGAIN) {
			p.log.Error("pacer: read timerfd", "err", err)
			time.Sleep(time.Millisecond) // do not spin on a broken fd; ctx ends the loop
		}
		if target == 0 {
			continue
		}
		woke := monotonic()
		if woke < target {
			continue // woken by Play or a cancellation, not by the timer
		}
		lat.add(woke-target, p.spinLimit())
		// Woken early on purpose: absorb the timer's wake-up latency by
		// polling the clock until the packets are due.
		for woke < next && !p.wakeRequested() {
			woke = monotonic()
		}
	}
}

// spinLimit is how early the loop may wake: only under SCHED_FIFO.
func (p *Pacer) spinLimit() int64 {
	if !p.realtime.Load() {
		return 0
	}
	return int64(p.spin)
}

// wakeLatency tracks how late the timer wakes the loop and derives the
// early-wake margin from it: the 99th percentile of the last 256 wake-ups
// plus 50 µs, bounded by the spin limit.
type wakeLatency struct {
	ring   [256]int64
	n      int
	margin int64
}

func (w *wakeLatency) add(late, limit int64) {
	w.ring[w.n%len(w.ring)] = late
	w.n++
	if w.n%64 != 0 {
		w.margin = min(w.margin, limit)
		return
	}
	sorted := w.ring
	k := min(w.n, len(sorted))
	slices.Sort(sorted[:k])
	w.margin = min(sorted[k*99/100]+int64(50*time.Microsecond), limit)
}

func (p *Pacer) wakeRequested() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wakeReq
}

// raisePriority asks for SCHED_FIFO for this thread and logs the outcome once.
func (p *Pacer) raisePriority() {
	if p.priority <= 0 {
		return
	}
	attr := unix.SchedAttr{
		Policy:   unix.SCHED_FIFO,
		Priority: uint32(p.priority),
		// Threads cloned from this one must not inherit real-time priority.
		Flags: unix.SCHED_FLAG_RESET_ON_FORK,
	}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		p.log.Warn("pacer: real-time priority not granted, pacing may jitter under load; grant CAP_SYS_NICE or CPUSchedulingPolicy=fifo",
			"policy", "SCHED_FIFO", "priority", p.priority, "err", err)
		return
	}
	p.realtime.Store(true)
	p.log.Info("pacer: running with real-time priority", "policy", "SCHED_FIFO", "priority", p.priority)
}

// tick sends every packet due by now, retires finished streams and returns
// the remaining streams and the earliest due time among them (0 if none).
func (p *Pacer) tick(streams []*stream, b *batcher) ([]*stream, int64) {
	now := monotonic()
	b.reset()
	for _, s := range streams {
		if !s.started {
			s.started, s.start = true, alignUp(now, int64(p.grid))
		}
		if s.stopReq.Load() && !s.stats.Stopped {
			s.stats.Stopped = true
			s.src.Stop()
		}
		for n := 0; ; n++ {
			d, ok := s.src.Due()
			if !ok || n == maxPacketsPerTick {
				s.finished = s.finished || !ok
				break
			}
			due := s.start + int64(d)
			if due > now {
				s.next = due
				break
			}
			b.add(s, due)
		}
	}
	b.flush(p.lateAfter)

	var next int64
	kept := streams[:0]
	for _, s := range streams {
		if s.finished || s.err != nil {
			r := Result{Stats: s.stats, Err: s.err}
			if r.Err == nil && s.stats.Stopped {
				r.Err = s.ctx.Err()
			}
			s.finish(r)
			continue
		}
		kept = append(kept, s)
		if next == 0 || s.next < next {
			next = s.next
		}
	}
	clear(streams[len(kept):])
	return kept, next
}

func alignUp(t, grid int64) int64 {
	if grid <= 0 {
		return t
	}
	return (t + grid - 1) / grid * grid
}

// batcher collects one tick's packets per socket for sendmmsg.
type batcher struct {
	arena []byte
	conns []*connBatch // touched this tick, in first-use order
	free  []*connBatch
}

type connBatch struct {
	pc     *ipv4.PacketConn
	msgs   []ipv4.Message
	owners []*stream
	dues   []int64
}

func (b *batcher) reset() {
	b.arena = b.arena[:0]
	for _, c := range b.conns {
		clear(c.owners)
		c.msgs, c.owners, c.dues = c.msgs[:0], c.owners[:0], c.dues[:0]
		c.pc = nil
		b.free = append(b.free, c)
	}
	b.conns = b.conns[:0]
}

// add appends s's next packet, due at due, to its socket's batch.
func (b *batcher) add(s *stream, due int64) {
	var c *connBatch
	for _, x := range b.conns {
		if x.pc == s.pc {
			c = x
			break
		}
	}
	if c == nil {
		if n := len(b.free); n > 0 {
			c, b.free = b.free[n-1], b.free[:n-1]
		} else {
			c = &connBatch{}
		}
		c.pc = s.pc
		b.conns = append(b.conns, c)
	}
	off := len(b.arena)
	b.arena = s.src.Append(b.arena)
	// If the arena grew, earlier packets still point into the old array,
	// which stays alive and unchanged until the flush.
	pkt := b.arena[off:len(b.arena):len(b.arena)]
	c.msgs = slices.Grow(c.msgs, 1)[:len(c.msgs)+1] // reuses earlier ticks' Messages
	m := &c.msgs[len(c.msgs)-1]
	if m.Buffers == nil {
		m.Buffers = make([][]byte, 1)
	}
	m.Buffers[0], m.Addr = pkt, s.addr
	c.owners = append(c.owners, s)
	c.dues = append(c.dues, due)
}

// flush sends every batch and books the outcome on the owning streams.
func (b *batcher) flush(lateAfter time.Duration) {
	for _, c := range b.conns {
		sendTime := monotonic()
		for i := 0; i < len(c.msgs); {
			n, err := c.pc.WriteBatch(c.msgs[i:], 0)
			n = max(n, 0) // sendmmsg's -1 comes through on error
			if n == 0 && err == nil {
				err = syscall.EIO // sendmmsg sent nothing yet reported no error
			}
			for j := i; j < i+n; j++ {
				s := c.owners[j]
				s.stats.Packets++
				s.stats.Bytes += len(c.msgs[j].Buffers[0])
				if late := time.Duration(sendTime - c.dues[j]); late > lateAfter {
					s.stats.Late++
					s.stats.MaxLate = max(s.stats.MaxLate, late)
				}
			}
			i += n
			if err == nil {
				continue
			}
			if i < len(c.msgs) { // message i failed
				s := c.owners[i]
				if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) {
					s.stats.Dropped++
				} else if s.err == nil {
					s.err = fmt.Errorf("send to %v: %w", c.msgs[i].Addr, err)
				}
				i++
			}
		}
	}
}
