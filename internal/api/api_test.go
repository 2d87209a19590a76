package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/events"
)

type fakeBackend struct {
	mu        sync.Mutex
	announced []AnnounceRequest
	parkEvs   []ParkEventRequest
	reloadErr error
	labels    *fakeLabels
	drains    []string // "drain", "cancel" (drain_test.go)
}

func (f *fakeBackend) Labels() LabelStore {
	if f.labels == nil {
		return nil
	}
	return f.labels
}

// fakeLabels counts changes; every delete succeeds.
type fakeLabels struct {
	mu      sync.Mutex
	changes int
}

func (l *fakeLabels) List() []LabelRecording { return nil }
func (l *fakeLabels) Open(string, string) (io.ReadCloser, error) {
	return nil, ErrNoLabel
}
func (l *fakeLabels) Upload(slot, kind string, wav []byte) (LabelRecording, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes++
	return LabelRecording{Slot: slot, Kind: kind, By: "api"}, nil
}
func (l *fakeLabels) Delete(string, string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes++
	return nil
}

func (l *fakeLabels) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changes
}

func (f *fakeBackend) Status() Status {
	return Status{Version: "test", ConfigSource: "embedded default"}
}
func (f *fakeBackend) Slots() []Slot {
	return []Slot{{Slot: "701", Lot: "700", State: "free"}, {Slot: "704", Lot: "700", Label: "Sales", State: "parked", Caller: "ACME"}}
}
func (f *fakeBackend) Zones() []Zone {
	return []Zone{{Name: "all", Outputs: []Output{{Type: "polycom", Address: "224.0.1.116:5001", Codec: "g722", Channel: 26}}}}
}
func (f *fakeBackend) Announce(_ context.Context, r AnnounceRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, z := range r.Zones {
		if z == "nowhere" {
			return "", &FieldError{"zones", `zone "nowhere" does not exist`}
		}
	}
	f.announced = append(f.announced, r)
	return "p1", nil
}
func (f *fakeBackend) Reload() error { return f.reloadErr }
func (f *fakeBackend) ParkEvent(_ context.Context, ev ParkEventRequest) error {
	f.mu.Lock()
	f.parkEvs = append(f.parkEvs, ev)
	f.mu.Unlock()
	return nil
}

// start runs a real server on 127.0.0.1 and returns its base URL.
func start(t *testing.T, cfg Config, b Backend, bus *events.Bus) string {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	return serve(t, New(cfg, b, bus, metrics.NewSet(), slog.New(slog.DiscardHandler)))
}

func do(t *testing.T, method, url, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(res.Body)
	json.Unmarshal(b, &m)
	return res.StatusCode, m
}

func TestNoCredentialMeansLoopbackOnly(t *testing.T) {
	c := Config{Listen: "0.0.0.0:8080"}
	if got := c.ListenAddr(); got != "127.0.0.1:8080" {
		t.Errorf("ListenAddr = %s", got)
	}
	c.BearerTokens = []string{"0123456789abcdef"}
	if got := c.ListenAddr(); got != "0.0.0.0:8080" {
		t.Errorf("with token ListenAddr = %s", got)
	}
}

func TestRoutes(t *testing.T) {
	fb := &fakeBackend{}
	base := start(t, Config{}, fb, events.New())
	code, m := do(t, "GET", base+"/api/v1/status", "")
	if code != 200 || m["version"] != "test" || m["config_source"] != "embedded default" {
		t.Errorf("status %d %v", code, m)
	}
	code, m = do(t, "GET", base+"/api/v1/slots", "")
	if code != 200 || len(m["slots"].([]any)) != 2 {
		t.Errorf("slots %d %v", code, m)
	}
	code, m = do(t, "GET", base+"/api/v1/zones", "")
	if code != 200 || m["zones"].([]any)[0].(map[string]any)["name"] != "all" {
		t.Errorf("zones %d %v", code, m)
	}
	code, m = do(t, "POST", base+"/api/v1/announcements", `{"zones":["all"],"text":"hello"}`, "Content-Type", "application/json")
	if code != 202 || m["page"] != "p1" || len(fb.announced) != 1 {
		t.Errorf("announce %d %v", code, m)
	}
	res, err := http.Get(base + "/metrics")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("metrics %v %v", res, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), "process_resident_memory_bytes") {
		t.Errorf("metrics body lacks process metrics")
	}
	res, _ = http.Get(base + "/")
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), "<title>parkpage</title>") {
		t.Error("admin page missing")
	}
}

