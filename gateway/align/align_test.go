package align

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
)

const ms = time.Millisecond

// polycomLead is the phones' cadence: 31 Alerts 30 ms apart.
const polycomLead = 930 * ms

func TestOffsets(t *testing.T) {
	poly := Timing{Lead: polycomLead}
	rtp := Timing{}
	amp := func(answer, setup time.Duration) Timing { return Timing{Reported: answer, Setup: setup} }
	tests := []struct {
		name      string
		ts        []Timing
		wait      time.Duration
		first     []time.Duration
		inStep    []bool
		maxSpread time.Duration // among the outputs in step
	}{
		{"rtp alone", []Timing{rtp}, 3 * time.Second, []time.Duration{0}, []bool{true}, 0},
		{"polycom and rtp: rtp waits for the alerts", []Timing{poly, rtp}, 3 * time.Second,
			[]time.Duration{polycomLead, polycomLead}, []bool{true, true}, 0},
		{"a configured cadence, not a constant", []Timing{{Lead: 32 * 25 * ms}, rtp}, 3 * time.Second,
			[]time.Duration{800 * ms, 800 * ms}, []bool{true, true}, 0},
		{"amp ready before the alerts end", []Timing{poly, rtp, amp(100*ms, 500*ms)}, 3 * time.Second,
			[]time.Duration{100*ms + polycomLead, 100*ms + polycomLead, 100*ms + polycomLead}, []bool{true, true, true}, 0},
		{"slow amp holds everyone", []Timing{poly, rtp, amp(400*ms, 2*time.Second)}, 3 * time.Second,
			[]time.Duration{2400 * ms, 2400 * ms, 2400 * ms}, []bool{true, true, true}, 0},
		{"amp answering after align_wait joins late", []Timing{poly, rtp, amp(4*time.Second, time.Second)}, 3 * time.Second,
			[]time.Duration{3*time.Second + polycomLead, 3*time.Second + polycomLead, 5 * time.Second}, []bool{true, true, false}, 0},
		{"late amp that can still make it joins in step", []Timing{poly, amp(3100*ms, 500*ms)}, 3 * time.Second,
			[]time.Duration{3*time.Second + polycomLead, 3*time.Second + polycomLead}, []bool{true, true}, 0},
		{"failed amp holds nobody", []Timing{poly, rtp, {Reported: 50 * ms, Missing: true}}, 3 * time.Second,
			[]time.Duration{50*ms + polycomLead, 50*ms + polycomLead, -1}, []bool{true, true, false}, 0},
		{"two amps, slowest answered wins", []Timing{rtp, amp(100*ms, time.Second), amp(900*ms, 1500*ms)}, 3 * time.Second,
			[]time.Duration{2400 * ms, 2400 * ms, 2400 * ms}, []bool{true, true, true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, inStep := Offsets(tt.ts, tt.wait)
			if !slices.Equal(first, tt.first) || !slices.Equal(inStep, tt.inStep) {
				t.Errorf("Offsets = %v %v, want %v %v", first, inStep, tt.first, tt.inStep)
			}
		})
	}
}

// fakeClock runs AfterFunc callbacks when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !tm.stopped
		tm.stopped = true
		return was
	}
}

// advance moves the clock by d, running each timer at its own time.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, tm := range c.timers {
			if !tm.stopped && !tm.at.After(end) && (next == nil || tm.at.Before(next.at)) {
				next = tm
			}
		}
		if next == nil {
			break
		}
		next.stopped = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

func (c *fakeClock) clock() Clock { return Clock{Now: c.Now, AfterFunc: c.AfterFunc} }

type result struct {
	at  time.Time
	err error
}

