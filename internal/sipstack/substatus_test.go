package sipstack

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Watchers lists which phone watches which slot, from their SUBSCRIBEs.
func TestWatchers(t *testing.T) {
	s := startStack(t, t.TempDir(), "")
	s.Presence("701")
	s.Presence("702")
	ph := newPhone(t)
	for _, ext := range []string{"702", "701"} {
		if res := ph.do(ph.request(sip.SUBSCRIBE, s, ext, "1001", "Event: dialog", "Expires: 300")); res.StatusCode != 200 {
			t.Fatalf("SUBSCRIBE %s: %d", ext, res.StatusCode)
		}
	}
	ph.waitNotifies(2, 5*time.Second)
	ws := s.Watchers()
	if len(ws) != 2 || ws[0].Ext != "701" || ws[1].Ext != "702" || ws[0].User != "1001" || ws[0].Source == "" {
		t.Fatalf("watchers: %+v", ws)
	}
	if d := time.Until(ws[0].Expires); d < 200*time.Second || d > 301*time.Second {
		t.Errorf("expires in %s", d)
	}
	s.RemovePresence("701")
	if ws := s.Watchers(); len(ws) != 1 || ws[0].Ext != "702" {
		t.Fatalf("after removing 701: %+v", ws)
	}
}
