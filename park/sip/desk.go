package parksip

import (
	"context"
)

// The front desk's actions (the web console) on the SIP side: each checks
// the slot through the park logic, which also publishes what happened.

// HangupSlot ends the call parked in slot: the caller gets a BYE and the
// slot is free (call.abandoned, reason "hung up at the front desk"). A
// call being picked up (ErrBusy) or a free slot (ErrEmpty) is left alone.
func (s *Server) HangupSlot(ctx context.Context, slot string) error {
	id, err := s.park.CallIn(slot)
	if err != nil {
		return err
	}
	s.mu.Lock()
	p := s.calls[id]
	s.mu.Unlock()
	if p == nil {
		// No SIP leg (it is just going): clear the slot.
		s.park.Hangup(id, "hung up at the front desk")
		return nil
	}
	p.hangup(ctx, "hung up at the front desk")
	return nil
}

// MoveSlot moves the call parked in from to the free slot to (the BLF
// lamps of both slots follow). The caller hears nothing of it.
func (s *Server) MoveSlot(_ context.Context, from, to string) error {
	return s.park.Move(from, to)
}

// RingSlot rings target (an extension or number, reached like a
// ring-back: at its registration or through sip.pbx) for the call in
// slot; whoever answers gets the call, and if nobody does it stays parked.
func (s *Server) RingSlot(_ context.Context, slot, target string) error {
	return s.park.RingTo(slot, target)
}
