package appliance

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/console"
)

// maxAttempts wrong codes make a new code (shown on the console again).
const maxAttempts = 5

// Setup is the admin page of a box without an admin credential: it offers
// nothing but setting that credential, and only to someone who can read
// the one-time code on the box's console (HDMI or serial).
type Setup struct {
	StateDir string
	// Problems from the boot partition, shown on the page.
	Problems []string
	// Health is the running service's /healthz URL, proxied as /healthz.
	Health string
	// Announce prints the code where the installer can read it (console).
	Announce func(code string)
	// Done is called once the credential is saved (the caller restarts).
	Done func()
	Log  *slog.Logger
	// CodeFile, on tmpfs, keeps the code across restarts of the service
	// within one boot, so the code on the screen stays the valid one
	// (a restart before DHCP or after a crash would otherwise replace it).
	CodeFile string

	mu       sync.Mutex
	code     string
	attempts int
	done     bool
}

// NewCode makes a fresh one-time code and announces it.
func (s *Setup) NewCode() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.newCodeLocked()
}

// ResumeCode takes the code this boot's earlier run showed (CodeFile), or
// makes a new one; either way it announces it.
func (s *Setup) ResumeCode() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.CodeFile != "" {
		if b, err := os.ReadFile(s.CodeFile); err == nil && codeRE.Match(bytes.TrimSpace(b)) {
			s.code, s.attempts = string(bytes.TrimSpace(b)), 0
			if s.Announce != nil {
				s.Announce(s.code)
			}
			return
		}
	}
	s.newCodeLocked()
}

var codeRE = regexp.MustCompile(`^\d{4}-\d{4}$`)

func (s *Setup) newCodeLocked() {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	d := fmt.Sprintf("%08d", n.Int64())
	s.code, s.attempts = d[:4]+"-"+d[4:], 0
	if s.CodeFile != "" {
		if err := writeFileSync(s.CodeFile, []byte(s.code+"\n"), 0o600); err != nil && s.Log != nil {
			s.Log.Warn("setup code: not kept for a restart", "err", err)
		}
	}
	if s.Announce != nil {
		s.Announce(s.code)
	}
}

// Saved reports whether the credential has been set.
func (s *Setup) Saved() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// Code returns the current code.
func (s *Setup) Code() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code
}

type pageData struct {
	Saved    bool
	Error    string
	PBX      string // the PBX address as typed
	PBXError string
	Problems []string
}

// ServeHTTP serves the setup page, POST /setup and /healthz; every other
// path is refused until the credential exists.
func (s *Setup) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.URL.Path == "/healthz":
		s.health(w)
	case strings.HasPrefix(r.URL.Path, "/static/") && r.Method == http.MethodGet:
		// The console's stylesheet: the page is a console page.
		w.Header().Del("Cache-Control")
		http.StripPrefix("/static/", console.Static()).ServeHTTP(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		s.render(w, http.StatusOK, pageData{Problems: s.Problems})
	case r.URL.Path == "/setup" && r.Method == http.MethodPost:
		s.setup(w, r)
	case strings.HasPrefix(r.URL.Path, "/api/"):
		http.Error(w, `{"error": "set the admin password first: open / on this box"}`, http.StatusForbidden)
	default:
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
}

// render shows the setup page: a page of the web console
// (templates/firstrun.html), served here before the console itself runs.
func (s *Setup) render(w http.ResponseWriter, status int, d pageData) {
	if err := console.RenderStandalone(w, status, "Set the admin password", "firstrun.html", d); err != nil {
		s.Log.Error("setup page", "err", err)
	}
}

func (s *Setup) health(w http.ResponseWriter) {
	c := &http.Client{Timeout: 3 * time.Second}
	res, err := c.Get(s.Health)
	if err != nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	defer res.Body.Close()
	w.WriteHeader(res.StatusCode)
	io.Copy(w, io.LimitReader(res.Body, 4096))
}

func (s *Setup) setup(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, pageData{Error: "bad form", Problems: s.Problems})
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	pw, confirm := r.PostFormValue("password"), r.PostFormValue("confirm")
	pbxIn := strings.TrimSpace(r.PostFormValue("pbx"))
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		s.render(w, http.StatusConflict, pageData{Saved: true})
		return
	}
	if subtle.ConstantTimeCompare([]byte(normCode(code)), []byte(normCode(s.code))) != 1 {
		s.attempts++
		msg := "Wrong setup code."
		if s.attempts >= maxAttempts {
			s.Log.Warn("setup: too many wrong codes; a new code is on the console")
			s.newCodeLocked()
			msg = "Wrong setup code too often: the box shows a new code now."
		}
		s.mu.Unlock()
		s.render(w, http.StatusForbidden, pageData{Error: msg, Problems: s.Problems})
		return
	}
	s.mu.Unlock()
	if len(pw) < 8 {
		s.render(w, http.StatusBadRequest, pageData{Error: "Use a password of at least 8 characters.", Problems: s.Problems})
		return
	}
	if pw != confirm {
		s.render(w, http.StatusBadRequest, pageData{Error: "The two passwords differ.", Problems: s.Problems, PBX: pbxIn})
		return
	}
	pbx, err := PBXURI(pbxIn)
	if err != nil {
		s.render(w, http.StatusBadRequest, pageData{PBXError: err.Error(), Problems: s.Problems, PBX: pbxIn})
		return
	}
	if pbx != "" {
		err = writeFileSync(filepath.Join(s.StateDir, PermPBX), []byte(pbx+"\n"), 0o600)
	}
	var hash []byte
	if err == nil {
		hash, err = bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	}
	if err == nil {
		err = writeFileSync(filepath.Join(s.StateDir, PermHash), append(hash, '\n'), 0o600)
	}
	if err != nil {
		s.Log.Error("setup: saving the admin credential", "err", err)
		s.render(w, http.StatusInternalServerError, pageData{Error: "Could not save: " + err.Error()})
		return
	}
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.Log.Info("setup: admin credential saved; restarting with the admin page on the LAN", "pbx", pbx)
	s.render(w, http.StatusOK, pageData{Saved: true})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if s.Done != nil {
		go s.Done()
	}
}

// PBXURI turns what an installer types for the PBX (an address, a host
// name, host:port or a sip: URI) into a sip.pbx value, checked as the
// config checks it; "" stays "" (no PBX).
func PBXURI(in string) (string, error) {
	in = strings.TrimSpace(in)
	if in == "" {
		return "", nil
	}
	uri := in
	if !strings.HasPrefix(strings.ToLower(uri), "sip:") {
		uri = "sip:" + uri
	}
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil || !hostRe.MatchString(u.Host) && net.ParseIP(u.Host) == nil {
		return "", fmt.Errorf("PBX address %q: give an IP address or host name, with :port if it is not 5060", in)
	}
	if _, _, err := config.Parse("setup", []byte("sip:\n  pbx: "+strconv.Quote(uri)+"\n")); err != nil {
		return "", fmt.Errorf("PBX address %q: %s", in, strings.TrimPrefix(err.Error(), "setup:"))
	}
	return uri, nil
}

// hostRe is a DNS host name (letters, digits, hyphens, dots).
var hostRe = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

func normCode(c string) string { return strings.ReplaceAll(strings.ReplaceAll(c, "-", ""), " ", "") }