func TestBadBodies(t *testing.T) {
	base := start(t, Config{}, &fakeBackend{}, events.New())
	tests := []struct {
		body, field string
		code        int
	}{
		{`{"zones":["all"]}`, "text", 400},
		{`{"zones":"all","text":"x"}`, "zones", 400},
		{`{"zones":["all"],"text":"x","volume":3}`, "volume", 400},
		{`{"zones":["all"],"text":"x","priority":"urgent"}`, "priority", 400},
		{`{"zones":["all"],"text":"x","slot":"704"}`, "slot", 400},
		{`{"text":"x"}`, "zones", 400},
		{`{"zones":["nowhere"],"text":"x"}`, "zones", 400},
		{`{"zones":["all"],"text":`, "", 400},
		{``, "", 400},
		{`{"zones":["all"],"text":"x"} {}`, "", 400},
	}
	for _, tt := range tests {
		code, m := do(t, "POST", base+"/api/v1/announcements", tt.body, "Content-Type", "application/json")
		if code != tt.code || m["error"] == nil {
			t.Errorf("%s: %d %v", tt.body, code, m)
		}
		if f, _ := m["field"].(string); f != tt.field {
			t.Errorf("%s: field %q, want %q", tt.body, f, tt.field)
		}
	}
	code, m := do(t, "POST", base+"/api/v1/park-events", `{"event":"gone","slot":"704"}`, "Content-Type", "application/json")
	if code != 400 || m["field"] != "event" {
		t.Errorf("park-events: %d %v", code, m)
	}
}

func TestAuth(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	token := "tok-0123456789abcdef"
	base := start(t, Config{Listen: "127.0.0.1:0", PasswordHash: string(hash), BearerTokens: []string{token}, WebhookTokens: []string{"hook-0123456789abcd"}}, &fakeBackend{}, events.New())
	for _, path := range []string{"/api/v1/status", "/api/v1/slots", "/api/v1/zones", "/metrics", "/", "/api/v1/events"} {
		if code, _ := do(t, "GET", base+path, ""); code != 401 {
			t.Errorf("%s without credential: %d", path, code)
		}
	}
	if code, _ := do(t, "GET", base+"/healthz", ""); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	if code, _ := do(t, "GET", base+"/api/v1/status", "", "Authorization", "Bearer "+token); code != 200 {
		t.Errorf("bearer: %d", code)
	}
	if code, _ := do(t, "GET", base+"/api/v1/status", "", "Authorization", "Bearer wrong-0123456789abc"); code != 401 {
		t.Errorf("wrong bearer: %d", code)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/status", nil)
	req.SetBasicAuth("admin", "s3cret-pass")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Errorf("basic auth: %v %v", res, err)
	}
	req.SetBasicAuth("admin", "wrong")
	if res, _ := http.DefaultClient.Do(req); res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong password: %d", res.StatusCode)
	}
	// The webhook token opens the webhook only.
	if code, _ := do(t, "POST", base+"/api/v1/park-events", `{"event":"parked","slot":"704"}`, "Authorization", "Bearer hook-0123456789abcd", "Content-Type", "application/json"); code != 202 {
		t.Errorf("webhook with its token: %d", code)
	}
	if code, _ := do(t, "GET", base+"/api/v1/status", "", "Authorization", "Bearer hook-0123456789abcd"); code != 401 {
		t.Errorf("webhook token on status: %d", code)
	}
	if code, _ := do(t, "POST", base+"/api/v1/park-events", `{"event":"parked","slot":"704"}`); code != 401 {
		t.Errorf("webhook without token: %d", code)
	}
}

func TestReloadError(t *testing.T) {
	fb := &fakeBackend{reloadErr: io.ErrUnexpectedEOF}
	base := start(t, Config{}, fb, events.New())
	if code, m := do(t, "POST", base+"/api/v1/reload", "", "Content-Type", "application/json"); code != 422 || m["error"] == nil {
		t.Errorf("reload: %d %v", code, m)
	}
}