// startAsync reports r through m on a goroutine and returns once the group
// has taken the report in (or has decided), so the test's clock moves only
// after it.
func startAsync(ctx context.Context, m *Member, r output.Ready) <-chan result {
	g := m.g
	g.mu.Lock()
	before, decided := len(g.reports), g.decided
	g.mu.Unlock()
	ch := make(chan result, 1)
	if decided { // a late report returns at once, on the clock as it is now
		at, err := m.Start(ctx, r)
		ch <- result{at, err}
		return ch
	}
	go func() {
		at, err := m.Start(ctx, r)
		ch <- result{at, err}
	}()
	for {
		g.mu.Lock()
		n, d := len(g.reports), g.decided
		g.mu.Unlock()
		if d || n > before {
			break
		}
		time.Sleep(ms)
	}
	return ch
}

// The Group: holdable outputs wait for the slowest one that reports within
// the wait; one that leaves (failed) stops being waited for; a report after
// the decision joins late; a cut (ctx) returns at once.
func TestGroup(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()

	t.Run("all report: the slowest wins", func(t *testing.T) {
		c := &fakeClock{now: t0}
		g := NewGroup(3, 3*time.Second, c.clock())
		poly, rtp, amp := g.Member(), g.Member(), g.Member()
		p := startAsync(ctx, poly, output.Ready{Lead: polycomLead})
		r := startAsync(ctx, rtp, output.Ready{})
		c.advance(200 * ms) // the amp answers; ready 1.5 s later
		a := startAsync(ctx, amp, output.Ready{At: c.Now().Add(1500 * ms)})
		want := t0.Add(1700 * ms)
		for _, ch := range []<-chan result{p, r, a} {
			if got := <-ch; got.err != nil || !got.at.Equal(want) {
				t.Errorf("start %v (%v), want %v", got.at.Sub(t0), got.err, want.Sub(t0))
			}
		}
	})

	t.Run("amp later than the wait joins late", func(t *testing.T) {
		c := &fakeClock{now: t0}
		g := NewGroup(3, time.Second, c.clock())
		poly, rtp, amp := g.Member(), g.Member(), g.Member()
		p := startAsync(ctx, poly, output.Ready{Lead: polycomLead})
		r := startAsync(ctx, rtp, output.Ready{})
		select {
		case <-g.Decided():
			t.Fatal("decided while the amp is still setting up")
		default:
		}
		c.advance(time.Second)
		want := t0.Add(time.Second + polycomLead)
		for _, ch := range []<-chan result{p, r} {
			if got := <-ch; got.err != nil || !got.at.Equal(want) {
				t.Errorf("start %v (%v), want %v", got.at.Sub(t0), got.err, want.Sub(t0))
			}
		}
		c.advance(2 * time.Second) // answers at 3 s, ready at 4 s
		got := <-startAsync(ctx, amp, output.Ready{At: c.Now().Add(time.Second)})
		if got.err != nil || !got.at.Equal(t0.Add(4*time.Second)) {
			t.Errorf("late amp starts %v (%v), want 4s: on its own", got.at.Sub(t0), got.err)
		}
	})

	t.Run("failed output stops being waited for", func(t *testing.T) {
		c := &fakeClock{now: t0}
		g := NewGroup(2, 3*time.Second, c.clock())
		rtp, amp := g.Member(), g.Member()
		r := startAsync(ctx, rtp, output.Ready{})
		c.advance(100 * ms)
		amp.Leave()
		amp.Leave() // twice is once
		if got := <-r; got.err != nil || !got.at.Equal(t0.Add(100*ms)) {
			t.Errorf("start %v (%v), want 100ms", got.at.Sub(t0), got.err)
		}
	})

	t.Run("retry reports once more without counting twice", func(t *testing.T) {
		c := &fakeClock{now: t0}
		g := NewGroup(2, 3*time.Second, c.clock())
		rtp, amp := g.Member(), g.Member()
		cctx, cancel := context.WithCancel(ctx)
		a := startAsync(cctx, amp, output.Ready{At: t0.Add(time.Second)})
		cancel() // the first attempt's call failed
		if got := <-a; !errors.Is(got.err, context.Canceled) {
			t.Fatalf("cut start returned %v, want context.Canceled", got.err)
		}
		a = startAsync(ctx, amp, output.Ready{At: t0.Add(2 * time.Second)})
		select {
		case <-g.Decided():
			t.Fatal("a retry's report counted as a second output")
		default:
		}
		r := startAsync(ctx, rtp, output.Ready{})
		for _, ch := range []<-chan result{a, r} {
			if got := <-ch; got.err != nil || !got.at.Equal(t0.Add(2*time.Second)) {
				t.Errorf("start %v (%v), want 2s", got.at.Sub(t0), got.err)
			}
		}
	})

	t.Run("grid", func(t *testing.T) {
		c := &fakeClock{now: t0}
		cl := c.clock()
		cl.Grid = func(t time.Time) time.Time { return t.Truncate(20 * ms).Add(20 * ms) }
		g := NewGroup(2, 3*time.Second, cl)
		r := startAsync(ctx, g.Member(), output.Ready{})
		p := startAsync(ctx, g.Member(), output.Ready{Lead: 925 * ms})
		for _, ch := range []<-chan result{r, p} {
			if got := <-ch; !got.at.Equal(t0.Add(940 * ms)) {
				t.Errorf("start %v, want 940ms (the next frame)", got.at.Sub(t0))
			}
		}
	})

	t.Run("close releases waiters", func(t *testing.T) {
		c := &fakeClock{now: t0}
		g := NewGroup(2, 3*time.Second, c.clock())
		r := startAsync(ctx, g.Member(), output.Ready{})
		g.Close()
		if got := <-r; got.err != nil || !got.at.Equal(t0) {
			t.Errorf("start %v (%v), want 0", got.at.Sub(t0), got.err)
		}
	})
}

