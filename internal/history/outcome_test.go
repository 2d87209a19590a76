package history

import (
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/history/historytest"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
	"github.com/parkpage/parkpage/park"
)

// Each way a park ends, as park/sip reports it on the bus.
func TestOutcomes(t *testing.T) {
	t0 := historytest.Start
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	parked := func(slot string) events.Event {
		return events.Event{Type: events.CallParked, Time: t0, Slot: slot, Caller: `"ACME" <sip:+15550100@pbx>`, Parker: "<sip:201@pbx>", Source: "local"}
	}
	tests := []struct {
		name    string
		evs     []events.Event
		outcome string
		rings   [2]int // ring-backs, fallbacks
		wait    time.Duration
		text    string
	}{
		{"pickup", []events.Event{parked("701"), {Type: events.CallRetrieved, Time: at(40), Slot: "701", Retriever: `"Anna" <sip:202@pbx>`, Reason: "pickup"}},
			OutcomePickedUp, [2]int{}, 40 * time.Second, "Picked up by Anna (202) after 0:40"},
		{"ring-back answered", []events.Event{parked("701"), {Type: events.CallRangBack, Time: at(90), Slot: "701", Target: "201", Reason: string(park.RingParker)},
			{Type: events.CallRetrieved, Time: at(100), Slot: "701", Retriever: "<sip:201@pbx>", Reason: string(park.RingParker)}},
			OutcomeRingBack, [2]int{1, 0}, 100 * time.Second, "Rang back, answered by 201 after 1:40"},
		{"fallback answered", []events.Event{parked("701"), {Type: events.CallRangBack, Time: at(90), Slot: "701", Reason: string(park.RingParker)},
			{Type: events.CallRangBack, Time: at(120), Slot: "701", Reason: string(park.RingFallback)},
			{Type: events.CallRetrieved, Time: at(125), Slot: "701", Retriever: `"Operator" <sip:200@pbx>`, Reason: string(park.RingFallback)}},
			OutcomeFallback, [2]int{1, 1}, 125 * time.Second, "Fell back, answered by Operator (200) after 2:05"},
		{"abandoned", []events.Event{parked("701"), {Type: events.CallAbandoned, Time: at(30), Slot: "701", Reason: "BYE"}},
			OutcomeAbandoned, [2]int{}, 30 * time.Second, "Caller hung up after 0:30"},
		{"still parked", []events.Event{parked("701")}, OutcomeParked, [2]int{}, time.Hour, "Parked, waiting 1:00:00"},
		{"a park never seen ending", []events.Event{parked("701"), parked("701")}, OutcomeParked, [2]int{}, time.Hour, "Parked, waiting 1:00:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktest.New(t0.Add(time.Hour))
			s := newMemory(clk)
			for _, e := range tc.evs {
				s.Record(e)
			}
			r := s.Recent(1)[0]
			if r.Outcome != tc.outcome || r.RingBacks != tc.rings[0] || r.Fallbacks != tc.rings[1] || r.Wait(clk.Now()) != tc.wait {
				t.Fatalf("got %+v (wait %s)", r, r.Wait(clk.Now()))
			}
			if got := r.Describe(clk.Now()); got != tc.text {
				t.Errorf("Describe: %q, want %q", got, tc.text)
			}
		})
	}
}
