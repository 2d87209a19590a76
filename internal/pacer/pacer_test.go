package pacer

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

// TestBatchesStreams runs many streams on one socket, all started on one
// grid so their packets go out in the same wake-ups and sendmmsg batches.
func TestBatchesStreams(t *testing.T) {
	t.Parallel()
	const streams, frames = 20, 10
	p := startPacer(t, nil, WithStartGrid(Frame))
	r := newReceiver(t)
	pc := newConn(t)
	var results []<-chan Result
	for i := range streams {
		results = append(results, p.Play(context.Background(), sink{pc, r.addr()}, &seqSource{id: i, n: frames, interval: Frame}))
	}
	next := make([]int, streams)
	for range streams * frames {
		id, seq := parse(t, r.next(t))
		if id >= streams || seq != next[id] {
			t.Fatalf("stream %d: packet %d, want %d", id, seq, next[id])
		}
		next[id]++
	}
	for _, c := range results {
		if res := result(t, c); res.Err != nil || res.Packets != frames || res.Bytes != 8*frames {
			t.Fatalf("result %+v", res)
		}
	}
	c := p.Counters()
	if c.Packets != streams*frames || c.Bytes != 8*streams*frames {
		t.Errorf("counters %+v, want %d packets", c, streams*frames)
	}
	// Batched, the streams share wake-ups: about one per frame. Unbatched
	// would be one per packet.
	if c.Wakeups > streams*frames/2 {
		t.Errorf("%d wake-ups for %d packets: not batched", c.Wakeups, streams*frames)
	}
}

// lateSource is due long before it is played: every packet is late.
type lateSource struct{ n int }

func (s *lateSource) Due() (time.Duration, bool) { return -time.Second, s.n > 0 }
func (s *lateSource) Append(dst []byte) []byte   { s.n--; return append(dst, "late"...) }
func (s *lateSource) Stop()                      {}

// TestLatenessCounters checks that late packets are counted on the stream
// and in the Pacer's totals, with their wake-up, and that on-time packets
// are not.
func TestLatenessCounters(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil, WithStartGrid(0))
	r := newReceiver(t)
	res := result(t, p.Play(context.Background(), sink{newConn(t), r.addr()}, &lateSource{n: 3}))
	if res.Err != nil || res.Packets != 3 || res.Late != 3 || res.MaxLate < time.Second || res.Bytes != 12 {
		t.Fatalf("result %+v", res)
	}
	for range 3 {
		if b := r.next(t); string(b) != "late" {
			t.Fatalf("got %q", b)
		}
	}
	c := p.Counters()
	if c.LatePackets != 3 || c.MaxLate < time.Second || c.LateWakeups != 1 || c.Wakeups != 1 || c.Packets != 3 {
		t.Fatalf("counters after 3 late packets in one wake-up: %+v", c)
	}

	// A lenient Pacer counts nothing late for a stream that is on time
	// (within a second, so only a stalled machine could fail this).
	p2 := startPacer(t, nil, WithLateAfter(time.Second))
	res = result(t, p2.Play(context.Background(), sink{newConn(t), r.addr()}, &seqSource{n: 5, interval: Frame}))
	for range 5 {
		r.next(t)
	}
	if c := p2.Counters(); res.Err != nil || res.Late != 0 || c.LatePackets != 0 || c.LateWakeups != 0 || c.Packets != 5 || c.MaxLate != 0 {
		t.Fatalf("on-time stream: result %+v, counters %+v", res, c)
	}
}

// TestIdleSleeps checks that a Pacer with no stream does not wake at all
// (no timer ticks, no late wake-ups counted), wakes for the first stream,
// and goes back to sleep when the last one ends.
func TestIdleSleeps(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil)
	tid := waitThread(t, p)
	// The loop thread starts, looks once for streams, and sleeps (its
	// first pass done: 'S' alone may be a lock taken while starting).
	asleep := func() bool {
		n := p.c.passes.Load()
		if n == 0 || threadState(t, tid) != 'S' {
			return false
		}
		time.Sleep(20 * time.Millisecond) // and stays asleep: not a lock on its way
		return p.c.passes.Load() == n && threadState(t, tid) == 'S'
	}
	runtest.WaitFor(t, "loop asleep", recvTimeout, asleep)

	idle := func(what string) {
		t.Helper()
		before, passes, c0 := switches(t, tid), p.c.passes.Load(), p.Counters()
		// A window of absence, not a readiness wait: a 20 ms ticker
		// would wake 25 times in it.
		time.Sleep(500 * time.Millisecond)
		woke, looped, c := switches(t, tid)-before, p.c.passes.Load()-passes, p.Counters()
		// The loop itself must not run. The thread may still wake for a
		// signal sent to the process (its read restarts without a loop
		// pass): a few under a loaded test run, not a ticker's 25.
		if looped != 0 || woke > 5 || c.Wakeups != c0.Wakeups || c.LateWakeups != c0.LateWakeups || c.Streams != 0 {
			t.Fatalf("%s: the loop ran %d times and its thread woke %d times in 500 ms; counters %+v", what, looped, woke, c)
		}
	}
	idle("before any stream")
	if c := p.Counters(); c.Wakeups != 0 || c.LateWakeups != 0 {
		t.Fatalf("idle Pacer counted %+v", c)
	}

	r := newReceiver(t)
	res := p.Play(context.Background(), sink{newConn(t), r.addr()}, &seqSource{n: 3, interval: Frame})
	for i := range 3 {
		if _, seq := parse(t, r.next(t)); seq != i {
			t.Fatalf("packet %d, want %d", seq, i)
		}
	}
	if res := result(t, res); res.Err != nil || res.Packets != 3 {
		t.Fatalf("result %+v", res)
	}
	runtest.WaitFor(t, "loop asleep again", recvTimeout, asleep)
	idle("after the last stream")
}

