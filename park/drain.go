package park

import (
	"errors"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// ErrDraining refuses a park while the server drains (SIPStatus 480).
var ErrDraining = errors.New("parking is closed: parkpage is draining")

// DrainRetry is how soon a call whose ring-back and fallback both failed
// during a drain is rung again (instead of its slot's full timeout): the
// lot is meant to empty.
const DrainRetry = 10 * time.Second

// drainState is the Server's drain, under Server.mu.
type drainState struct {
	on      bool
	since   time.Time
	started int  // calls parked when the drain began
	done    bool // park.drained published for this drain
}

// DrainStatus is where a drain stands.
type DrainStatus struct {
	Draining bool
	Since    time.Time // when the drain began (zero when not draining)
	Started  int       // calls parked when it began
	Parked   int       // calls still in the lot (parked, ringing back or being connected)
	Ringing  int       // of those, ringing their parker or the fallback now
}

// Empty reports whether no call is left in the lot.
func (d DrainStatus) Empty() bool { return d.Parked == 0 }

// Drain stops taking new parks (ErrDraining, 480) and rings every call
// parked now back to its parker exactly as its timeout would (then the
// fallback, then back into its slot, to be rung again after DrainRetry).
// Pickups keep working. park.drained is published once the lot is empty.
// Draining again while draining changes nothing. A drain lasts until
// CancelDrain or the end of the process.
func (s *Server) Drain() DrainStatus {
	s.mu.Lock()
	defer s.unlock()
	if s.drain.on {
		return s.drainStatusLocked()
	}
	s.drain = drainState{on: true, since: s.clock.Now(), started: len(s.calls)}
	s.publish(events.Event{Type: events.DrainStarted, Count: uint64(len(s.calls))})
	s.log.Info("park: draining: new parks refused, parked calls rung back", "parked", len(s.calls))
	// Every call waiting in its slot times out now, through the timeout's
	// own path (ringing or connecting calls carry on; if they come back,
	// their next timeout is DrainRetry).
	for _, c := range s.calls {
		if c.phase != phParked {
			continue
		}
		id, gen := c.ID, c.gen
		s.acts = append(s.acts, func() { s.onTimeout(id, gen) })
	}
	s.drainCheck()
	return s.drainStatusLocked()
}

// CancelDrain takes parks again. Calls still parked stay, on the timers
// they have.
func (s *Server) CancelDrain() DrainStatus {
	s.mu.Lock()
	defer s.unlock()
	if s.drain.on {
		s.drain = drainState{}
		s.publish(events.Event{Type: events.DrainCancelled, Count: uint64(len(s.calls))})
		s.log.Info("park: drain cancelled: parks accepted again", "parked", len(s.calls))
	}
	return s.drainStatusLocked()
}

// Draining returns the drain's state.
func (s *Server) Draining() DrainStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drainStatusLocked()
}

func (s *Server) drainStatusLocked() DrainStatus {
	st := DrainStatus{Draining: s.drain.on, Since: s.drain.since, Started: s.drain.started, Parked: len(s.calls)}
	for _, c := range s.calls {
		if c.phase == phRinging {
			st.Ringing++
		}
	}
	return st
}

// drainCheck publishes park.drained (after the events of the current
// change) when a drain has emptied the lot. Called with s.mu held.
func (s *Server) drainCheck() {
	if !s.drain.on || s.drain.done || len(s.calls) > 0 {
		return
	}
	s.drain.done = true
	since := s.drain.since
	s.acts = append(s.acts, func() {
		s.publish(events.Event{Type: events.Drained, Reason: "lot empty after " + s.clock.Now().Sub(since).Round(time.Second).String()})
		s.log.Info("park: drained: no calls parked; parkpage can be stopped")
	})
}

// drainTimeout shortens a call's next timeout during a drain.
func (s *Server) drainTimeout(d time.Duration) time.Duration {
	if s.drain.on && d > DrainRetry {
		return DrainRetry
	}
	return d
}
