package park

import (
	"fmt"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// Resumable is the park side of a parked call as a journal keeps it, to
// put the call back into its slot after a restart (Resume).
type Resumable struct {
	Lot    string    `json:"lot"`
	Slot   string    `json:"slot"`
	Label  string    `json:"label,omitempty"`
	Caller Party     `json:"caller"`
	Parker Party     `json:"parker"`
	Since  time.Time `json:"since"`
	// Due is when the running timer fires: the park timeout while parked,
	// the end of the ring time while ringing.
	Due time.Time `json:"due"`
	// Ringing is the ring-back state: "" while parked, else the kind of
	// ring attempt in progress (ringback or fallback) and its target.
	Ringing RingKind `json:"ringing,omitempty"`
	Target  string   `json:"target,omitempty"`
}

// Resumable returns what a journal keeps of call id; false once the call
// has left its slot. A call being connected to a retriever counts as
// parked: if the process dies meanwhile, the caller goes back to its slot.
func (s *Server) Resumable(id CallID) (Resumable, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[id]
	if c == nil || c.phase == phGone {
		return Resumable{}, false
	}
	r := Resumable{Lot: c.Lot, Slot: c.Slot, Label: c.Label, Caller: c.Caller, Parker: c.Parker, Since: c.Since, Due: c.due}
	if c.phase == phRinging && c.ring != nil {
		r.Ringing, r.Target = c.ring.Kind, c.ring.Target
	}
	return r, true
}

// Resume puts a call saved by an earlier process back into its slot: the
// slot must still exist and be free. Its timeout keeps its original
// deadline (one that passed while parkpage was down fires at once); a call
// that was ringing rings again at once (the earlier process's ring attempt
// died with it). The board shows it as before, and call.resumed is
// published (not call.parked: the park was announced already).
func (s *Server) Resume(r Resumable) (*Call, error) {
	s.mu.Lock()
	defer s.unlock()
	sl, ok := s.slots[r.Slot]
	if !ok || sl.lot == nil {
		return nil, fmt.Errorf("slot %s: %w", r.Slot, ErrUnknownExt)
	}
	if sl.call != nil {
		return nil, fmt.Errorf("slot %s: %w", r.Slot, ErrTaken)
	}
	s.nextID++
	since := r.Since
	if since.IsZero() {
		since = s.clock.Now()
	}
	c := &Call{ID: s.nextID, Lot: sl.lot.name, Slot: sl.name, Label: sl.label, Caller: r.Caller, Parker: r.Parker, Since: since}
	sl.call = c
	s.calls[c.ID] = c
	e := c.event(events.CallResumed)
	e.Source = "local"
	s.publish(e)
	switch {
	case r.Ringing != "" && r.Target != "":
		s.startRing(c, sl, r.Ringing, r.Target)
	default:
		d := r.Due.Sub(s.clock.Now())
		if r.Due.IsZero() {
			d = sl.timeout
		}
		s.armTimeout(c, max(d, 0))
		s.notify(sl)
	}
	return c.snapshot(), nil
}
