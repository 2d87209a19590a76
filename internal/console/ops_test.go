package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/history"
	"github.com/parkpage/parkpage/internal/history/historytest"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
)

// The history and report APIs and the front desk's recent-parks panel,
// on a scripted week.
func TestHistoryAndReportAPIs(t *testing.T) {
	clk := clocktest.New(historytest.Start)
	st, err := history.Open("", history.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	cfg, sub := historytest.ScriptWeek(t, clk)
	for done := false; !done; {
		select {
		case e := <-sub.C():
			if e.Type == events.Lost {
				t.Fatal("lost events")
			}
			st.Record(e)
		default:
			done = true
		}
	}
	env := &Env{Backend: fakeBackend{}, Auth: &fakeAuth{}}
	env.Provide(HistoryKey, st)
	env.Provide(LayoutKey, func() history.Layout { return history.LayoutOf(cfg) })
	env.Provide(ConfigKey, func() *config.Config { return cfg })
	c, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	m := mux{http.NewServeMux()}
	c.Mount(m)
	srv := httptest.NewServer(m)
	defer srv.Close()

	code, body := get(t, srv.URL+"/api/v1/history?limit=2", true)
	var h struct{ Parks []HistoryRow }
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || len(h.Parks) != 2 {
		t.Fatalf("history %d %v %s", code, err, body)
	}
	if p := h.Parks[0]; p.Slot != "701" || p.Outcome != history.OutcomePickedUp || p.Tone != "ok" || p.CallerName != "Customer 280" ||
		p.WaitSeconds != 54 || p.Summary != "Picked up by Ben (202) after 0:54" {
		t.Errorf("newest park %+v", p)
	}
	code, body = get(t, srv.URL+"/api/v1/report?days=7", true)
	var rep history.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 200 || rep.Totals.Parks != 385 || len(rep.Findings) != 4 {
		t.Fatalf("report %d %v: %d parks, %d findings", code, err, rep.Totals.Parks, len(rep.Findings))
	}
	for _, bad := range []string{"days=14", "days=x", "queue_per_day=-1"} {
		if code, body := get(t, srv.URL+"/api/v1/report?"+bad, true); code != 400 || !strings.Contains(body, `"field"`) {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	code, body = get(t, srv.URL+"/api/v1/report.csv?days=30", true)
	if code != 200 || !strings.HasPrefix(body, "lot,slot,label,days,parks,") || !strings.Contains(body, "700,703,Showroom,30,0,") {
		t.Errorf("csv %d:\n%s", code, body)
	}
	code, body = get(t, srv.URL+"/report?days=90", true)
	if code != 200 || !strings.Contains(body, `data-kind="ring_backs"`) || !strings.Contains(body, `class="active" aria-current="true">90 days`) {
		t.Errorf("report page %d", code)
	}
	code, body = get(t, srv.URL+"/", true)
	if code != 200 || !strings.Contains(body, `id="recent-list"`) || strings.Count(body, `class="recent tone-`) != 8 || !strings.Contains(body, "Customer 280") {
		t.Errorf("front desk recent parks %d", code)
	}
}