func TestEventStream(t *testing.T) {
	bus := events.New()
	base := start(t, Config{}, &fakeBackend{}, bus)
	res, err := http.Get(base + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(res.Body)
	r.ReadString('\n') // comment line
	r.ReadString('\n')
	// The subscription exists once the header has arrived.
	bus.Publish(events.Event{Type: events.CallParked, Slot: "704"})
	var lines []string
	for len(lines) < 3 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	if lines[0] != "id: 1" || lines[1] != "event: call.parked" || !strings.Contains(lines[2], `"slot":"704"`) {
		t.Errorf("sse lines %q", lines)
	}
}

func TestListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := New(Config{Listen: ln.Addr().String()}, &fakeBackend{}, events.New(), metrics.NewSet(), slog.New(slog.DiscardHandler))
	_, err = s.Listen()
	if err == nil || !strings.Contains(err.Error(), "is already in use: stop the other program or set http.listen") {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecodeAnnounce(f *testing.F) {
	f.Add(`{"zones":["all"],"text":"hello"}`)
	f.Add(`{"slot":"704","priority":"emergency","chime":"none","wait":true}`)
	f.Add(`{"zones":[1]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var r AnnounceRequest
		if err := DecodeJSON(strings.NewReader(body), &r); err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T is not a FieldError", err)
			}
			return
		}
		r.Validate()
	})
}

// The status keeps config_warnings when there are none: clients read an
// empty list, not a missing field.
func TestStatusWarningsAlwaysPresent(t *testing.T) {
	base := start(t, Config{}, &fakeBackend{}, events.New())
	res, err := http.Get(base + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got := string(m["config_warnings"]); got != "[]" {
		t.Errorf("config_warnings = %q, want [] in %s", got, body)
	}
}

func TestFailedLoginsAreThrottled(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	ms := metrics.NewSet()
	s := New(Config{Listen: "127.0.0.1:0", PasswordHash: string(hash), BearerTokens: []string{"tok-0123456789abcdef"}}, &fakeBackend{}, events.New(), ms, slog.New(slog.DiscardHandler))
	base := serve(t, s)
	try := func(user, pass string) *http.Response {
		req, _ := http.NewRequest("GET", base+"/api/v1/status", nil)
		req.SetBasicAuth(user, pass)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	codes := []int{}
	for range 8 {
		codes = append(codes, try("admin", "wrong-guess").StatusCode)
	}
	// Five free failures, then the source is locked out: 429 without a
	// password check, saying when to retry.
	if want := []int{401, 401, 401, 401, 401, 401, 429, 429}; !slices.Equal(codes, want) {
		t.Errorf("codes %v, want %v", codes, want)
	}
	res := try("admin", "s3cret-pass")
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Errorf("correct password from a locked-out untrusted source: %d %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// Wrong bearer tokens count too.
	if code, _ := do(t, "GET", base+"/api/v1/status", "", "Authorization", "Bearer wrong-0123456789abc"); code != 429 {
		t.Errorf("bearer while locked out: %d", code)
	}
	var b strings.Builder
	ms.WritePrometheus(&b)
	for _, want := range []string{`parkpage_auth_failures_total{service="api"} 6`, `parkpage_auth_lockouts_total{service="api"} 1`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	if code, _ := do(t, "GET", base+"/healthz", ""); code != 200 {
		t.Errorf("healthz while locked out: %d", code)
	}
}

func TestTrustedSourceGetsInDuringLockout(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	s := New(Config{Listen: "127.0.0.1:0", PasswordHash: string(hash), Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		&fakeBackend{}, events.New(), metrics.NewSet(), slog.New(slog.DiscardHandler))
	base := serve(t, s)
	try := func(pass string) int {
		req, _ := http.NewRequest("GET", base+"/api/v1/status", nil)
		req.SetBasicAuth("admin", pass)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for range 20 {
		try("wrong-guess")
	}
	if c := try("wrong-guess"); c != 429 {
		t.Fatalf("trusted source not throttled: %d", c)
	}
	// The owner retries: within the documented grace (1 s) the correct
	// password is checked and lets them in.
	start := time.Now()
	for try("s3cret-pass") != 200 {
		if time.Since(start) > time.Minute {
			t.Fatal("trusted source's correct password kept out")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serve runs s on its listener until the test ends, and returns its base
// URL.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Error("server did not stop")
		}
	})
	return "http://" + ln.Addr().String()
}

// Bodies over the limit get 413 naming the limit, not a parse error or a
// reset connection, on every route that takes a body.
func TestOversizedBodies(t *testing.T) {
	base := start(t, Config{}, &fakeBackend{}, events.New())
	for _, path := range []string{"/api/v1/announcements", "/api/v1/park-events"} {
		for _, size := range []int{100_000, 10 << 20} {
			body := `{"zones":["all"],"text":"` + strings.Repeat("a", size) + `"}`
			// Chunked (no Content-Length) for the big one: found while reading.
			var rd io.Reader = strings.NewReader(body)
			if size > maxBody*10 {
				rd = io.MultiReader(rd)
			}
			res, err := http.Post(base+path, "application/json", rd)
			if err != nil {
				t.Errorf("%s, %d bytes: %v", path, size, err)
				continue
			}
			var m map[string]any
			json.NewDecoder(res.Body).Decode(&m)
			res.Body.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge || m["limit_bytes"] != float64(maxBody) || !strings.Contains(fmt.Sprint(m["error"]), "65536") {
				t.Errorf("%s, %d bytes: %d %v", path, size, res.StatusCode, m)
			}
		}
	}
	// Just under the limit is still parsed (and refused for its content).
	body := `{"zones":["all"],"text":"` + strings.Repeat("a", maxBody-100) + `"}`
	if code, m := do(t, "POST", base+"/api/v1/announcements", body, "Content-Type", "application/json"); code != 400 || m["field"] != "text" {
		t.Errorf("body under the limit: %d %v", code, m)
	}
}

// Every route that changes state (any method but GET) refuses a GET and a
// cross-site browser request (Sec-Fetch-Site, or an Origin that is not the
// server's own), with or without valid credentials; a same-origin one and
// a non-browser client (no such headers) get through.
func TestStateChangingRoutesRefuseGETAndCrossSite(t *testing.T) {
	token := "tok-0123456789abcdef"
	fb := &fakeBackend{labels: &fakeLabels{}}
	s := New(Config{Listen: "127.0.0.1:0", BearerTokens: []string{token}}, fb, events.New(), metrics.NewSet(), slog.New(slog.DiscardHandler))
	base := serve(t, s)
	bodies := map[string]string{
		"/api/v1/announcements":        `{"zones":["all"],"text":"hello"}`,
		"/api/v1/park-events":          `{"event":"parked","slot":"704"}`,
		"/api/v1/reload":               ``,
		"/api/v1/labels/{slot}/{kind}": "RIFF-not-checked-by-the-fake",
		"/api/v1/drain":                ``,
		// The setup console's (setup_test.go's fake records them).
		"/api/v1/config/upload":     `{"yaml":"zones: {}\n"}`,
		"/api/v1/config/edits":      `{"edits":[{"path":["park","slots","701","label"],"value":"Sales"}]}`,
		"/api/v1/zones/{zone}/test": `{"output":0}`,
	}
	// Routes with wildcards are tried on one concrete path.
	concrete := map[string]string{"/api/v1/labels/{slot}/{kind}": "/api/v1/labels/704/label", "/api/v1/zones/{zone}/test": "/api/v1/zones/{zone}/test"}
	var changing int
	for _, p := range s.Patterns() {
		method, path, _ := strings.Cut(p, " ")
		if method == "GET" {
			continue
		}
		pattern := path
		changing++
		body, ok := bodies[path]
		if !ok {
			t.Errorf("state-changing route %s has no test body: add it", p)
			continue
		}
		if c, ok := concrete[path]; ok {
			path = c
		} else if strings.Contains(path, "{") {
			t.Errorf("state-changing route %s has no concrete path: add it", p)
			continue
		}
		auth := []string{"Authorization", "Bearer " + token, "Content-Type", "application/json"}
		readable := slices.Contains(s.Patterns(), "GET "+pattern) // the same path reads too
		if code, _ := do(t, "GET", base+path, "", auth...); !readable && code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d, want 405", path, code)
		}
		for _, hdr := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
			{"Origin", "http://evil.example"},
		} {
			if code, m := do(t, method, base+path, body, append(auth, hdr...)...); code != http.StatusForbidden {
				t.Errorf("%s %s with %s: %s: %d %v, want 403", method, path, hdr[0], hdr[1], code, m)
			}
		}
		before := len(fb.announced) + len(fb.parkEvs) + fb.labels.count() + len(fb.drains)
		if code, m := do(t, method, base+path, body, append(auth, "Sec-Fetch-Site", "same-origin", "Origin", base)...); code >= 300 {
			t.Errorf("same-origin %s %s: %d %v", method, path, code, m)
		}
		if code, m := do(t, method, base+path, body, auth...); code >= 300 {
			t.Errorf("non-browser %s %s: %d %v", method, path, code, m)
		}
		if path != "/api/v1/reload" && len(fb.announced)+len(fb.parkEvs)+fb.labels.count()+len(fb.drains) != before+2 {
			t.Errorf("%s: the refused requests changed state", path)
		}
	}
	if changing < 3 {
		t.Errorf("only %d state-changing routes found", changing)
	}
}
