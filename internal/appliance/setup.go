package appliance

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/config"
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

func (s *Setup) newCodeLocked() {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	d := fmt.Sprintf("%08d", n.Int64())
	s.code, s.attempts = d[:4]+"-"+d[4:], 0
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

var setupPage = template.Must(template.New("setup").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>parkpage setup</title>
<style>body{font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em}label{display:block;margin:.8em 0 .2em}
input{font-size:1.1em;width:100%}.err{color:#a00}.ok{color:#070}.hint{color:#555;font-size:.9em;margin:.2em 0}pre{white-space:pre-wrap;background:#fee;padding:.5em}</style></head>
<body><h1>parkpage: set the admin password</h1>
{{if .Saved}}<p class="ok">Saved. parkpage restarts with the new password; log in as <b>admin</b> in a few seconds.</p>
{{else}}<p>This box has no admin password yet. Enter the setup code shown on the box's screen or serial console,
then choose the password for the user <b>admin</b>.</p>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
<form method="post" action="/setup">
<label for="code">Setup code</label><input id="code" name="code" autocomplete="off" required>
<label for="password">Admin password (8 characters or more)</label><input id="password" name="password" type="password" minlength="8" required>
<label for="confirm">Password again</label><input id="confirm" name="confirm" type="password" minlength="8" required>
<label for="pbx">Your phone system (PBX) address, if parkpage works with one: calls from it are trusted, ring-backs go to it</label><input id="pbx" name="pbx" placeholder="192.168.1.10 or pbx.example.lan:5060" value="{{.PBX}}" autocomplete="off">
{{if .PBXError}}<p class="err">{{.PBXError}}</p>{{end}}<p class="hint">Leave it empty if phones register to parkpage directly. Nothing else on the network is trusted until you name it.</p>
<p><button type="submit">Save</button></p></form>{{end}}
{{if .Problems}}<h2>Files refused from the boot partition</h2><pre>{{range .Problems}}{{.}}
{{end}}</pre><p>The box runs on its last good config. Fix the file on the boot partition and restart the box.</p>{{end}}
</body></html>
`))

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

func (s *Setup) render(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	setupPage.Execute(w, d)
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
