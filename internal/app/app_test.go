package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/testsupport/logtest"
)

// runApp runs an App (no parts: the admin API only) on the config text
// and returns it with its log.
func runApp(t *testing.T, yaml string) (*App, string, *logtest.Buffer) {
	t.Helper()
	return runAppWith(t, yaml, nil)
}

// runAppWith is runApp with prepare called before Run (to set hooks).
func runAppWith(t *testing.T, yaml string, prepare func(*App)) (*App, string, *logtest.Buffer) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "parkpage.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	ready := make(chan struct{})
	a, err := New(Options{ConfigPath: path, StateDir: filepath.Join(dir, "state"), LogOutput: logs, Version: "test",
		Ready: func(*App) { close(ready) }})
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("app stopped: %v\n%s", err, logs)
	case <-time.After(2 * time.Minute):
		t.Fatalf("app not ready; log:\n%s", logs)
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return a, path, logs
}

func status(t *testing.T, a *App, auth func(*http.Request)) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr().String()+"/api/v1/status", nil)
	auth(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func basic(pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth("admin", pass) }
}

func TestReloadRotatesCredentials(t *testing.T) {
	const oldTok, newTok = "old-token-0123456789", "new-token-0123456789"
	hash := func(p string) string {
		h, _ := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		return string(h)
	}
	cfg := func(tok, pw string) string {
		return fmt.Sprintf("http:\n  listen: 127.0.0.1:0\n  bearer_tokens: [%q]\n  password_hash: %q\n", tok, hash(pw))
	}
	a, path, logs := runApp(t, cfg(oldTok, "old-password"))
	if c := status(t, a, bearer(oldTok)); c != 200 {
		t.Fatalf("old token before reload: %d", c)
	}
	if c := status(t, a, basic("old-password")); c != 200 {
		t.Fatalf("old password before reload: %d", c)
	}
	os.WriteFile(path, []byte(cfg(newTok, "new-password")), 0o644)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		auth func(*http.Request)
		want int
	}{
		{"old token", bearer(oldTok), 401},
		{"new token", bearer(newTok), 200},
		{"old password", basic("old-password"), 401},
		{"new password", basic("new-password"), 200},
	} {
		if c := status(t, a, tc.auth); c != tc.want {
			t.Errorf("%s after reload: %d, want %d", tc.name, c, tc.want)
		}
	}
	if !strings.Contains(logs.String(), "admin credentials changed") {
		t.Errorf("reload did not log the credential change:\n%s", logs)
	}
}

func TestReloadRefusesAdminAddressChange(t *testing.T) {
	a, path, logs := runApp(t, "http:\n  listen: localhost:0\n  bearer_tokens: [tok-0123456789abcdef]\n")
	for name, y := range map[string]string{
		// Removing every credential moves the API to loopback (and would
		// serve a non-loopback listen without authentication).
		"credentials removed": "http:\n  listen: localhost:0\nlog:\n  level: debug\n",
		"listen changed":      "http:\n  listen: 127.0.0.1:1\n  bearer_tokens: [tok-0123456789abcdef]\nlog:\n  level: debug\n",
	} {
		os.WriteFile(path, []byte(y), 0o644)
		err := a.Reload()
		if err == nil || !strings.Contains(err.Error(), "http.listen") || !strings.Contains(err.Error(), "restart") {
			t.Fatalf("%s: reload that moves the API: %v", name, err)
		}
		if c := status(t, a, bearer("tok-0123456789abcdef")); c != 200 {
			t.Errorf("%s: running credentials lost after a refused reload: %d", name, c)
		}
		if a.Config().Log.Level == "debug" {
			t.Errorf("%s: refused reload half-applied", name)
		}
	}
	if !strings.Contains(logs.String(), "config reload refused") {
		t.Errorf("no refusal logged:\n%s", logs)
	}
}

// The webhook refuses a slot that maps to no configured park slot (400,
// field slot) unless external.announce_unknown_slots says to announce it.
func TestWebhookRefusesUnknownSlots(t *testing.T) {
	for _, announceUnknown := range []bool{false, true} {
		y := fmt.Sprintf("http:\n  listen: 127.0.0.1:0\nexternal:\n  slot_map: {\"71\": \"701\"}\n  announce_unknown_slots: %v\n", announceUnknown)
		var mu sync.Mutex
		var got []string
		a, _, _ := runAppWith(t, y, func(a *App) {
			a.SetHooks(Hooks{ParkEvent: func(_ context.Context, ev api.ParkEventRequest) error {
				mu.Lock()
				got = append(got, ev.Slot)
				mu.Unlock()
				return nil
			}})
		})
		for _, c := range []struct {
			slot string
			want int
		}{{"704", 202}, {"71", 202}, {"999", 400}, {"711", 400}, {"abc", 400}} {
			want := c.want
			if announceUnknown {
				want = 202
			}
			res, err := http.Post("http://"+a.HTTPAddr().String()+"/api/v1/park-events", "application/json",
				strings.NewReader(fmt.Sprintf(`{"event":"parked","slot":%q}`, c.slot)))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]string
			json.NewDecoder(res.Body).Decode(&m)
			res.Body.Close()
			if res.StatusCode != want || (want == 400 && m["field"] != "slot") {
				t.Errorf("announce_unknown_slots %v, slot %s: %d %v, want %d", announceUnknown, c.slot, res.StatusCode, m, want)
			}
		}
		mu.Lock()
		if want := 2; !announceUnknown && len(got) != want {
			t.Errorf("%d events passed on, want %d: %v", len(got), want, got)
		}
		mu.Unlock()
	}
}

// The failure counters alerting rules need exist from the start (at 0),
// and every parkpage family has # HELP (with text) and # TYPE lines.
func TestMetricsFromStartWithMetadata(t *testing.T) {
	a, _, _ := runApp(t, "http:\n  listen: 127.0.0.1:0\n")
	res, err := http.Get("http://" + a.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	body := string(b)
	for _, want := range []string{
		"\nparkpage_events_lost_total 0\n",
		"# TYPE parkpage_events_lost_total counter\n",
		"# HELP parkpage_events_lost_total Events",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# HELP parkpage_") && len(strings.Fields(line)) < 4 {
			t.Errorf("HELP without text: %q", line)
		}
	}
}

// A reload whose file lacks sections the running config has, or defines
// nothing, is applied but warned about loudly, section by section.
func TestReloadWarnsAboutMissingSections(t *testing.T) {
	a, path, logs := runApp(t, "http:\n  listen: 127.0.0.1:0\n  bearer_tokens: [tok-0123456789abcdef]\nexternal:\n  webhook_tokens: [hook-0123456789abcdef]\nsip:\n  users:\n    \"201\": {password: pw}\n")
	os.WriteFile(path, []byte("http:\n  listen: 127.0.0.1:0\n  bearer_tokens: [tok-0123456789abcdef]\n"), 0o644)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{"level=WARN", "external", "sip.users", "cut short"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload log lacks %q:\n%s", want, out)
		}
	}
	os.WriteFile(path, nil, 0o644)
	a.Reload()
	if !strings.Contains(logs.String(), "defines nothing") {
		t.Errorf("empty file reload not warned about:\n%s", logs.String())
	}
}
