package pacer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
	_ "unsafe" // go:linkname runtime.nanotime

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Frame is the packet time of every stream parkpage sends, and the step of
// the grid Clocked streams start on.
const Frame = 20 * time.Millisecond

// Source is one stream's packets in order, each with its own due time.
// The Pacer calls a Source from its loop thread only.
type Source interface {
	// Due reports when the next packet is due, as an offset from the start of
	// the stream; ok is false when the stream is over.
	Due() (due time.Duration, ok bool)
	// Append appends the next packet to dst and advances. Appending nothing
	// sends nothing for that due time (a pause).
	Append(dst []byte) []byte
	// Stop asks the stream to finish early. Due and Append then yield only
	// the stream's closing packets (Polycom's End burst), if it has any.
	Stop()
}

// Clocked is implemented by Sources that send on the 20 ms frame grid for
// a long time (RTP call legs). Their stream starts on a multiple of Frame
// of the monotonic clock, so all of them share each wake-up, and Start,
// called on the loop thread before the first Due, tells the Source the
// number of the frame its offset 0 falls on. Frame numbers are global:
// every Clocked stream sending at the same time is in the same frame.
type Clocked interface {
	Start(frame uint64)
}

// Reporter is implemented by Sources that outlive send errors (a call leg
// whose peer went away for a moment). The Pacer calls Sent on the loop
// thread once for every packet the Source appended, after it went out: err
// is nil, or why the kernel refused it. Send errors then do not end the
// stream. Without Reporter, a send error other than a full buffer ends the
// stream with that error.
type Reporter interface {
	Sent(err error)
}

// Sink is where a stream's packets go. The Pacer calls Conn on its loop
// thread before each packet, so the destination may change during a stream,
// and batches the packets due at the same time on the same PacketConn into
// one sendmmsg call. addr may be nil for a connected socket. Any UDP socket
// works, IPv6 too: ipv4.NewPacketConn only wraps it for sendmmsg.
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
// failed to send, or the Pacer shut down first (ErrClosed).
type Result struct {
	Stats
	Err error
}

// Pacer defaults.
const (
	DefaultPriority   = 10                   // SCHED_FIFO priority asked for; any real-time priority beats normal threads
	DefaultLateAfter  = 2 * time.Millisecond // lateness that counts a packet (and its wake-up) as late
	DefaultStartGrid  = time.Millisecond     // streams start on this grid so their packets share wake-ups
	DefaultMaxSpin    = time.Millisecond     // bound of the early wake-up, see WithMaxSpin
	maxPacketsPerTick = 1 << 16
)

// Option configures a Pacer.
type Option func(*Pacer)

// WithPriority sets the SCHED_FIFO priority (1–99) the loop thread asks for;
// 0 keeps normal scheduling.
func WithPriority(prio int) Option { return func(p *Pacer) { p.priority = prio } }

// WithLateAfter sets how late a packet may go out before it counts as late.
func WithLateAfter(d time.Duration) Option { return func(p *Pacer) { p.lateAfter = d } }

// WithMaxSpin bounds the early wake-up (default DefaultMaxSpin; 0 turns it
// off). Under SCHED_FIFO the loop wakes a little before packets are due, by
// the recent 99th percentile of its own timer wake-up latency, and polls the
// clock until they are: it costs that much CPU per wake-up and removes the
// timer's latency jitter (measured 0.1–0.7 ms on a VM, tens of µs on bare
// metal). Without real-time priority the loop could be preempted while
// polling, so it does not poll.
func WithMaxSpin(d time.Duration) Option { return func(p *Pacer) { p.spin = d } }

// WithIOUring chooses whether the loop sends through io_uring, one system
// call per wake-up for every socket (the default, where the kernel allows
// it), or with one sendmmsg per socket per wake-up (false; also the
// fallback, logged, where io_uring is unavailable).
func WithIOUring(on bool) Option { return func(p *Pacer) { p.noRing = !on } }

// WithStartGrid sets the grid stream starts are rounded up to (0: start at
// once). Streams on one grid with 20 or 30 ms cadences share wake-ups and
// sendmmsg calls instead of waking the loop at scattered times. The grid is
// also the most it delays a page's first packet: the default 1 ms keeps a
// cached announcement's first packet within a few milliseconds of Play while
// letting the streams of one page (started within microseconds) and pages
// started together share every wake-up. Clocked streams always start on
// the Frame grid.
func WithStartGrid(d time.Duration) Option { return func(p *Pacer) { p.grid = d } }

