package console

import (
	"context"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/park"
)

func TestSplitParty(t *testing.T) {
	for _, tc := range []struct{ in, name, number string }{
		{`"ACME Supply" <sip:2065550100@pbx.lan>`, "ACME Supply", "2065550100"},
		{`ACME <sip:2065550100@pbx.lan;user=phone>`, "ACME", "2065550100"},
		{`sip:201@127.0.0.1`, "", "201"},
		{`<sips:+15551234567@pbx.lan>`, "", "+15551234567"},
		{`"Alice" <tel:+15551234567>`, "Alice", "+15551234567"},
		{`"201" <sip:201@pbx.lan>`, "", "201"},
		{`sip:127.0.0.1`, "", ""},
		{`Front desk`, "Front desk", ""},
		{``, "", ""},
		{`"Quote \"Inc\"" <sip:5@x>`, `Quote "Inc"`, "5"},
	} {
		name, number := SplitParty(tc.in)
		if name != tc.name || number != tc.number {
			t.Errorf("SplitParty(%q) = %q, %q; want %q, %q", tc.in, name, number, tc.name, tc.number)
		}
	}
}

func FuzzSplitParty(f *testing.F) {
	for _, s := range []string{`"A" <sip:1@h>`, `sip:x`, `<`, `"`, `<sip:@>`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, number := SplitParty(s)
		if strings.Contains(number, "@") || strings.HasPrefix(strings.ToLower(number), "sip:") {
			t.Errorf("SplitParty(%q) number %q is a URI", s, number)
		}
		_ = name
	})
}

func TestAge(t *testing.T) {
	for _, tc := range []struct {
		wait, timeout time.Duration
		want          string
	}{
		{0, 90 * time.Second, "ok"},
		{44 * time.Second, 90 * time.Second, "ok"},
		{45 * time.Second, 90 * time.Second, "amber"},
		{89 * time.Second, 90 * time.Second, "amber"},
		{90 * time.Second, 90 * time.Second, "red"},
		{5 * time.Second, 2 * time.Second, "red"},
	} {
		if got := ageOf(tc.wait, tc.timeout); got != tc.want {
			t.Errorf("ageOf(%v, %v) = %s, want %s", tc.wait, tc.timeout, got, tc.want)
		}
	}
}