// TestStreamsComeAndGo adds and removes streams while another plays: the
// running stream loses nothing, a cancelled stream ends with the context's
// error, and the stream count follows.
func TestStreamsComeAndGo(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil)
	r := newReceiver(t)
	pc := newConn(t)
	to := sink{pc, r.addr()}

	ctxA, cancelA := context.WithCancel(context.Background())
	a := p.Play(ctxA, to, &seqSource{id: 0, n: -1, interval: Frame})
	seen := map[int]int{} // id -> next seq expected
	recv := func(until func() bool) {
		t.Helper()
		for !until() {
			id, seq := parse(t, r.next(t))
			if seq != seen[id] {
				t.Fatalf("stream %d: packet %d after %d", id, seq, seen[id]-1)
			}
			seen[id]++
		}
	}
	recv(func() bool { return seen[0] >= 3 })

	ctxB, cancelB := context.WithCancel(context.Background())
	b := p.Play(ctxB, to, &seqSource{id: 1, n: -1, interval: Frame})
	c := p.Play(context.Background(), to, &seqSource{id: 2, n: 25, interval: Frame})
	runtest.WaitFor(t, "three streams counted", recvTimeout, func() bool { return p.Counters().Streams == 3 })
	recv(func() bool { return seen[1] >= 3 && seen[2] >= 1 })
	cancelB()
	rb := result(t, b)
	if !errors.Is(rb.Err, context.Canceled) || !rb.Stopped || rb.Packets < 3 {
		t.Fatalf("cancelled stream: %+v", rb)
	}
	if rc := result(t, c); rc.Err != nil || rc.Packets != 25 {
		t.Fatalf("finished stream: %+v", rc)
	}
	// Stream 0 keeps going, gap-free, after the others left.
	mark := seen[0]
	recv(func() bool { return seen[0] >= mark+3 && seen[2] == 25 && seen[1] == rb.Packets })
	runtest.WaitFor(t, "one stream left", recvTimeout, func() bool { return p.Counters().Streams == 1 })
	cancelA()
	if ra := result(t, a); !errors.Is(ra.Err, context.Canceled) {
		t.Fatalf("stream 0: %+v", ra)
	}
	runtest.WaitFor(t, "no stream left", recvTimeout, func() bool { return p.Counters().Streams == 0 })
}

// TestConcurrentPlay hands streams over from many goroutines at once, some
// cancelled at once: every stream gets exactly one Result, and the totals
// add up. Under -race this checks the lock-free hand-over.
func TestConcurrentPlay(t *testing.T) {
	t.Parallel()
	const goroutines, each = 8, 25
	p := startPacer(t, nil, WithStartGrid(0))
	r := newReceiver(t)
	go func() { // drain
		buf := make([]byte, 64)
		for {
			if _, err := r.c.Read(buf); err != nil {
				return
			}
		}
	}()
	pc := newConn(t)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		packets int
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				ctx, cancel := context.WithCancel(context.Background())
				c := p.Play(ctx, sink{pc, r.addr()}, &seqSource{id: g*each + i, n: 3, interval: time.Millisecond})
				if i%3 == 0 {
					cancel()
				}
				res := result(t, c)
				cancel()
				if _, open := <-c; open {
					t.Error("second Result")
				}
				if i%3 != 0 && (res.Err != nil || res.Packets != 3) {
					t.Errorf("stream %d: %+v", g*each+i, res)
				}
				mu.Lock()
				packets += res.Packets
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if c := p.Counters(); int(c.Packets) != packets || c.Streams != 0 {
		t.Fatalf("counters %+v; streams reported %d packets", c, packets)
	}
}

