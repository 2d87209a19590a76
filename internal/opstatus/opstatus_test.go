package opstatus

import (
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

func TestTracker(t *testing.T) {
	tr := New(func(zone string) []string {
		return map[string][]string{"all": {"all/outputs[0]", "all/outputs[1]"}}[zone]
	})
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	tr.Observe(events.Event{Type: events.PageStarted, Page: "p1", Zones: []string{"all"}, Time: t0})
	tr.Observe(events.Event{Type: events.OutputFailed, Page: "p1", Output: "all/outputs[1]", Reason: "486 Busy Here", Time: t0.Add(time.Second)})
	tr.Observe(events.Event{Type: events.PageEnded, Page: "p1", Zones: []string{"all"}, Time: t0.Add(5 * time.Second)})
	tr.Observe(events.Event{Type: events.RelayOn, Relay: "amp", Time: t0})
	got := tr.Outputs([]string{"all/outputs[0]", "all/outputs[1]", "lobby/outputs[0]"})
	if !got[0].LastOK.Equal(t0.Add(5*time.Second)) || got[0].Failures != 0 || got[0].Pages != 1 {
		t.Errorf("output 0: %+v", got[0])
	}
	if !got[1].LastOK.IsZero() || got[1].Failures != 1 || got[1].Reason != "486 Busy Here" {
		t.Errorf("output 1: %+v", got[1])
	}
	if got[2].Name != "lobby/outputs[0]" || !got[2].LastOK.IsZero() {
		t.Errorf("never played: %+v", got[2])
	}
	if !tr.RelaySwitched("amp").Equal(t0) {
		t.Errorf("relay")
	}
}