func TestBuildBoard(t *testing.T) {
	now := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	b := buildBoard([]api.Slot{
		{Slot: "701", Lot: "700", Label: "Reception", State: "parked", Caller: `"ACME" <sip:2065550100@pbx>`, Parker: "sip:201@pbx", Since: at(50 * time.Second), Timeout: 90},
		{Slot: "702", Lot: "700", Label: "Reception", State: "free", Timeout: 90},
		{Slot: "801", Lot: "800", Label: "Dock", State: "parked", Caller: "sip:5@x", Since: at(10 * time.Second), ParkedAt: at(200 * time.Second), Returned: true, Timeout: 60},
		{Slot: "802", Lot: "800", Label: "Yard", State: "ringback", RingTarget: "201", Since: at(time.Second)},
	}, now)
	if len(b.Lots) != 2 || b.Lots[0].Label != "Reception" || b.Lots[1].Label != "" || b.Parked != 2 || b.Ringing != 1 {
		t.Fatalf("board %+v", b)
	}
	s := b.Lots[0].Slots[0]
	if s.CallerName != "ACME" || s.CallerNumber != "2065550100" || s.ParkerNumber != "201" || s.Age != "amber" || s.Wait != 50 {
		t.Errorf("701 %+v", s)
	}
	s = b.Lots[1].Slots[0]
	if s.State != "returned" || s.Wait != 200 || s.Age != "red" {
		t.Errorf("801 (returned, parked 200 s ago) %+v", s)
	}
	s = b.Lots[1].Slots[1]
	if s.State != "ringback" || s.RingTarget != "201" || s.Timeout != 90 {
		t.Errorf("802 %+v", s)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/status": "/status", "": "/", "//evil.example/": "/", "/\\evil": "/", "https://evil.example/": "/", "/login?next=/": "/", "/report?days=30": "/report?days=30"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeBackend is the API backend with two slots.
type fakeBackend struct{ api.Backend }

func (fakeBackend) Status() api.Status { return api.Status{Version: "v-test"} }
func (fakeBackend) Slots() []api.Slot {
	now := time.Now().Add(-3 * time.Second)
	return []api.Slot{{Slot: "701", Lot: "700", State: "parked", Caller: `"ACME Supply" <sip:2065550100@pbx>`, Since: &now, Timeout: 90}, {Slot: "702", Lot: "700", State: "free"}}
}

// fakeAuth logs in "admin"/"pw".
type fakeAuth struct{ sessions map[string]bool }

func (f *fakeAuth) LoginRequired() bool { return true }
func (f *fakeAuth) Login(w http.ResponseWriter, r *http.Request, user, pw string) error {
	if user == "admin" && pw == "slow" {
		return &api.ThrottledError{Retry: 3 * time.Second}
	}
	if user != "admin" || pw != "pw" {
		return api.ErrBadLogin
	}
	http.SetCookie(w, &http.Cookie{Name: "s", Value: "ok"})
	return nil
}
func (f *fakeAuth) Logout(w http.ResponseWriter, r *http.Request) {}
func (f *fakeAuth) User(r *http.Request) string {
	if c, err := r.Cookie("s"); err == nil && c.Value == "ok" {
		return "admin"
	}
	return ""
}

// mux records the console's routes on a plain ServeMux.
type mux struct{ *http.ServeMux }

func (m mux) HandlePublic(p string, h http.Handler) { m.Handle(p, h) }

type fakeDesk struct{ calls []string }

func (d *fakeDesk) HangupSlot(_ context.Context, slot string) error {
	d.calls = append(d.calls, "hangup "+slot)
	if slot == "702" {
		return park.ErrEmpty
	}
	return nil
}
func (d *fakeDesk) MoveSlot(_ context.Context, from, to string) error {
	d.calls = append(d.calls, "move "+from+" "+to)
	if to == "701" {
		return park.ErrTaken
	}
	return nil
}
func (d *fakeDesk) RingSlot(_ context.Context, slot, to string) error {
	d.calls = append(d.calls, "ring "+slot+" "+to)
	if strings.Contains(to, ":") {
		return park.ErrBadTarget
	}
	return nil
}

func newConsole(t *testing.T) (*httptest.Server, *fakeDesk) {
	t.Helper()
	env := &Env{Backend: fakeBackend{}, Auth: &fakeAuth{}}
	d := &fakeDesk{}
	env.Provide(DeskKey, Desk(d))
	c, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	m := mux{http.NewServeMux()}
	c.Mount(m)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return srv, d
}

func get(t *testing.T, url string, cookie bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if cookie {
		req.AddCookie(&http.Cookie{Name: "s", Value: "ok"})
	}
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// The front desk renders complete on the first response (no JS needed
// to see the lamps), inside the layout with its navigation and assets.
func TestFrontDeskPage(t *testing.T) {
	srv, _ := newConsole(t)
	code, body := get(t, srv.URL+"/", true)
	if code != 200 {
		t.Fatalf("front desk %d", code)
	}
	for _, want := range []string{`<title>Front desk · parkpage</title>`, `href="/" class="active" aria-current="page">Front desk</a>`,
		`data-slot="701" data-state="parked"`, `ACME Supply`, `2065550100`, `0:03`, `data-slot="702" data-state="free"`,
		`/static/console.css?v=`, `/static/frontdesk.js?v=`, `id="recent-parks"`, `parkpage v-test`, `action="/logout"`} {
		if !strings.Contains(body, want) {
			t.Errorf("front desk lacks %q", want)
		}
	}
	if strings.Contains(body, "sip:") {
		t.Error("front desk shows a SIP URI")
	}
	if code, body := get(t, srv.URL+"/static/console.css", false); code != 200 || !strings.Contains(body, ".lamp") {
		t.Errorf("console.css %d", code)
	}
}

func postForm(t *testing.T, u string, v url.Values) (*http.Response, string) {
	t.Helper()
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestLoginPage(t *testing.T) {
	srv, _ := newConsole(t)
	if code, body := get(t, srv.URL+"/login?next=/status", false); code != 200 || !strings.Contains(body, `name="next" value="/status"`) || strings.Contains(body, `class="mainnav"`) {
		t.Errorf("login page %d:\n%s", code, body)
	}
	if code, _ := get(t, srv.URL+"/login", true); code != http.StatusSeeOther {
		t.Errorf("login page with a session: %d, want a redirect", code)
	}
	res, body := postForm(t, srv.URL+"/login", url.Values{"user": {"admin"}, "password": {"nope"}, "next": {"/status"}})
	if res.StatusCode != 401 || !strings.Contains(body, "Wrong user name or password") || !strings.Contains(body, `value="/status"`) {
		t.Errorf("wrong password %d", res.StatusCode)
	}
	res, body = postForm(t, srv.URL+"/login", url.Values{"user": {"admin"}, "password": {"slow"}})
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many failed attempts") {
		t.Errorf("throttled %d %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	res, _ = postForm(t, srv.URL+"/login", url.Values{"user": {"admin"}, "password": {"pw"}, "next": {"//evil.example/"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Errorf("login: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestSlotActions(t *testing.T) {
	srv, d := newConsole(t)
	post := func(path, body string) (int, string) {
		res, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, body string
		code       int
		field      string
	}{
		{"/api/v1/slots/701/hangup", `{}`, 200, ""},
		{"/api/v1/slots/702/hangup", `{}`, 409, ""},
		{"/api/v1/slots/701/move", `{"to": "705"}`, 200, ""},
		{"/api/v1/slots/702/move", `{"to": "701"}`, 409, `"field": "to"`},
		{"/api/v1/slots/701/move", `{}`, 400, `"field": "to"`},
		{"/api/v1/slots/701/ring", `{"to": "201"}`, 200, ""},
		{"/api/v1/slots/701/ring", `{"to": "sip:x@y"}`, 400, `"field": "to"`},
		{"/api/v1/slots/701/ring", `{"to": "201", "extra": 1}`, 400, `"field": "extra"`},
	} {
		code, body := post(tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.field) {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, code, body)
		}
	}
	want := "hangup 701,hangup 702,move 701 705,move 702 701,ring 701 201,ring 701 sip:x@y"
	if got := strings.Join(d.calls, ","); got != want {
		t.Errorf("desk calls %s, want %s", got, want)
	}
}

// Pages registered by other files join the layout and the navigation in
// the fixed order; two pages on one path are refused.
func TestRegisterPage(t *testing.T) {
	registry.mu.Lock()
	saved := registry.pages
	// Stand-ins for the real Report and Status pages (registered by
	// report.go and status.go when they are built in).
	var others []Page
	for _, p := range saved {
		if p.Path != "/report" && p.Path != "/status" {
			others = append(others, p)
		}
	}
	registry.pages = append(others,
		Page{Path: "/report", Nav: NavReport, Title: "Report", Template: "login.html"},
		Page{Path: "/status", Nav: NavStatus, Title: "Status", Template: "login.html"})
	registry.mu.Unlock()
	defer func() { registry.mu.Lock(); registry.pages = saved; registry.mu.Unlock() }()
	srv, _ := newConsole(t)
	_, body := get(t, srv.URL+"/", true)
	desk, status, report := strings.Index(body, ">Front desk</a>"), strings.Index(body, ">Status</a>"), strings.Index(body, ">Report</a>")
	if desk < 0 || status < desk || report < status {
		t.Errorf("navigation order: desk %d, status %d, report %d", desk, status, report)
	}
	registry.mu.Lock()
	registry.pages = append(registry.pages, Page{Path: "/status", Template: "login.html"})
	registry.mu.Unlock()
	if _, err := New(&Env{Backend: fakeBackend{}}); err == nil || !strings.Contains(err.Error(), "two pages on /status") {
		t.Errorf("duplicate page: %v", err)
	}
}

func TestRenderStandalone(t *testing.T) {
	w := httptest.NewRecorder()
	if err := RenderStandalone(w, 403, "Set the admin password", "firstrun.html", struct {
		Saved      bool
		Error, PBX string
		PBXError   string
		Problems   []string
	}{Error: "Wrong setup code."}); err != nil {
		t.Fatal(err)
	}
	if w.Code != 403 || !strings.Contains(w.Body.String(), "Wrong setup code.") || !strings.Contains(w.Body.String(), "/static/console.css") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

// Problems the appliance found at boot (a refused parkpage.yaml on the
// boot partition) are on every page with navigation, escaped, and on no
// bare page (login).
func TestNotices(t *testing.T) {
	env := &Env{Backend: fakeBackend{}, Auth: &fakeAuth{}}
	env.Provide(DeskKey, Desk(&fakeDesk{}))
	notice := `Refused on the boot partition: boot partition parkpage.yaml:3:9: zones.lobby.outputs[0].port: <not a port>`
	env.Provide(NoticesKey, func() []string { return []string{notice} })
	c, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	m := mux{http.NewServeMux()}
	c.Mount(m)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	escaped := template.HTMLEscapeString(notice)
	for _, path := range []string{"/", "/status"} {
		code, body := get(t, srv.URL+path, true)
		if code != 200 || !strings.Contains(body, `role="alert"`) || !strings.Contains(body, escaped) {
			t.Errorf("%s (%d) lacks the notice %q", path, code, escaped)
		}
	}
	if _, body := get(t, srv.URL+"/login", false); strings.Contains(body, "parkpage.yaml:3:9") {
		t.Error("the login page shows the boot notice")
	}
	srv2, _ := newConsole(t)
	if _, body := get(t, srv2.URL+"/", true); strings.Contains(body, "notices") {
		t.Error("a page without notices shows the notice box")
	}
}
