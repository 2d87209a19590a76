package park

import (
	"errors"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// TestResume: a call saved by an earlier process goes back into its slot
// with its original deadline; a deadline passed during the outage rings
// back at once; a call that was ringing rings again; a taken or unknown
// slot is refused. Resumable round-trips what a journal keeps.
func TestResume(t *testing.T) {
	h := newHarness(t, baseCfg)
	c := h.park(t, "701", "1001")
	saved, ok := h.s.Resumable(c.ID)
	if !ok || saved.Slot != "701" || saved.Parker.User != "1001" || saved.Ringing != "" {
		t.Fatalf("Resumable %+v %v", saved, ok)
	}
	if want := h.clock.Now().Add(90 * time.Second); !saved.Due.Equal(want) {
		t.Fatalf("due %v, want %v", saved.Due, want)
	}

	// A new process, 30 s later: the timeout keeps its deadline (60 s left).
	h2 := newHarness(t, baseCfg)
	h2.clock.Advance(30 * time.Second)
	r, err := h2.s.Resume(saved)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := h2.s.Slot("701"); st.State != StateParked || !st.Since.Equal(saved.Since) {
		t.Fatalf("slot after resume %+v", st)
	}
	if got := types(h2.events()); got != string(events.CallResumed) {
		t.Fatalf("events %s, want call.resumed only (no second announcement)", got)
	}
	h2.clock.Advance(59 * time.Second)
	if h2.rec.ringCount() != 0 {
		t.Fatal("rang back before the original deadline")
	}
	h2.clock.Advance(2 * time.Second)
	if ring := h2.rec.lastRing(t); ring.Call != r.ID || ring.Target != "1001" || ring.Kind != RingParker {
		t.Fatalf("ring %+v", ring)
	}
	if _, err := h2.s.Resume(saved); !errors.Is(err, ErrTaken) {
		t.Fatalf("resume into a taken slot: %v", err)
	}

	// Down past the deadline: rings back at once.
	h3 := newHarness(t, baseCfg)
	h3.clock.Advance(5 * time.Minute)
	if _, err := h3.s.Resume(saved); err != nil {
		t.Fatal(err)
	}
	h3.clock.Advance(0)
	if h3.rec.ringCount() != 1 {
		t.Fatalf("%d rings after a deadline passed during the outage, want 1 at once", h3.rec.ringCount())
	}
	if st, _ := h3.s.Slot("701"); st.State != StateRingback {
		t.Fatalf("slot %+v, want ringback", st)
	}

	// Ringing when saved: rings again at once.
	ringing, _ := h3.s.Resumable(h3.rec.lastRing(t).Call)
	if ringing.Ringing != RingParker || ringing.Target != "1001" {
		t.Fatalf("Resumable while ringing %+v", ringing)
	}
	h4 := newHarness(t, baseCfg)
	if _, err := h4.s.Resume(ringing); err != nil {
		t.Fatal(err)
	}
	if ring := h4.rec.lastRing(t); ring.Target != "1001" {
		t.Fatalf("ring %+v", ring)
	}

	bad := saved
	bad.Slot = "799"
	if _, err := h4.s.Resume(bad); !errors.Is(err, ErrUnknownExt) {
		t.Fatalf("resume into an unknown slot: %v", err)
	}
}
