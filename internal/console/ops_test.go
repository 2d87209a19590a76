package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/history"
	"github.com/parkpage/parkpage/internal/history/historytest"
	"github.com/parkpage/parkpage/internal/provision"
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

// The phones API: a phone saved (its MAC normalised), refused with the
// field named, listed, fetched by the phone, deleted.
func TestPhonesAPI(t *testing.T) {
	cfg, _, err := config.Load("../provision/testdata/seed-office.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := provision.OpenRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Backend: fakeBackend{}, Auth: &fakeAuth{}}
	env.Provide(ConfigKey, func() *config.Config { return cfg })
	env.Provide(PhonesKey, reg)
	env.Provide(ProvisionKey, &provision.Handler{Config: func() *config.Config { return cfg }, Registry: reg})
	c, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	m := mux{http.NewServeMux()}
	c.Mount(m)
	srv := httptest.NewServer(m)
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, tc := range []struct {
		mac, body string
		code      int
		want      string
	}{
		{"80-5E-C0-12-34-56", `{"model": "yealink-t54w", "user": "2001", "sidecar": true, "zones": ["all"]}`, 200, `"mac": "805ec0123456"`},
		{"805ec0123457", `{"model": "yealink-t54w", "user": "9999"}`, 400, `"field": "user"`},
		{"805ec012345", `{"model": "yealink-t54w", "user": "2001"}`, 400, `"field": "mac"`},
		{"805ec0123458", `{"model": "snom", "user": "2001"}`, 400, `"field": "model"`},
		{"805ec0123459", `{"model": "yealink-t54w", "user": "2001", "colour": "red"}`, 400, `"field": "colour"`},
	} {
		if code, body := do("PUT", "/api/v1/phones/"+tc.mac, tc.body); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("PUT %s %s: %d %s", tc.mac, tc.body, code, body)
		}
	}
	code, body := do("GET", "/api/v1/phones", "")
	if code != 200 || !strings.Contains(body, `"yealink_url": "`+srv.URL+`/provision/yealink/"`) || strings.Count(body, `"mac"`) != 1 {
		t.Errorf("list %d %s", code, body)
	}
	code, body = do("GET", "/api/v1/provision?model=poly-vvx450&user=2001&zone=warehouse&zone=all", "")
	if code != 200 || !strings.Contains(body, `ptt.pageMode.group.1.subscribed="1"`) {
		t.Errorf("provision %d %s", code, body)
	}
	// The phone itself, with the provisioning password and no session.
	req, _ := http.NewRequest("GET", srv.URL+"/provision/yealink/805ec0123456.cfg", nil)
	req.SetBasicAuth(provision.HTTPUser, reg.Password())
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("phone fetch: %v %v", res, err)
	}
	res.Body.Close()
	if code, _ := do("DELETE", "/api/v1/phones/80:5e:c0:12:34:56", ""); code != 200 || len(reg.Phones()) != 0 {
		t.Errorf("delete %d, %d phones left", code, len(reg.Phones()))
	}
	if code, _ := do("DELETE", "/api/v1/phones/805ec0123456", ""); code != 404 {
		t.Errorf("delete again %d", code)
	}
}