// clockedSource records what the Pacer told it.
type clockedSource struct {
	seqSource
	frame   uint64
	started bool
	sent    []error
}

func (s *clockedSource) Start(frame uint64) { s.frame, s.started = frame, true }
func (s *clockedSource) Sent(err error)     { s.sent = append(s.sent, err) }
func (s *clockedSource) Due() (time.Duration, bool) {
	if !s.started {
		panic("Due before Start")
	}
	return s.seqSource.Due()
}

// TestClockedAndReporter checks the call-leg contract: a Clocked stream
// starts on the global frame grid, and a Reporter hears of every packet and
// survives send errors.
func TestClockedAndReporter(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil)
	r := newReceiver(t)
	before := Now()
	src := &clockedSource{seqSource: seqSource{n: 3, interval: Frame}}
	res := result(t, p.Play(context.Background(), sink{newConn(t), r.addr()}, src))
	if res.Err != nil || res.Packets != 3 {
		t.Fatalf("result %+v", res)
	}
	if start := int64(src.frame) * int64(Frame); start < before || start > Now() {
		t.Fatalf("frame %d starts at %d, outside the Play (%d..now)", src.frame, start, before)
	}
	if len(src.sent) != 3 || src.sent[0] != nil || src.sent[2] != nil {
		t.Fatalf("Sent calls: %v", src.sent)
	}

	// A closed socket: every packet fails, the stream carries on.
	pc := newConn(t)
	pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	src = &clockedSource{seqSource: seqSource{n: -1, interval: Frame}}
	c := p.Play(ctx, sink{pc, r.addr()}, src)
	runtest.WaitFor(t, "three failed packets", recvTimeout, func() bool { return p.Counters().Errors >= 3 })
	cancel()
	res = result(t, c)
	if !errors.Is(res.Err, context.Canceled) || res.Packets != 0 || len(src.sent) < 3 || src.sent[0] == nil {
		t.Fatalf("reporter on a closed socket: %+v, sent %v", res, src.sent)
	}
}

func TestSendError(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil)
	pc := newConn(t)
	pc.Close()
	res := result(t, p.Play(context.Background(), sink{pc, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}}, &seqSource{n: 5, interval: Frame}))
	if res.Err == nil || res.Packets != 0 || p.Counters().Errors != 1 {
		t.Fatalf("playing to a closed socket: %+v, %+v", res, p.Counters())
	}
}

// TestBatchError checks that a message the kernel refuses fails only its
// own stream while the rest of the batch still goes out.
func TestBatchError(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil, WithStartGrid(Frame))
	r := newReceiver(t)
	pc := newConn(t)
	// An IPv6 destination on an IPv4 socket, inside the sendmmsg batch.
	bad := p.Play(context.Background(), sink{pc, &net.UDPAddr{IP: net.IPv6loopback, Port: 9}}, &seqSource{n: 5, interval: Frame})
	ok := p.Play(context.Background(), sink{pc, r.addr()}, &seqSource{id: 1, n: 5, interval: Frame})
	if res := result(t, bad); res.Err == nil || res.Packets != 0 {
		t.Fatalf("stream to an IPv6 address on an IPv4 socket: %+v", res)
	}
	if res := result(t, ok); res.Err != nil || res.Packets != 5 {
		t.Fatalf("stream sharing the batch: %+v", res)
	}
	for i := range 5 {
		if id, seq := parse(t, r.next(t)); id != 1 || seq != i {
			t.Fatalf("got %d:%d, want 1:%d", id, seq, i)
		}
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	p := New(nil)
	r := newReceiver(t)
	s := sink{newConn(t), r.addr()}
	// Played before Run: waits for it.
	early := p.Play(context.Background(), s, &seqSource{n: 1000, interval: Frame})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	r.next(t) // the stream is playing
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	res := result(t, early)
	if !errors.Is(res.Err, ErrClosed) || res.Packets == 0 {
		t.Fatalf("stream at shutdown: %+v", res)
	}
	if res := result(t, p.Play(context.Background(), s, &seqSource{n: 1, interval: Frame})); !errors.Is(res.Err, ErrClosed) {
		t.Fatalf("Play after shutdown: %+v", res)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
	if res := result(t, p.Play(context.Background(), nil, nil)); res.Err == nil {
		t.Fatal("nil sink and source accepted")
	}
}

// TestPriority checks both outcomes of asking for SCHED_FIFO: refused
// (priority 100 is invalid everywhere, so the kernel always says no) must be
// logged once and playing must carry on; the default request is granted or
// not depending on privileges, and Realtime must agree with the kernel.
func TestPriority(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prio    int
		granted bool // must be granted (false: must not, or either for the default)
		any     bool
	}{
		{"refused", 100, false, false},
		{"disabled", 0, false, false},
		{"default", DefaultPriority, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logCapture{}
			p := startPacer(t, slog.New(logs), WithPriority(tt.prio))
			r := newReceiver(t)
			s := sink{newConn(t), r.addr()}
			if res := result(t, p.Play(context.Background(), s, &seqSource{n: 3, interval: Frame})); res.Err != nil || res.Packets != 3 {
				t.Fatalf("result %+v", res)
			}
			if res := result(t, p.Play(context.Background(), s, &seqSource{n: 2, interval: Frame})); res.Err != nil {
				t.Fatal(res.Err)
			}
			for range 5 {
				r.next(t)
			}
			policy := threadPolicy(t, p.ThreadID())
			if p.Realtime() != (policy == unix.SCHED_FIFO) {
				t.Fatalf("Realtime() = %v but the thread's policy is %d", p.Realtime(), policy)
			}
			if !tt.any && p.Realtime() != tt.granted {
				t.Fatalf("Realtime() = %v, want %v", p.Realtime(), tt.granted)
			}
			refusals := logs.count("not granted")
			switch {
			case tt.prio > 0 && !p.Realtime() && refusals != 1:
				t.Fatalf("refusal logged %d times, want once: %q", refusals, logs.recs)
			case (tt.prio == 0 || p.Realtime()) && refusals != 0:
				t.Fatalf("refusal logged: %q", logs.recs)
			}
			if p.Realtime() && logs.count("running with real-time priority") != 1 {
				t.Fatalf("grant not logged once: %q", logs.recs)
			}
			t.Logf("priority %d: realtime %v, logs %q", tt.prio, p.Realtime(), logs.recs)
		})
	}
}

