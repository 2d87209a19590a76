// Package align lines up the first audio frame of one page on the outputs
// of one zone, so that a floor with Poly phones (group paging sends about
// 0.93 s of Alerts before the audio), Yealink phones (RTP multicast, audio
// at once), SIP amplifiers (audio after answer, settle and zone code) and
// line out hears an announcement once, not as an echo.
//
// Each output reports an output.Ready: the time it sends before its first
// audio frame (Lead) and, for one whose set-up cannot be held, the earliest
// moment it can start (At). Once every output of the zone has reported, or
// the zone's align_wait has passed, the zone decides the moment its first
// audio frame leaves (First): the latest of the reported outputs' earliest
// first frames. Outputs that report after that join late.
//
// The decision is pure (First, Offsets); Group adds the waiting, on a clock
// the tests choose. The gateway makes one Group per page per zone.
package align

import (
	"context"
	"sync"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
)

// DefaultWait is how long a zone waits for its slow outputs (a SIP
// amplifier still ringing) before the others start: zones.NAME.align_wait.
const DefaultWait = 3 * time.Second

// earliest is when r's first audio frame can leave if the output is told
// to start at the soonest at now.
func earliest(now time.Time, r output.Ready) time.Time {
	begin := now
	if r.At.After(begin) {
		begin = r.At
	}
	return begin.Add(r.Lead)
}

// First is the moment the zone's first audio frame leaves when the zone
// decides at now with reports rs: the latest earliest first frame among
// them (now when there is none).
func First(now time.Time, rs []output.Ready) time.Time {
	first := now
	for _, r := range rs {
		if e := earliest(now, r); e.After(first) {
			first = e
		}
	}
	return first
}

// Join is the moment a late output (reporting r at now, after the zone
// decided on first) sends its first audio frame: with the zone if it can
// still make it, else as soon as it can.
func Join(now, first time.Time, r output.Ready) time.Time {
	if e := earliest(now, r); e.After(first) {
		return e
	}
	return first
}

// Timing describes one output for Offsets, as offsets from the moment the
// zone's outputs are started (after the relays' lead time).
type Timing struct {
	// Lead is the output's preamble (Polycom's Alerts; 0 for RTP).
	Lead time.Duration
	// Reported is when the output reports (a SIP amplifier: its answer),
	// or, if Missing, when it gives up (a failed call).
	Reported time.Duration
	// Setup is how long after it reports the output can start at the
	// earliest (a SIP amplifier: settle + zone code + after_code).
	Setup   time.Duration
	Missing bool
}