// The Group's decisions agree with Offsets on random zones.
func FuzzGroupMatchesOffsets(f *testing.F) {
	f.Add(uint16(930), uint16(0), uint16(200), uint16(1500), uint16(3000), false)
	f.Add(uint16(930), uint16(4000), uint16(200), uint16(1500), uint16(3000), true)
	f.Fuzz(func(t *testing.T, lead, ans1, setup1, ans2, wait uint16, fail bool) {
		if wait == 0 {
			return
		}
		ts := []Timing{
			{Lead: time.Duration(lead) * ms},
			{},
			{Reported: time.Duration(ans1) * ms, Setup: time.Duration(setup1) * ms, Missing: fail},
			{Reported: time.Duration(ans2) * ms, Setup: 100 * ms},
		}
		want, _ := Offsets(ts, time.Duration(wait)*ms)

		t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
		c := &fakeClock{now: t0}
		g := NewGroup(len(ts), time.Duration(wait)*ms, c.clock())
		members := make([]*Member, len(ts))
		for i := range members {
			members[i] = g.Member()
		}
		got := make([]time.Duration, len(ts))
		chans := make([]<-chan result, len(ts))
		// Events in time order, fixed outputs at 0.
		type ev struct {
			at time.Duration
			i  int
		}
		var evs []ev
		for i, tt := range ts {
			evs = append(evs, ev{tt.Reported, i})
		}
		slices.SortStableFunc(evs, func(a, b ev) int { return int(a.at - b.at) })
		now := time.Duration(0)
		for _, e := range evs {
			if e.at > now {
				c.advance(e.at - now)
				now = e.at
			}
			tt := ts[e.i]
			if tt.Missing {
				members[e.i].Leave()
				got[e.i] = -1
				continue
			}
			r := output.Ready{Lead: tt.Lead}
			if tt.Reported+tt.Setup > 0 {
				r.At = t0.Add(tt.Reported + tt.Setup)
			}
			chans[e.i] = startAsync(context.Background(), members[e.i], r)
		}
		c.advance(time.Duration(wait) * ms)
		for i, ch := range chans {
			if ch != nil {
				got[i] = (<-ch).at.Sub(t0)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("Group %v, Offsets %v for %+v wait %v", got, want, ts, wait)
		}
	})
}
