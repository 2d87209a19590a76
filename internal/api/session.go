package api

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Sessions for the console's login page: a random ID in a cookie
// (HttpOnly, SameSite=Strict, Secure over TLS) names a server-side
// session that ends after SessionIdle without a request, SessionMax after
// the login, at logout, or when the password changes.
const (
	SessionCookie = "parkpage_session"
	SessionIdle   = 12 * time.Hour
	SessionMax    = 7 * 24 * time.Hour
	// maxSessions bounds the table; the oldest session goes first.
	maxSessions = 1024
)

// ErrBadLogin is a wrong user name or password.
var ErrBadLogin = errors.New("wrong user name or password")

// ThrottledError is a login refused because its source failed too often.
type ThrottledError struct{ Retry time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins from this address: try again in %d s", int(e.Retry.Round(time.Second)/time.Second)+1)
}

type session struct {
	user    string
	created time.Time
	seen    time.Time
	hash    string // the password hash it logged in with
}

type sessions struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*session
}

func (ss *sessions) create(user, hash string) string {
	b := make([]byte, 32)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*session{}
	}
	now := ss.now()
	if len(ss.m) >= maxSessions {
		var oldest string
		for k, s := range ss.m {
			if oldest == "" || s.created.Before(ss.m[oldest].created) {
				oldest = k
			}
		}
		delete(ss.m, oldest)
	}
	ss.m[id] = &session{user: user, created: now, seen: now, hash: hash}
	return id
}

// lookup returns the live session's user, refreshing its idle time.
func (ss *sessions) lookup(id, hash string) (string, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok {
		return "", false
	}
	now := ss.now()
	if now.Sub(s.seen) > SessionIdle || now.Sub(s.created) > SessionMax || s.hash != hash {
		delete(ss.m, id)
		return "", false
	}
	s.seen = now
	return s.user, true
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

// LoginRequired reports whether the console needs a login: false when no
// password is configured (the server then listens on loopback only).
func (s *Server) LoginRequired() bool {
	return s.creds.Load().PasswordHash != ""
}

// Login checks user and password from r's source, throttled per source
// like every other credential, and on success starts a session and sets
// its cookie on w. It returns ErrBadLogin or a *ThrottledError.
func (s *Server) Login(w http.ResponseWriter, r *http.Request, user, password string) error {
	cfg := s.creds.Load()
	src := remoteAddr(r)
	if ok, retry := s.guard.Allow(src); !ok {
		return &ThrottledError{Retry: retry}
	}
	if cfg.PasswordHash == "" || user != "admin" || bcrypt.CompareHashAndPassword([]byte(cfg.PasswordHash), []byte(password)) != nil {
		s.guard.Fail(src)
		return ErrBadLogin
	}
	s.guard.Succeed(src)
	id := s.sessions.create(user, cfg.PasswordHash)
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(SessionMax / time.Second),
	})
	s.log.Info("console login", "user", user, "source", src)
	return nil
}

// Logout ends r's session and clears its cookie.
func (s *Server) Logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		s.sessions.drop(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: -1})
}

// User is the logged-in user of r ("admin"), or "" for a request that
// came with a script's credential or none.
func (s *Server) User(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	u, _ := s.sessions.lookup(c.Value, s.creds.Load().PasswordHash)
	return u
}

// wantsHTML says whether r is a browser navigating to a page (answered
// with a redirect to the login page rather than a 401).
func wantsHTML(r *http.Request) bool {
	return r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") && strings.Contains(r.Header.Get("Accept"), "text/html")
}