// Offsets computes, for outputs described by ts on a zone that waits wait
// for them, when each one's first audio frame leaves (as an offset from the
// zone's start; -1 for a missing output) and whether it is in step with the
// zone. It is the Group's rule without the clock, for tests and planning.
func Offsets(ts []Timing, wait time.Duration) (first []time.Duration, inStep []bool) {
	t0 := time.Unix(0, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ready := func(t Timing) output.Ready {
		r := output.Ready{Lead: t.Lead}
		if t.Reported+t.Setup > 0 {
			r.At = at(t.Reported + t.Setup)
		}
		return r
	}
	// The zone decides once every output has reported or given up, or at
	// wait, whichever comes first.
	// An output reporting at wait or later is late: the wait's end comes
	// first.
	decide, late := time.Duration(0), false
	for _, t := range ts {
		if t.Reported >= wait {
			late = true
		} else {
			decide = max(decide, t.Reported)
		}
	}
	if late {
		decide = max(wait, 0)
	}
	onTime := func(t Timing) bool { return t.Reported < wait || !late }
	var on []output.Ready
	for _, t := range ts {
		if !t.Missing && onTime(t) {
			on = append(on, ready(t))
		}
	}
	f := First(at(decide), on)
	first = make([]time.Duration, len(ts))
	inStep = make([]bool, len(ts))
	for i, t := range ts {
		switch {
		case t.Missing:
			first[i] = -1
		case onTime(t):
			first[i], inStep[i] = f.Sub(t0), true
		default:
			j := Join(at(t.Reported), f, ready(t))
			first[i], inStep[i] = j.Sub(t0), !j.After(f)
		}
	}
	return first, inStep
}

// Group lines up one page on one zone's n aligned outputs, each reporting
// through its Member.
type Group struct {
	wait  time.Duration
	grid  func(time.Time) time.Time
	now   func() time.Time
	after func(time.Duration, func()) func() bool

	mu      sync.Mutex
	pending int
	reports []output.Ready
	decided bool
	first   time.Time
	done    chan struct{}
	stop    func() bool
}

// Clock is the time source of a Group: Now, and AfterFunc to run f after d
// (returning its stop function). Nil fields: the real clock.
type Clock struct {
	// Grid moves the decided first-audio moment to where the senders can
	// start a frame (the pacer's 20 ms grid, which SIP calls' RTP follows);
	// nil: as decided.
	Grid      func(time.Time) time.Time
	Now       func() time.Time
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
}

// NewGroup starts a group for n outputs that decides at the latest wait
// from now.
func NewGroup(n int, wait time.Duration, c Clock) *Group {
	g := &Group{wait: wait, grid: c.Grid, now: c.Now, after: c.AfterFunc, pending: n, done: make(chan struct{})}
	if g.now == nil {
		g.now = time.Now
	}
	if g.after == nil {
		g.after = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if n <= 0 {
		g.decideLocked()
		return g
	}
	g.stop = g.after(wait, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.decideLocked()
	})
	return g
}

func (g *Group) decideLocked() {
	if g.decided {
		return
	}
	g.decided = true
	g.first = First(g.now(), g.reports)
	if g.grid != nil {
		g.first = g.grid(g.first)
	}
	if g.stop != nil {
		g.stop()
	}
	close(g.done)
}

// Member is one output's handle on its Group: its Playback.Start.
type Member struct {
	g        *Group
	mu       sync.Mutex
	reported bool
	left     bool
}

// Member returns a handle for one of the group's outputs.
func (g *Group) Member() *Member { return &Member{g: g} }

// Start implements output.Starter. Only an output's first report counts
// towards the group's quorum; a retry's report is one more report.
func (m *Member) Start(ctx context.Context, r output.Ready) (time.Time, error) {
	m.mu.Lock()
	first := !m.reported && !m.left
	m.reported = true
	m.mu.Unlock()
	return m.g.start(ctx, r, first)
}

// Leave tells the group this output will not report (its Play returned
// without: it failed or was cut), so the others stop waiting for it. After
// a report it does nothing.
func (m *Member) Leave() {
	m.mu.Lock()
	leave := !m.reported && !m.left
	m.left = true
	m.mu.Unlock()
	if leave {
		m.g.leave()
	}
}

func (g *Group) start(ctx context.Context, r output.Ready, counts bool) (time.Time, error) {
	g.mu.Lock()
	if g.decided {
		t := Join(g.now(), g.first, r)
		g.mu.Unlock()
		return t, nil
	}
	g.reports = append(g.reports, r)
	if counts {
		g.pending--
	}
	if g.pending <= 0 {
		g.decideLocked()
	}
	g.mu.Unlock()
	select {
	case <-g.done:
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.first, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

func (g *Group) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.decided {
		return
	}
	g.pending--
	if g.pending <= 0 {
		g.decideLocked()
	}
}

// Decided returns a channel closed once the group has decided, and the
// decision is available from FirstFrame.
func (g *Group) Decided() <-chan struct{} { return g.done }

// FirstFrame is the decided moment of the zone's first audio frame (zero
// before the decision).
func (g *Group) FirstFrame() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.first
}

// Close stops the group's timer; outputs still waiting are released with
// what has been reported.
func (g *Group) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.decideLocked()
}
