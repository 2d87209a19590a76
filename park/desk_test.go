package park

import (
	"errors"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// Move: the call changes slot with its caller, wait and timeout; both
// slots' lamps are told; call.moved names both slots; a taken, unknown or
// empty slot is refused.
func TestDeskMove(t *testing.T) {
	h := newHarness(t, baseCfg)
	c := h.park(t, "701", "1001")
	h.park(t, "703", "1002")
	h.events()
	h.clock.Advance(30 * time.Second)
	for _, tc := range []struct {
		from, to string
		want     error
	}{
		{"701", "703", ErrTaken},
		{"701", "799", ErrUnknownExt},
		{"702", "704", ErrEmpty},
		{"799", "704", ErrUnknownExt},
	} {
		if err := h.s.Move(tc.from, tc.to); !errors.Is(err, tc.want) {
			t.Errorf("move %s to %s: %v, want %v", tc.from, tc.to, err, tc.want)
		}
	}
	h.rec.mu.Lock()
	h.rec.observed = nil
	h.rec.mu.Unlock()
	if err := h.s.Move("701", "802"); err != nil {
		t.Fatal(err)
	}
	old, _ := h.s.Slot("701")
	st, _ := h.s.Slot("802")
	if old.State != StateFree || st.State != StateParked || st.Call != c.ID || st.Lot != "800" || !st.ParkedAt.Equal(c.Since) {
		t.Fatalf("after the move 701 %+v, 802 %+v", old, st)
	}
	es := h.events()
	if len(es) != 1 || es[0].Type != events.CallMoved || es[0].Slot != "802" || es[0].From != "701" {
		t.Fatalf("events %+v", es)
	}
	h.rec.mu.Lock()
	obs := h.rec.observed
	h.rec.mu.Unlock()
	if len(obs) != 2 || obs[0].Slot != "701" || obs[0].State != StateFree || obs[1].Slot != "802" || obs[1].State != StateParked {
		t.Errorf("lamps told %+v", obs)
	}
	// The timeout keeps running: 90 s from the park, not from the move.
	h.clock.Advance(60 * time.Second)
	timedOut := false
	for _, e := range h.events() {
		timedOut = timedOut || e.Type == events.CallTimedOut && e.Slot == "802"
	}
	if !timedOut {
		t.Error("the moved call did not time out 90 s after it was parked")
	}
	// Picking up the moved call works at its new slot.
	if _, err := h.s.Retrieve("802", party("1003")); err != nil {
		t.Errorf("retrieve at the new slot: %v", err)
	}
}

// RingTo rings an extension like a ring-back (slot display, the
// caller); no answer returns the call to its slot (no fallback), keeping
// the caller's first park time; a URI is refused.
func TestDeskRingTo(t *testing.T) {
	h := newHarness(t, baseCfg)
	c := h.park(t, "702", "1001")
	h.events()
	for _, bad := range []string{"sip:evil@example.com", "201@host", "", "1 2"} {
		if err := h.s.RingTo("702", bad); !errors.Is(err, ErrBadTarget) {
			t.Errorf("target %q: %v", bad, err)
		}
	}
	if err := h.s.RingTo("704", "201"); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty slot: %v", err)
	}
	h.clock.Advance(10 * time.Second)
	if err := h.s.RingTo("702", "201"); err != nil {
		t.Fatal(err)
	}
	r := h.rec.lastRing(t)
	if r.Kind != RingDesk || r.Target != "201" || r.Slot != "702" || r.Display != "702 Sales" || r.Call != c.ID {
		t.Fatalf("ring %+v", r)
	}
	st, _ := h.s.Slot("702")
	if st.State != StateRingback || st.RingTarget != "201" {
		t.Fatalf("slot while ringing %+v", st)
	}
	h.s.RingFailed(r.Call, r.Attempt, "busy")
	st, _ = h.s.Slot("702")
	if st.State != StateParked || !st.Returned || !st.ParkedAt.Equal(c.Since) || !st.Since.After(c.Since) {
		t.Fatalf("after a failed desk ring %+v", st)
	}
	if h.rec.ringCount() != 1 {
		t.Errorf("%d rings: a desk ring falls back to no one", h.rec.ringCount())
	}
	// An answered desk ring takes the call.
	if err := h.s.RingTo("702", "202"); err != nil {
		t.Fatal(err)
	}
	r = h.rec.lastRing(t)
	got, ok := h.s.RingAnswered(r.Call, r.Attempt, party("202"))
	if !ok {
		t.Fatal("answer refused")
	}
	h.s.Retrieved(got.ID)
	if st, _ := h.s.Slot("702"); st.State != StateFree {
		t.Errorf("after the answered ring %+v", st)
	}
}

// CallIn finds the call for the desk's hang-up; a call being picked up
// is not offered.
func TestDeskCallIn(t *testing.T) {
	h := newHarness(t, baseCfg)
	c := h.park(t, "701", "1001")
	if id, err := h.s.CallIn("701"); err != nil || id != c.ID {
		t.Errorf("CallIn = %v, %v", id, err)
	}
	if _, err := h.s.CallIn("702"); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	if _, err := h.s.Retrieve("701", party("1002")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.CallIn("701"); !errors.Is(err, ErrBusy) {
		t.Errorf("being picked up: %v", err)
	}
	if err := h.s.Move("701", "704"); !errors.Is(err, ErrBusy) {
		t.Errorf("move while picked up: %v", err)
	}
}