const (
	stateNew int32 = iota
	stateRunning
	stateClosed
)

// Pacer sends the packets of many streams at their due times from a single
// OS thread (see the package doc). Create it with New, run it with Run, and
// start streams with Play, before or while it runs.
type Pacer struct {
	log       *slog.Logger
	priority  int
	lateAfter time.Duration
	grid      time.Duration
	spin      time.Duration
	noRing    bool
	lookahead time.Duration
	keys      uint64 // stream keys handed out (loop thread only)

	// tfd is the loop's timer, created with the Pacer and closed when the
	// Pacer is garbage (runtime.AddCleanup): any goroutine may arm it to
	// wake the loop, so it must outlive every waker.
	tfd    int
	tfdErr error

	state   atomic.Int32
	pending atomic.Pointer[stream] // lock-free stack of streams Play handed over
	wakeReq atomic.Bool            // a Play or cancellation since the loop last looked

	realtime atomic.Bool
	uring    atomic.Bool
	tid      atomic.Int64 // loop thread id, for CPU accounting
	c        counters
}

// New returns a Pacer that logs to log (nil: discard).
func New(log *slog.Logger, opts ...Option) *Pacer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pacer{log: log, priority: DefaultPriority, lateAfter: DefaultLateAfter, grid: DefaultStartGrid, spin: DefaultMaxSpin, lookahead: DefaultLookahead}
	for _, o := range opts {
		o(p)
	}
	p.tfd, p.tfdErr = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if p.tfdErr == nil {
		runtime.AddCleanup(p, func(fd int) { unix.Close(fd) }, p.tfd)
	}
	return p
}

// Realtime reports whether the loop thread runs under SCHED_FIFO.
func (p *Pacer) Realtime() bool { return p.realtime.Load() }

// Running reports whether the loop runs (Run called and not yet over).
func (p *Pacer) Running() bool { return p.state.Load() == stateRunning }

// IOUring reports whether the loop sends through io_uring.
func (p *Pacer) IOUring() bool { return p.uring.Load() }

// ThreadID is the loop's OS thread id once Run has started it (0 before),
// for CPU accounting in benchmarks.
func (p *Pacer) ThreadID() int { return int(p.tid.Load()) }

// stream is the loop's state for one Play.
type stream struct {
	src      Source
	out      Sink
	rep      Reporter // src as a Reporter, or nil
	ctx      context.Context
	result   chan Result
	unhook   func() bool // releases the context.AfterFunc
	nextPend *stream     // link in the pending stack

	stopReq  atomic.Bool // set from the context's AfterFunc
	started  bool
	clocked  bool             // a Clocked source: no early wake-up on its account
	at       int64            // CLOCK_MONOTONIC ns before which offset 0 may not fall (PlayAt; 0: none)
	start    int64            // CLOCK_MONOTONIC ns of offset 0
	next     int64            // absolute due time of the next packet
	hint     int              // index of this stream's socket batch last wake-up
	ringPC   *ipv4.PacketConn // socket whose ring slot this stream holds, or nil
	finished bool

	// Kernel-timed sends (ahead.go).
	ahead      Ahead  // src as an Ahead, or nil
	key        uint64 // user_data of its chains' timeouts, for cancelling them
	inflight   int    // packets queued in the kernel, not yet completed
	unsent     int    // of those, cancelled: to rewind
	cancelling bool   // its queued chains are being cancelled
	lastQueued int64  // due time of its last packet queued in the kernel
	timedNext  bool   // next is the due time of a packet to queue ahead
	stats      Stats
	err        error
}

// Play starts playing src to out and returns a channel that receives the
// Result once, then closes. Cancelling ctx stops the stream: the Source gets
// to send its closing packets (Polycom's End burst), then the Result carries
// ctx's error. Play never blocks and takes no lock the loop takes.
func (p *Pacer) Play(ctx context.Context, out Sink, src Source) <-chan Result {
	return p.PlayAt(ctx, out, src, 0)
}