// TestNowIsTheTimerClock checks that Now reads CLOCK_MONOTONIC, the clock
// the loop arms its timerfd on (not wall time, not boot time).
func TestNowIsTheTimerClock(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	if d := Now() - ts.Nano(); d < 0 || d > int64(time.Second) {
		t.Fatalf("Now is %v away from CLOCK_MONOTONIC", time.Duration(d))
	}
}

// TestPlayAt checks that a stream handed over ahead of its start sends its
// first packet at that start (not before; late only by the loop's
// wake-up, which the stream's Late counter would show), that streams of
// different cadences started for one moment leave in one wake-up, and that
// a stream cancelled before its start sends nothing, not even its closing
// packets.
func TestPlayAt(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil)
	r := newReceiver(t)
	pc := newConn(t)
	at := alignUp(Now()+int64(300*time.Millisecond), int64(Frame))
	c1 := p.PlayAt(context.Background(), sink{pc, r.addr()}, &seqSource{id: 1, n: 2, interval: 30 * time.Millisecond}, at)
	c2 := p.PlayAt(context.Background(), sink{pc, r.addr()}, &clockedSource{seqSource: seqSource{id: 2, n: 2, interval: Frame}}, at)
	firsts := map[int]int64{}
	for len(firsts) < 2 {
		id, seq := parse(t, r.next(t))
		now := Now()
		if seq == 0 {
			firsts[id] = now
		}
	}
	for id, got := range firsts {
		if got < at {
			t.Errorf("stream %d: first packet %v before its start", id, time.Duration(at-got))
		}
	}
	r1, r2 := result(t, c1), result(t, c2)
	if r1.Err != nil || r2.Err != nil || r1.Packets != 2 || r2.Packets != 2 {
		t.Fatalf("results %+v %+v", r1, r2)
	}
	if r1.Late == 0 && r2.Late == 0 {
		// On time, the two first packets share a wake-up: they arrive
		// within microseconds, not a frame, of each other.
		if d := time.Duration(firsts[1] - firsts[2]); d > 5*time.Millisecond || d < -5*time.Millisecond {
			t.Errorf("first packets %v apart, want one wake-up", d)
		}
	}

	// Cancelled before its start: no packet, the context's error.
	closing := &closingSource{}
	ctx, cancel := context.WithCancel(context.Background())
	c := p.PlayAt(ctx, sink{pc, r.addr()}, closing, Now()+int64(time.Hour))
	cancel()
	res := result(t, c)
	if !errors.Is(res.Err, context.Canceled) || res.Packets != 0 || closing.stopped {
		t.Fatalf("cancelled before start: %+v, Stop called %v", res, closing.stopped)
	}
}

// closingSource would send a closing packet once stopped (as Polycom's End
// burst).
type closingSource struct{ stopped, closed bool }

func (s *closingSource) Due() (time.Duration, bool) { return 0, !s.closed }
func (s *closingSource) Append(dst []byte) []byte {
	if s.stopped {
		s.closed = true
		return append(dst, "end"...)
	}
	return append(dst, "data"...)
}
func (s *closingSource) Stop() { s.stopped = true }
