package appliance

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGokrazy serves gokrazy's update handlers on a Unix socket: PUTs
// answer the sha256 of what they received, like gokrazy's.
type fakeGokrazy struct {
	mu     sync.Mutex
	calls  []string
	bodies map[string][]byte
	g      *Gokrazy
}

func newFakeGokrazy(t *testing.T) *fakeGokrazy {
	t.Helper()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "gokr-pw.txt")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	f := &fakeGokrazy{bodies: map[string][]byte{}}
	sock := filepath.Join(dir, "gokrazy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "gokrazy" || p != "s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		f.bodies[r.URL.Path] = b
		f.mu.Unlock()
		if r.Method == http.MethodPut {
			sum := sha256.Sum256(b)
			io.WriteString(w, hex.EncodeToString(sum[:]))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.g = &Gokrazy{Socket: sock, PasswordFiles: []string{filepath.Join(dir, "missing"), pwFile}}
	return f
}

func (f *fakeGokrazy) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func cmdlineFile(t *testing.T, trial bool) string {
	p := filepath.Join(t.TempDir(), "cmdline")
	s := "console=ttyS0 root=PARTUUID=60c24cc1-f3f9-427a-8199-a0b1c2d30001/PARTNROFF=1 init=/gokrazy/init"
	if trial {
		s += " " + TrialBootFlag
	}
	os.WriteFile(p, []byte(s+"\n"), 0o644)
	return p
}

func serveUpdater(t *testing.T, u *Updater) *httptest.Server {
	mux := http.NewServeMux()
	for p, h := range u.Routes() {
		mux.Handle(p, h)
	}
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func do(t *testing.T, method, url string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestUpdaterWritesPartsThroughGokrazy(t *testing.T) {
	fg := newFakeGokrazy(t)
	rebooted := make(chan struct{}, 1)
	bootDir := t.TempDir()
	os.MkdirAll(filepath.Join(bootDir, "loader", "entries"), 0o755)
	cmdline := "console=ttyS0 root=PARTUUID=x/PARTNROFF=1 init=/gokrazy/init" + strings.Repeat(" ", 64)
	os.WriteFile(filepath.Join(bootDir, "cmdline.txt"), []byte(cmdline), 0o644)
	os.WriteFile(filepath.Join(bootDir, "loader", "entries", "gokrazy.conf"), []byte("title gokrazy\nlinux /vmlinuz\noptions "+cmdline), 0o644)
	u := &Updater{Gokrazy: fg.g, Cmdline: cmdlineFile(t, false), Log: slog.New(slog.DiscardHandler),
		Reboot:   func() { rebooted <- struct{}{} },
		WithBoot: func(fn func(string) error) error { return fn(bootDir) }}
	s := serveUpdater(t, u)

	if code, body := do(t, "POST", s.URL+"/api/v1/update/apply", nil); code != http.StatusConflict {
		t.Errorf("apply before a root: %d %s, want 409", code, body)
	}
	root := bytes.Repeat([]byte("squashfs"), 100000)
	code, body := do(t, "PUT", s.URL+"/api/v1/update/root", gz(root), "Content-Encoding", "gzip")
	var res PutResult
	json.Unmarshal([]byte(body), &res)
	sum := sha256.Sum256(root)
	if code != 200 || res.Bytes != int64(len(root)) || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("PUT root: %d %s", code, body)
	}
	if !bytes.Equal(fg.bodies["/update/root"], root) {
		t.Errorf("gokrazy got %d bytes for /update/root, want the %d decompressed", len(fg.bodies["/update/root"]), len(root))
	}
	if code, body := do(t, "PUT", s.URL+"/api/v1/update/boot", []byte("FAT")); code != 200 {
		t.Errorf("PUT boot: %d %s", code, body)
	}
	if code, body := do(t, "PUT", s.URL+"/api/v1/update/mbr", make([]byte, 440)); code != http.StatusBadGateway || !strings.Contains(body, "440 bytes") {
		t.Errorf("PUT a short mbr: %d %s, want 502 naming the size", code, body)
	}
	if code, body := do(t, "PUT", s.URL+"/api/v1/update/mbr", make([]byte, 446)); code != 200 {
		t.Errorf("PUT mbr: %d %s", code, body)
	}
	if code, _ := do(t, "PUT", s.URL+"/api/v1/update/kernel", []byte("x")); code != http.StatusNotFound {
		t.Errorf("PUT an unknown part: %d, want 404", code)
	}
	if code, body := do(t, "POST", s.URL+"/api/v1/update/apply", nil); code != http.StatusAccepted {
		t.Fatalf("apply: %d %s", code, body)
	}
	select {
	case <-rebooted:
	case <-time.After(5 * time.Second):
		t.Fatal("no reboot after apply")
	}
	want := []string{"PUT /update/root", "PUT /update/bootonly", "PUT /update/mbr", "PUT /update/mbr"}
	if got := fg.Calls(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("gokrazy calls:\n%v\nwant\n%v", got, want)
	}
	for _, name := range BootCmdlines {
		b, _ := os.ReadFile(filepath.Join(bootDir, name))
		if !strings.Contains(string(b), "init=/gokrazy/init "+TrialBootFlag) {
			t.Errorf("%s after apply: %q", name, b)
		}
	}
}

func TestEnableTrialBoot(t *testing.T) {
	base := "root=PARTUUID=x/PARTNROFF=1 init=/gokrazy/init"
	flagged := base + " " + TrialBootFlag
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{"gok's padding", base + strings.Repeat(" ", 64), flagged + strings.Repeat(" ", 64-len(TrialBootFlag)-1), false},
		{"trailing newline kept", base + strings.Repeat(" ", 40) + "\n", flagged + strings.Repeat(" ", 40-len(TrialBootFlag)-1) + "\n", false},
		{"already flagged", flagged + "   ", flagged + "   ", false},
		{"no room", base + "  ", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "cmdline.txt")
			os.WriteFile(p, []byte(tc.in), 0o644)
			err := EnableTrialBoot(dir)
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			got, _ := os.ReadFile(p)
			if tc.err {
				if string(got) != tc.in {
					t.Errorf("changed after an error: %q", got)
				}
				return
			}
			if string(got) != tc.want || len(got) != len(tc.in) {
				t.Errorf("got %q (%d bytes), want %q (%d)", got, len(got), tc.want, len(tc.in))
			}
		})
	}
	if err := EnableTrialBoot(t.TempDir()); err == nil {
		t.Error("no cmdline.txt: no error")
	}
}

