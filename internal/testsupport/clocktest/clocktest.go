// Package clocktest is a manual clock.Clock for tests: time moves only
// when the test calls Advance, which runs the timers that fall due, in
// order, each at its own instant, on the test's goroutine. Timeline
// records "ms what" lines for tests that compare what happened when. Only
// tests import it.
package clocktest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/clock"
)

// Clock is a manual clock. Create it with New.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*timer
	calls  int           // AfterFunc calls
	waited int           // AfterFunc calls WaitTimer has seen
	added  chan struct{} // closed and replaced on each AfterFunc call
}

type timer struct {
	c       *Clock
	at      time.Time
	seq     int
	f       func()
	stopped bool
	fired   bool
}

var _ clock.Clock = (*Clock)(nil)

// New returns a Clock reading start.
func New(start time.Time) *Clock { return &Clock{now: start, added: make(chan struct{})} }

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d.
func (c *Clock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	c.calls++
	close(c.added)
	c.added = make(chan struct{})
	return t
}

// Stop cancels the timer.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.stopped || t.fired {
		return false
	}
	t.stopped = true
	return true
}

// Pending is the number of timers not yet fired or stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			n++
		}
	}
	return n
}

// WaitTimer waits until AfterFunc has been called once more than at the
// previous WaitTimer (a timer started on another goroutine), failing the
// test after timeout.
func (c *Clock) WaitTimer(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if c.calls > c.waited {
			c.waited++
			c.mu.Unlock()
			return
		}
		added := c.added
		c.mu.Unlock()
		select {
		case <-added:
		case <-deadline.C:
			t.Fatal("no timer was started")
		}
	}
}

// Drain marks every AfterFunc call so far as seen: the next WaitTimer
// waits for a new one.
func (c *Clock) Drain() {
	c.mu.Lock()
	c.waited = c.calls
	c.mu.Unlock()
}

// Advance moves time forward by d, firing every timer that falls due, in
// time order (then in order of creation), each at its own instant.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		c.timers = slices.DeleteFunc(c.timers, func(t *timer) bool { return t.stopped || t.fired })
		slices.SortFunc(c.timers, func(a, b *timer) int {
			if r := a.at.Compare(b.at); r != 0 {
				return r
			}
			return a.seq - b.seq
		})
		if len(c.timers) == 0 || c.timers[0].at.After(end) {
			c.now = end
			c.mu.Unlock()
			return
		}
		t := c.timers[0]
		t.fired = true
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}
