package park

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// A drain refuses new parks with 480, rings every parked call back to its
// parker at once (the timeout's path: call.timed_out, then the ring),
// leaves a ringing call alone, lets pickups through, re-rings a call whose
// ring-back and fallback failed after DrainRetry instead of its full
// timeout, and says park.drained once the lot is empty.
func TestDrain(t *testing.T) {
	h := newHarness(t, baseCfg)
	// 704 times out (90 s) before the drain: its ring-back is going.
	d := h.park(t, "704", "1003")
	h.clock.Advance(89 * time.Second)
	a := h.park(t, "700", "1001") // 701
	b := h.park(t, "700", "1002") // 702
	c := h.park(t, "700", "")     // 703: parker unknown, goes to the fallback
	h.clock.Advance(time.Second)
	if st, _ := h.s.Slot(d.Slot); st.State != StateRingback {
		t.Fatalf("704 before the drain: %s", st.State)
	}
	rings := h.rec.ringCount()
	h.events()

	st := h.s.Drain()
	if !st.Draining || st.Started != 4 || st.Parked != 4 || st.Empty() {
		t.Fatalf("drain status %+v", st)
	}
	got := h.rec.rings[rings:]
	if len(got) != 3 {
		t.Fatalf("%d rings placed by the drain, want 3 (704 was ringing already): %+v", len(got), got)
	}
	targets := map[string]string{}
	for _, r := range got {
		targets[r.Slot] = string(r.Kind) + ":" + r.Target
	}
	want := map[string]string{a.Slot: "ringback:1001", b.Slot: "ringback:1002", c.Slot: "fallback:sip:operator@pbx.lan"}
	for s, w := range want {
		if targets[s] != w {
			t.Errorf("slot %s rang %q, want %q", s, targets[s], w)
		}
	}
	es := h.events()
	if es[0].Type != events.DrainStarted || es[0].Count != 4 {
		t.Errorf("first event %+v", es[0])
	}
	timedOut := 0
	for _, e := range es {
		if e.Type == events.CallTimedOut {
			timedOut++
			if e.Reason != "draining" {
				t.Errorf("timed_out reason %q", e.Reason)
			}
		}
	}
	if timedOut != 3 {
		t.Errorf("%d call.timed_out events, want 3: %s", timedOut, types(es))
	}
	if st := h.s.Draining(); st.Ringing != 4 {
		t.Errorf("ringing %d, want 4", st.Ringing)
	}
	// Draining again rings nobody twice.
	h.s.Drain()
	if n := h.rec.ringCount(); n != rings+3 {
		t.Errorf("second Drain placed %d more rings", n-rings-3)
	}

	// New parks are refused, to the lot and to a free slot: 480.
	for _, ext := range []string{"700", "800", "802"} {
		_, err := h.s.Park(ParkRequest{Ext: ext, Parker: party("1001")})
		if !errors.Is(err, ErrDraining) || SIPStatus(err) != 480 {
			t.Errorf("park to %s while draining: %v (SIP %d)", ext, err, SIPStatus(err))
		}
	}
	if es := h.events(); len(es) != 3 || es[0].Type != events.CallRefused || !strings.Contains(es[0].Reason, "draining") {
		t.Errorf("refusals published %s", types(es))
	}

	// a: the parker answers. b: a pickup wins over its ring-back.
	ra := got[0]
	for _, r := range got {
		if r.Call == a.ID {
			ra = r
		}
	}
	if _, ok := h.s.RingAnswered(a.ID, ra.Attempt, party("1001")); !ok {
		t.Fatal("ring-back answer refused")
	}
	h.s.Retrieved(a.ID)
	if _, err := h.s.Retrieve(b.Slot, party("1003")); err != nil {
		t.Fatalf("pickup while draining: %v", err)
	}
	h.s.Retrieved(b.ID)
	// c: the fallback is busy; back in the slot, rung again after DrainRetry.
	var rc Ring
	for _, r := range got {
		if r.Call == c.ID {
			rc = r
		}
	}
	h.s.RingFailed(c.ID, rc.Attempt, "486 Busy Here")
	if st, _ := h.s.Slot(c.Slot); st.State != StateParked {
		t.Fatalf("%s after a failed fallback: %s", c.Slot, st.State)
	}
	before := h.rec.ringCount()
	h.clock.Advance(DrainRetry - time.Millisecond)
	if h.rec.ringCount() != before {
		t.Fatal("rang again before DrainRetry")
	}
	h.clock.Advance(time.Millisecond)
	if h.rec.ringCount() != before+1 {
		t.Fatalf("not rung again %v after returning (lot timeout 90s)", DrainRetry)
	}
	h.events()
	// The last two callers hang up: drained, after their own events.
	h.s.Hangup(c.ID, "caller hung up")
	if es := h.events(); len(es) != 1 || es[0].Type != events.CallAbandoned {
		t.Fatalf("drained early: %s", types(es))
	}
	h.s.Hangup(d.ID, "caller hung up")
	es = h.events()
	if types(es) != "call.abandoned,park.drained" {
		t.Fatalf("events at the end %s", types(es))
	}
	if st := h.s.Draining(); !st.Draining || !st.Empty() {
		t.Errorf("status at the end %+v", st)
	}
	// Still refusing until cancelled; then parks are taken again.
	if _, err := h.s.Park(ParkRequest{Ext: "700"}); !errors.Is(err, ErrDraining) {
		t.Errorf("park after drained: %v", err)
	}
	if st := h.s.CancelDrain(); st.Draining {
		t.Errorf("after cancel %+v", st)
	}
	h.park(t, "700", "1001")
	if es := h.events(); !strings.Contains(types(es), "park.drain_cancelled") {
		t.Errorf("no drain_cancelled: %s", types(es))
	}
}

// Draining an empty lot is drained at once; a cancelled drain's calls
// keep their normal timeout.
func TestDrainEmptyAndCancel(t *testing.T) {
	h := newHarness(t, baseCfg)
	h.s.Drain()
	if es := h.events(); types(es) != "park.drain_started,park.drained" {
		t.Fatalf("empty drain: %s", types(es))
	}
	h.s.CancelDrain()
	c := h.park(t, "700", "")
	h.s.Drain()
	h.s.CancelDrain()
	h.events()
	// No ring-back rings it again at DrainRetry: the fallback ring of the
	// drain is still running; when it fails the call returns with the
	// full timeout.
	r := h.rec.lastRing(t)
	h.s.RingFailed(c.ID, r.Attempt, "486 Busy Here")
	n := h.rec.ringCount()
	h.clock.Advance(DrainRetry)
	if h.rec.ringCount() != n {
		t.Error("rung at DrainRetry after the drain was cancelled")
	}
	h.clock.Advance(90 * time.Second)
	if h.rec.ringCount() != n+1 {
		t.Error("not rung at its full timeout")
	}
}