// PlayAt is Play with the stream's offset 0 at the Pacer clock's time at
// (Now's clock; rounded up to the start grid, or the frame grid for a
// Clocked source) instead of at once; at in the past or 0: at once. The
// loop holds the stream and wakes for its first packet itself, so streams
// started for the same moment (a zone's outputs lined up) leave in the same
// wake-up whatever the scheduler did to their goroutines. A stream
// cancelled before its start sends nothing, not even closing packets.
func (p *Pacer) PlayAt(ctx context.Context, out Sink, src Source, at int64) <-chan Result {
	res := make(chan Result, 1)
	if out == nil || src == nil {
		res <- Result{Err: errors.New("pacer: play: nil sink or source")}
		close(res)
		return res
	}
	s := &stream{src: src, out: out, ctx: ctx, result: res, at: at}
	s.rep, _ = src.(Reporter)
	s.ahead, _ = src.(Ahead)
	// Hooked before the loop can see s, so finish always finds unhook set.
	s.unhook = context.AfterFunc(ctx, func() {
		s.stopReq.Store(true)
		p.wake()
	})
	if p.state.Load() == stateClosed {
		s.finish(Result{Err: ErrClosed})
		return res
	}
	for {
		head := p.pending.Load()
		s.nextPend = head
		if p.pending.CompareAndSwap(head, s) {
			break
		}
	}
	if p.state.Load() == stateClosed {
		// The loop may have taken its last look before our push.
		p.failPending()
		return res
	}
	p.wake()
	return res
}

// takingBack reports whether the stream's packets queued in the kernel are
// to be cancelled (a stop not yet passed on to the Source, or an error)
// and some still are.
func (s *stream) takingBack() bool {
	return s.inflight > 0 && (s.err != nil || s.stopReq.Load() && !s.stats.Stopped)
}

// releaseRing gives up the stream's hold on its socket's ring slot.
func (s *stream) releaseRing(r *ring) {
	if s.ringPC != nil && r != nil {
		r.release(s.ringPC)
	}
	s.ringPC = nil
}

func (s *stream) finish(r Result) {
	if s.unhook != nil {
		s.unhook()
	}
	s.result <- r
	close(s.result)
}

// takePending returns the streams Play handed over, oldest first.
func (p *Pacer) takePending(dst []*stream) []*stream {
	n := len(dst)
	for s := p.pending.Swap(nil); s != nil; {
		next := s.nextPend
		s.nextPend = nil
		dst = append(dst, s)
		s = next
	}
	slices.Reverse(dst[n:])
	return dst
}

// failPending ends every handed-over stream with ErrClosed.
func (p *Pacer) failPending() {
	for s := p.pending.Swap(nil); s != nil; {
		next := s.nextPend
		s.finish(Result{Stats: s.stats, Err: ErrClosed})
		s = next
	}
}

// wake makes the loop run an iteration now. Safe from any goroutine.
func (p *Pacer) wake() {
	p.wakeReq.Store(true)
	if p.tfdErr == nil {
		armAt(p.tfd, 1) // an absolute time in the past expires at once
	}
}

