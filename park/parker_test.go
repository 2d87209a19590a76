package park

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
)

// A parker named by host only (Referred-By: <sip:198.51.100.7>) cannot be
// rung back: on timeout the call goes to the lot's fallback, or, with
// none, stays parked; either way an event and a log line say why.
func TestBareHostParkerGoesToFallbackAndSaysWhy(t *testing.T) {
	var log bytes.Buffer
	bus := events.New()
	sub := bus.Subscribe(100)
	rec := &recorder{}
	clock := clocktest.New(time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC))
	s, err := New(parseCfg(t, baseCfg), Options{Clock: clock, Bus: bus, Actions: rec, Observer: rec.observe,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	bare := Party{URI: "sip:198.51.100.7"}
	caller := Party{Display: "ACME", URI: "sip:+15551234567@pbx.lan", User: "+15551234567"}
	for _, tc := range []struct {
		ext, wantEvents string
		after           time.Duration
	}{
		{"702", "call.parked,call.timed_out,call.rang_back", 45 * time.Second}, // lot with a fallback
		{"801", "call.parked,call.timed_out,call.returned", 60 * time.Second},  // lot without
	} {
		log.Reset()
		c, err := s.Park(ParkRequest{Ext: tc.ext, Caller: caller, Parker: bare})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(tc.after)
		var es []events.Event
		for drained := false; !drained; {
			select {
			case e := <-sub.C():
				if e.Slot == tc.ext {
					es = append(es, e)
				}
			default:
				drained = true
			}
		}
		if types(es) != tc.wantEvents {
			t.Fatalf("%s: events %s, want %s", tc.ext, types(es), tc.wantEvents)
		}
		last := es[len(es)-1]
		if tc.ext == "702" && last.Reason != string(RingFallback) {
			t.Errorf("%s: rang %q, want the fallback", tc.ext, last.Reason)
		}
		if tc.ext == "801" {
			if !strings.Contains(last.Reason, "198.51.100.7") || !strings.Contains(last.Reason, "no user") {
				t.Errorf("%s: returned with reason %q", tc.ext, last.Reason)
			}
			if st, _ := s.Slot("801"); st.State != StateParked || st.Call != c.ID {
				t.Errorf("801 %+v", st)
			}
		}
		if l := log.String(); !strings.Contains(l, "no ring-back") || !strings.Contains(l, "198.51.100.7") || !strings.Contains(l, "slot="+tc.ext) {
			t.Errorf("%s: log %q", tc.ext, l)
		}
	}
}
