package appliance

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/config"
)

func newSetup(t *testing.T) (*Setup, *httptest.Server, *[]string, chan struct{}) {
	t.Helper()
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	t.Cleanup(health.Close)
	var codes []string
	done := make(chan struct{}, 1)
	s := &Setup{StateDir: t.TempDir(), Health: health.URL + "/healthz", Problems: []string{"boot partition parkpage.yaml:4:7: zones.all.outputs[0].typo: unknown key"},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Announce: func(c string) { codes = append(codes, c) },
		Done: func() { done <- struct{}{} }}
	s.NewCode()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv, &codes, done
}

func post(t *testing.T, base string, v url.Values) (int, string) {
	t.Helper()
	res, err := http.PostForm(base+"/setup", v)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestSetupOffersOnlyTheCredential(t *testing.T) {
	s, srv, codes, done := newSetup(t)
	if len(*codes) != 1 || len(s.Code()) != 9 {
		t.Fatalf("announced codes %v", *codes)
	}
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `name="code"`) || !strings.Contains(string(b), "parkpage.yaml:4:7") {
		t.Errorf("setup page lacks the code field or the boot problems:\n%s", b)
	}
	for _, p := range []string{"/api/v1/slots", "/api/v1/announcements"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403 before setup", p, res.StatusCode)
		}
	}
	res, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("/healthz %d", res.StatusCode)
	}

	// Wrong codes: refused; the fifth makes a new code.
	first := s.Code()
	for i := 0; i < maxAttempts; i++ {
		if code, _ := post(t, srv.URL, url.Values{"code": {"0000-000x"}, "password": {"correct horse"}, "confirm": {"correct horse"}}); code != http.StatusForbidden {
			t.Fatalf("wrong code: %d", code)
		}
	}
	if len(*codes) != 2 || s.Code() == first {
		t.Errorf("no new code after %d wrong ones: %v", maxAttempts, *codes)
	}
	if code, _ := post(t, srv.URL, url.Values{"code": {first}, "password": {"correct horse"}, "confirm": {"correct horse"}}); code != http.StatusForbidden {
		t.Errorf("old code after renewal: %d, want 403", code)
	}
	if code, _ := post(t, srv.URL, url.Values{"code": {s.Code()}, "password": {"short"}, "confirm": {"short"}}); code != http.StatusBadRequest {
		t.Errorf("short password: %d", code)
	}
	if code, _ := post(t, srv.URL, url.Values{"code": {s.Code()}, "password": {"correct horse"}, "confirm": {"correct horsE"}}); code != http.StatusBadRequest {
		t.Errorf("mismatch: %d", code)
	}
	if _, err := os.Stat(filepath.Join(s.StateDir, PermHash)); err == nil {
		t.Fatal("credential saved before a valid request")
	}
	code, body := post(t, srv.URL, url.Values{"code": {strings.ReplaceAll(s.Code(), "-", "")}, "password": {"correct horse"}, "confirm": {"correct horse"}})
	if code != 200 || !strings.Contains(body, "Saved") {
		t.Fatalf("valid setup: %d %s", code, body)
	}
	h, err := os.ReadFile(filepath.Join(s.StateDir, PermHash))
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(string(h))), []byte("correct horse")); err != nil {
		t.Errorf("saved hash: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Done not called after setup")
	}
	// Once set, the page cannot set it again.
	if code, _ := post(t, srv.URL, url.Values{"code": {s.Code()}, "password": {"other password"}, "confirm": {"other password"}}); code != http.StatusConflict {
		t.Errorf("second setup: %d, want 409", code)
	}
}

// The setup page asks for the PBX instead of trusting the LAN: a bad
// address is refused next to its field (nothing saved), a good one is
// saved with the credential and the next start runs with sip.pbx set, so
// the PBX (and nothing else on the LAN) is trusted.
func TestSetupNamesThePBX(t *testing.T) {
	s, srv, _, done := newSetup(t)
	code, body := post(t, srv.URL, url.Values{"code": {s.Code()}, "password": {"correct horse"}, "confirm": {"correct horse"}, "pbx": {"pbx .lan"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `PBX address &#34;pbx .lan&#34;`) || !strings.Contains(body, `value="pbx .lan"`) {
		t.Fatalf("bad PBX address: %d\n%s", code, body)
	}
	if _, err := os.Stat(filepath.Join(s.StateDir, PermHash)); err == nil {
		t.Fatal("credential saved although the form was refused")
	}
	code, body = post(t, srv.URL, url.Values{"code": {s.Code()}, "password": {"correct horse"}, "confirm": {"correct horse"}, "pbx": {"192.0.2.5:5080"}})
	if code != http.StatusOK {
		t.Fatalf("setup with a PBX: %d\n%s", code, body)
	}
	<-done
	plan := Choose(s.StateDir, "", t.TempDir())
	if !plan.HasCredential || plan.ConfigPath == "" {
		t.Fatalf("plan %+v", plan)
	}
	b, err := os.ReadFile(plan.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse(plan.ConfigPath, b)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.PBX != "sip:192.0.2.5:5080" || !cfg.HTTP.HasCredential() {
		t.Errorf("effective config: sip.pbx %q, credential %v\n%s", cfg.SIP.PBX, cfg.HTTP.HasCredential(), b)
	}
	if !strings.Contains(plan.Source, "sip.pbx sip:192.0.2.5:5080") {
		t.Errorf("source %q does not say where sip.pbx came from", plan.Source)
	}
}

func TestPBXURI(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"", "", ""},
		{"  192.0.2.5 ", "sip:192.0.2.5", ""},
		{"pbx.example.lan:5060", "sip:pbx.example.lan:5060", ""},
		{"sip:192.0.2.5:5080", "sip:192.0.2.5:5080", ""},
		{"pbx .lan", "", "PBX address"},
	} {
		got, err := PBXURI(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("PBXURI(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// A restart of the service within one boot (before DHCP, after a crash)
// keeps the code on the screen valid; a new code after too many wrong
// ones is kept too.
func TestSetupCodeSurvivesRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "setup-code")
	var shown []string
	start := func() *Setup {
		s := &Setup{StateDir: t.TempDir(), CodeFile: file, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Announce: func(c string) { shown = append(shown, c) }}
		s.ResumeCode()
		return s
	}
	first := start().Code()
	if second := start().Code(); second != first {
		t.Fatalf("code after a restart %q, want the one shown before, %q", second, first)
	}
	if len(shown) != 2 || shown[1] != first {
		t.Errorf("announced %q, want %q twice", shown, first)
	}
	s := start()
	srv := httptest.NewServer(s)
	defer srv.Close()
	for range maxAttempts {
		post(t, srv.URL, url.Values{"code": {"0000-0000"}, "password": {"long enough 1"}, "confirm": {"long enough 1"}})
	}
	renewed := s.Code()
	if renewed == first {
		t.Fatalf("no new code after %d wrong ones", maxAttempts)
	}
	if got := start().Code(); got != renewed {
		t.Errorf("code after a restart %q, want the renewed %q", got, renewed)
	}
	// A damaged file makes a new code.
	os.WriteFile(file, []byte("garbage"), 0o600)
	if got := start().Code(); !codeRE.MatchString(got) || got == renewed {
		t.Errorf("code from a damaged file: %q", got)
	}
}