// armAt sets the timer to expire at CLOCK_MONOTONIC time t ns; t = 0 disarms.
func armAt(tfd int, t int64) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(t)}
	// Cannot fail with a valid fd and a normalised time.
	_ = unix.TimerfdSettime(tfd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

// Now is the Pacer's clock: CLOCK_MONOTONIC in nanoseconds, the timerfd's
// clock. Frame n of the grid Clocked streams use begins at n*Frame.
func Now() int64 { return nanotime() }

// At converts t to the Pacer's clock for PlayAt (0 for the zero time).
func At(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return Now() + int64(time.Until(t))
}

// nanotime is the Go runtime's CLOCK_MONOTONIC reading, through the vDSO.
// unix.ClockGettime is a real system call: it cost 2.5–4 µs here, which
// with two readings per call leg per frame was a third of a core at 1,000
// parked calls.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Run runs the sending loop until ctx is done. Streams still playing then end
// with ErrClosed, without their closing packets: cancel pages first for a
// clean shutdown. Run may be called once.
func (p *Pacer) Run(ctx context.Context) error {
	if !p.state.CompareAndSwap(stateNew, stateRunning) {
		return errors.New("pacer: run called twice")
	}
	if p.tfdErr != nil {
		p.state.Store(stateClosed)
		p.failPending()
		return fmt.Errorf("pacer: timerfd: %w", p.tfdErr)
	}
	defer context.AfterFunc(ctx, p.wake)()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.loop(ctx)
	}()
	<-done
	return nil
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
	b.ring = p.openRing()
	defer func() {
		if b.ring != nil {
			b.ring.close()
		}
	}()
	for {
		p.c.passes.Add(1)
		p.wakeReq.Store(false)
		streams = p.takePending(streams)
		if ctx.Err() != nil {
			p.state.Store(stateClosed)
			armAt(p.tfd, 0)
			streams = p.takePending(streams)
			if b.ring != nil {
				b.ring.drain() // the kernel lets go of every timed packet
			}
			for _, s := range streams {
				s.releaseRing(b.ring)
				s.finish(Result{Stats: s.stats, Err: ErrClosed})
			}
			p.c.streams.Store(0)
			return
		}

		var (
			target, next int64
			precise      bool
		)
		streams, next, precise = p.tick(streams, &b)
		p.c.streams.Store(int64(len(streams)))

		switch {
		case next == 0:
			armAt(p.tfd, 0) // no streams: sleep until Play or Run's end wakes us
		case !precise:
			// Only Clocked streams (call legs) are due: wake on time and
			// accept the timer's latency (receivers' jitter buffers absorb
			// it) rather than poll the clock every frame a call is parked.
			armAt(p.tfd, next)
		default:
			target = max(next-lat.margin, 1)
			if target <= Now() {
				target = 0 // already due: not a sample of the timer's latency
			}
			armAt(p.tfd, max(target, 1))
		}
		// A Play or cancellation between the top of the loop and the arming
		// above may have had its wake-up overwritten: look again.
		if p.wakeReq.Load() {
			continue
		}
		// A blocking read: this thread sleeps in the kernel until the timer
		// expires, then runs at once (under SCHED_FIFO, ahead of everything else).
		if _, err := unix.Read(p.tfd, tick[:]); err != nil && !errors.Is(err, syscall.EINTR) && !errors.Is(err, syscall.EAGAIN) {
			p.log.Error("pacer: read timerfd", "err", err)
			time.Sleep(time.Millisecond) // do not spin on a broken fd; ctx ends the loop
		}
		if target == 0 {
			continue
		}
		woke := Now()
		if woke < target {
			continue // woken by Play or a cancellation, not by the timer
		}
		lat.add(woke-target, p.spinLimit())
		// Woken early on purpose: absorb the timer's wake-up latency by
		// polling the clock until the packets are due.
		for woke < next && !p.wakeReq.Load() {
			woke = Now()
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

// openRing sets up the io_uring the loop sends through, or logs why it
// sends with sendmmsg instead.
func (p *Pacer) openRing() *ring {
	if p.noRing {
		p.log.Info("pacer: sending with one sendmmsg per socket per wake-up, every packet at its due time (io_uring off by option)", "mode", "sendmmsg")
		return nil
	}
	r, err := newRing()
	if err != nil {
		p.log.Warn("pacer: io_uring unavailable, sending with one sendmmsg per socket per wake-up, every packet at its due time (more CPU per call leg; a stall of this process delays pages)",
			"mode", "sendmmsg", "err", err)
		return nil
	}
	p.uring.Store(true)
	switch err := r.probeTimed(); {
	case p.lookahead <= 0:
		p.log.Info("pacer: sending through io_uring, every packet at its due time (look-ahead off)", "mode", "io_uring")
	case err != nil:
		p.log.Warn("pacer: kernel-timed sends unavailable, sending every packet at its due time: a stall of this process delays pages", "mode", "io_uring", "err", err)
	default:
		r.ahead.ok = true
		p.log.Info("pacer: sending through io_uring; the kernel sends rendered streams' packets at their due time (io_uring timeouts, no qdisc needed)",
			"mode", "io_uring-timed", "lookahead", p.lookahead)
	}
	return r
}

// dropRing stops using a ring that failed: sendmmsg from now on.
func (p *Pacer) dropRing(b *batcher, streams []*stream, err error) {
	p.log.Error("pacer: io_uring failed, sending with sendmmsg from now on, every packet at its due time", "mode", "sendmmsg", "err", err)
	b.ring.drain()
	b.bookTimed(p.lateAfter, &p.c)
	for _, s := range streams {
		s.ringPC = nil
		s.inflight, s.cancelling = 0, false
	}
	b.ring.close()
	b.ring = nil
	p.uring.Store(false)
}

// raisePriority asks for SCHED_FIFO for this thread and logs the outcome once.
func (p *Pacer) raisePriority() {
	if p.priority <= 0 {
		return
	}
	attr := unix.SchedAttr{
		Size:     unix.SizeofSchedAttr,
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

// tick sends every packet due by now, queues in the kernel the packets of
// Ahead streams due within the look-ahead, retires finished streams and
// returns the remaining streams, the earliest time the loop must wake for
// them (0 if none), and whether a stream that wants the early wake-up (not
// Clocked, not queued ahead) is due then.
func (p *Pacer) tick(streams []*stream, b *batcher) (_ []*stream, next int64, precise bool) {
	now := Now()
	b.reset()
	b.bookTimed(p.lateAfter, &p.c)
	timed := b.ring != nil && b.ring.ahead.ok && p.lookahead > 0
	for _, s := range streams {
		if !s.started {
			s.started = true
			p.keys++
			s.key = p.keys & tagMask
			from := max(now, s.at)
			if c, ok := s.src.(Clocked); ok {
				s.clocked = true
				s.start = alignUp(from, int64(Frame))
				c.Start(uint64(s.start / int64(Frame)))
			} else {
				s.start = alignUp(from, int64(p.grid))
			}
		}
		if s.takingBack() {
			// Take back what is queued ahead before the Source stops, so
			// its closing packets follow the last packet that left.
			if !s.cancelling && b.ring != nil {
				s.cancelling = true
				if err := b.ring.cancel(s.key, false); err != nil {
					p.dropRing(b, streams, err)
				}
			}
			continue
		}
		if s.stopReq.Load() && !s.stats.Stopped {
			s.stats.Stopped = true
			if now < s.start {
				// Not begun (PlayAt): nothing to close. Whatever was queued
				// ahead for its start was taken back above.
				s.unsent, s.cancelling = 0, false
				s.finished = true
				continue
			}
			if s.unsent > 0 && s.ahead != nil {
				s.ahead.Rewind(s.unsent)
			}
			s.unsent, s.cancelling = 0, false
			s.src.Stop()
		}
		if s.err != nil {
			continue
		}
		horizon := now
		s.timedNext = false
		if timed && s.ahead != nil && b.ensureRing(s) {
			horizon, s.timedNext = now+int64(p.lookahead), true
		}
		for n := 0; ; n++ {
			d, ok := s.src.Due()
			if !ok || n == maxPacketsPerTick {
				s.finished = s.finished || !ok
				break
			}
			due := s.start + int64(d)
			if due > horizon {
				s.next = due
				break
			}
			if due <= now || !b.addTimed(s, due) {
				b.add(s, due)
			}
		}
	}
	if len(b.conns) > 0 {
		if err := b.flush(p.lateAfter, &p.c); err != nil {
			p.dropRing(b, streams, err)
		}
		p.c.wakeups.Add(1)
		if late := b.firstSend - b.firstDue; late > int64(p.lateAfter) {
			p.c.lateWakeups.Add(1)
		}
		if w := Now() - now; w > p.c.maxWork.Load() {
			p.c.maxWork.Store(w)
		}
	}
	// After the immediate sends, so a stream's packets leave in order.
	if len(b.timed) > 0 && b.ring != nil {
		if err := b.ring.queueTimed(b.timed); err != nil {
			p.dropRing(b, streams, err)
		}
	}

	kept := streams[:0]
	for _, s := range streams {
		if (s.finished || s.err != nil) && s.inflight == 0 {
			s.releaseRing(b.ring)
			r := Result{Stats: s.stats, Err: s.err}
			if r.Err == nil && s.stats.Stopped {
				r.Err = s.ctx.Err()
			}
			s.finish(r)
			continue
		}
		kept = append(kept, s)
		var at int64
		prec := false
		switch {
		case s.inflight > 0 && (s.finished || s.takingBack()):
			// Wait for the kernel's completions: after the last queued
			// due time, or soon for a cancellation.
			at = now + int64(time.Millisecond)
			if !s.cancelling && s.lastQueued > now {
				at = s.lastQueued + int64(time.Millisecond)
			}
		case s.timedNext:
			at = s.next - int64(p.lookahead)
		default:
			at, prec = s.next, !s.clocked
		}
		switch {
		case next == 0 || at < next:
			next, precise = at, prec
		case at == next && prec:
			precise = true
		}
	}
	clear(streams[len(kept):])
	return kept, next, precise
}

func alignUp(t, grid int64) int64 {
	if grid <= 0 {
		return t
	}
	return (t + grid - 1) / grid * grid
}