func TestUpdaterRefusesDuringTrialBoot(t *testing.T) {
	fg := newFakeGokrazy(t)
	u := &Updater{Gokrazy: fg.g, Cmdline: cmdlineFile(t, true), Log: slog.New(slog.DiscardHandler), Reboot: func() {}}
	s := serveUpdater(t, u)
	code, body := do(t, "PUT", s.URL+"/api/v1/update/root", []byte("x"))
	if code != http.StatusConflict || !strings.Contains(body, "trial boot") {
		t.Errorf("PUT root during a trial boot: %d %s, want 409", code, body)
	}
	if len(fg.Calls()) != 0 {
		t.Errorf("gokrazy was called: %v", fg.Calls())
	}
	code, body = do(t, "GET", s.URL+"/api/v1/update", nil)
	if code != 200 || !strings.Contains(body, `"trial_boot":true`) {
		t.Errorf("GET /api/v1/update: %d %s", code, body)
	}
}

func healthServer(t *testing.T, ok func() bool) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok() {
			io.WriteString(w, "ok\n")
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/healthz"
}

func TestGuard(t *testing.T) {
	var checks int
	var mu sync.Mutex
	flaky := func() bool { // down twice, up once, down, then up for good
		mu.Lock()
		defer mu.Unlock()
		checks++
		return checks == 3 || checks >= 5
	}
	for _, tc := range []struct {
		name     string
		trial    bool
		healthy  func() bool
		deadline time.Duration
		wantErr  error
		want     []string
	}{
		{"normal boot", false, func() bool { return false }, time.Second, nil, nil},
		{"healthy update commits", true, flaky, time.Minute, nil, []string{"POST /update/switch"}},
		{"unhealthy update falls back", true, func() bool { return false }, 300 * time.Millisecond, ErrFellBack, []string{"POST /reboot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFakeGokrazy(t)
			var console bytes.Buffer
			g := &Guard{Gokrazy: fg.g, Cmdline: cmdlineFile(t, tc.trial), Health: healthServer(t, tc.healthy),
				Deadline: tc.deadline, Interval: 20 * time.Millisecond, Console: &console}
			err := g.Run(context.Background())
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Run: %v, want %v", err, tc.wantErr)
			}
			if got := fg.Calls(); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("gokrazy calls %v, want %v\nconsole:\n%s", got, tc.want, console.String())
			}
		})
	}
	if checks < 7 {
		t.Errorf("the commit came after %d health checks, want 3 ok in a row (7)", checks)
	}
}

