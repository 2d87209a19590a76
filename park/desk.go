package park

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// The front desk's actions on a parked call (the web console): move it to
// another slot, ring it to an extension (the ring-back path), and find the
// call to hang up (the SIP side ends its dialog, then calls Hangup).

// RingDesk is a ring to an extension asked for at the front desk.
const RingDesk RingKind = "desk"

// ErrBadTarget is a ring target that is not an extension or number.
var ErrBadTarget = errors.New("not an extension or number")

// deskTarget is what the front desk may ring: a user part (an extension
// or a number), never a URI naming a host.
var deskTarget = regexp.MustCompile(`^[+]?[0-9A-Za-z*#._-]{1,32}$`)

// parkTimeout is how long a call stays in sl before ring-back.
func (sl *slot) parkTimeout() time.Duration {
	d := sl.timeout
	if sl.lot != nil && d <= 0 {
		d = sl.lot.timeout
	}
	if d <= 0 {
		d = 90 * time.Second
	}
	return d
}

// deskCall is the call in slot that the desk may act on.
func (s *Server) deskCall(slotName string) (*Call, *slot, error) {
	sl, ok := s.slots[slotName]
	if !ok {
		return nil, nil, ErrUnknownExt
	}
	c := sl.call
	if c == nil {
		return nil, nil, ErrEmpty
	}
	if c.phase == phTaking || c.phase == phGone {
		return nil, nil, ErrBusy
	}
	return c, sl, nil
}

// CallIn returns the call parked in slot for the desk to hang up: ErrEmpty
// when the slot is free, ErrBusy while it is being picked up.
func (s *Server) CallIn(slotName string) (CallID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _, err := s.deskCall(slotName)
	if err != nil {
		return 0, err
	}
	return c.ID, nil
}

// Move puts the call parked in slot from into the free slot to. The
// caller's wait goes on (Since is kept) and so does its timeout; a
// ring-back in progress is cancelled and the timeout starts again. It
// publishes call.moved (Slot the new slot, From the old).
func (s *Server) Move(from, to string) error {
	s.mu.Lock()
	defer s.unlock()
	c, old, err := s.deskCall(from)
	if err != nil {
		return err
	}
	dst, ok := s.slots[to]
	if !ok || dst.lot == nil {
		return fmt.Errorf("slot %s: %w", to, ErrUnknownExt)
	}
	if dst.call != nil {
		return fmt.Errorf("slot %s: %w", to, ErrTaken)
	}
	if from == to {
		return nil
	}
	old.call, dst.call = nil, c
	c.Slot, c.Lot, c.Label = dst.name, dst.lot.name, dst.label
	if c.phase == phRinging {
		s.cancelRing(c)
		s.startTimeout(c, dst)
	}
	if old.lot == nil {
		delete(s.slots, old.name) // removed by a reload; gone with its call
		s.notify(&slot{name: old.name, num: old.num, label: old.label})
	} else {
		s.notify(old)
	}
	s.notify(dst)
	e := c.event(events.CallMoved)
	e.From, e.Reason = from, "moved at the front desk"
	s.publish(e)
	return nil
}

// RingTo rings target (an extension or number) for the call parked in
// slot, the way a ring-back rings the parker: the call stays parked and
// retrievable while it rings, whoever answers gets it, and if nobody does
// it returns to its slot with a fresh timeout (no fallback).
func (s *Server) RingTo(slotName, target string) error {
	if !deskTarget.MatchString(target) {
		return fmt.Errorf("%q: %w", target, ErrBadTarget)
	}
	s.mu.Lock()
	defer s.unlock()
	c, sl, err := s.deskCall(slotName)
	if err != nil {
		return err
	}
	s.cancelRing(c)
	s.startRing(c, sl, RingDesk, target)
	return nil
}
