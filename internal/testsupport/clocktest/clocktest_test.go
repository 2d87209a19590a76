package clocktest

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestAdvance: due timers fire in time order, then creation order, each
// at its own instant; stopped and later ones do not; WaitTimer counts
// AfterFunc calls and Drain forgets them.
func TestAdvance(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := New(start)
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, name+"@"+c.Now().Sub(start).String()) }
	}
	c.AfterFunc(2*time.Second, at("b"))
	c.AfterFunc(time.Second, at("a"))
	c.AfterFunc(2*time.Second, at("c"))
	stopped := c.AfterFunc(1500*time.Millisecond, at("stopped"))
	c.AfterFunc(3*time.Second, at("late"))
	c.WaitTimer(t, time.Second)
	c.Drain()
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop: want true once, then false")
	}
	c.Advance(2500 * time.Millisecond)
	if want := []string{"a@1s", "b@2s", "c@2s"}; !slices.Equal(got, want) {
		t.Errorf("fired %v, want %v", got, want)
	}
	if c.Now() != start.Add(2500*time.Millisecond) || c.Pending() != 1 {
		t.Errorf("now %v, pending %d", c.Now().Sub(start), c.Pending())
	}
	go c.AfterFunc(time.Second, func() {})
	c.WaitTimer(t, 5*time.Second)
}

func TestTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tl := NewTimeline()
		tl.Add("start %s", "a")
		time.Sleep(1500 * time.Millisecond)
		tl.Add("end")
		want := []string{"00000 start a", "01500 end"}
		if got := tl.Lines(); !slices.Equal(got, want) {
			t.Errorf("lines %q, want %q", got, want)
		}
		if d := time.Since(tl.Start()); d != 1500*time.Millisecond {
			t.Errorf("since start %v", d)
		}
	})
}