// TestGuardWatchdog: on a trial boot the guard pings the watchdog device
// (a file here: each ping is one byte) from its start, still after the
// commit, until its context ends, never with the magic 'V' that would
// disarm it; on a normal boot it leaves the device alone, and a missing
// device does not stop the commit.
func TestGuardWatchdog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trial   bool
		missing bool
		console string
	}{
		{"trial boot pings", true, false, "pinging the hardware watchdog"},
		{"normal boot leaves it alone", false, false, "normal boot"},
		{"no watchdog", true, true, "no hardware watchdog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := filepath.Join(t.TempDir(), "watchdog")
			if !tc.missing {
				if err := os.WriteFile(dev, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			size := func() int64 {
				st, err := os.Stat(dev)
				if err != nil {
					return -1
				}
				return st.Size()
			}
			fg := newFakeGokrazy(t)
			console := &syncBuf{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			g := &Guard{Gokrazy: fg.g, Cmdline: cmdlineFile(t, tc.trial), Health: healthServer(t, func() bool { return true }),
				Deadline: time.Minute, Interval: 10 * time.Millisecond, Console: console,
				Watchdog: dev, WatchdogInterval: 10 * time.Millisecond}
			if err := g.Run(ctx); err != nil {
				t.Fatalf("Run: %v\n%s", err, console.String())
			}
			if !strings.Contains(console.String(), tc.console) {
				t.Errorf("console %q, want %q", console.String(), tc.console)
			}
			if tc.trial && strings.Join(fg.Calls(), ",") != "POST /update/switch" {
				t.Errorf("gokrazy calls %v, want the commit", fg.Calls())
			}
			switch {
			case tc.missing:
				if size() != -1 {
					t.Error("the guard created the watchdog device")
				}
			case !tc.trial:
				time.Sleep(100 * time.Millisecond)
				if n := size(); n != 0 {
					t.Errorf("normal boot: %d pings, want none (gokrazy pings the watchdog)", n)
				}
			default:
				// Still pinging after the commit.
				after := size()
				for end := time.Now().Add(30 * time.Second); size() < after+3; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(end) {
						t.Fatalf("no pings after the commit: %d bytes, were %d\n%s", size(), after, console.String())
					}
				}
				cancel()
				time.Sleep(200 * time.Millisecond)
				stopped := size()
				time.Sleep(200 * time.Millisecond)
				if n := size(); n != stopped {
					t.Errorf("pings went on after the context ended: %d -> %d bytes", stopped, n)
				}
				b, _ := os.ReadFile(dev)
				if bytes.ContainsRune(b, 'V') {
					t.Error("the guard wrote the magic 'V' (it would disarm the watchdog)")
				}
			}
		})
	}
}

// syncBuf is a console written by the guard and its watchdog goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
