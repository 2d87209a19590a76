package api

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/events"
)

// loginServer is a server with password "s3cret-pass" and token tok, and
// two console routes: a page and a JSON action.
func loginServer(t *testing.T) (*Server, string) {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	s := New(Config{Listen: "127.0.0.1:0", PasswordHash: string(hash), BearerTokens: []string{"tok-0123456789abcdef"}}, &fakeBackend{}, events.New(), metrics.NewSet(), slog.New(slog.DiscardHandler))
	s.HandlePublic("POST /login", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if err := s.Login(w, r, r.PostFormValue("user"), r.PostFormValue("password")); err != nil {
			code := http.StatusUnauthorized
			if te := (*ThrottledError)(nil); errors.As(err, &te) {
				code = http.StatusTooManyRequests
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	s.Handle("POST /logout", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.Logout(w, r) }))
	s.Handle("GET /desk", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("desk for " + s.User(r))) }))
	s.Handle("POST /api/v1/things/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	}))
	return s, serve(t, s)
}

func login(t *testing.T, base, pw string) *http.Response {
	t.Helper()
	res, err := http.Post(base+"/login", "application/x-www-form-urlencoded", strings.NewReader("user=admin&password="+pw))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func sessionCookie(res *http.Response) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	return nil
}

func doWith(t *testing.T, method, url string, c *http.Cookie, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
	if c != nil {
		req.AddCookie(c)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

// A login sets an HttpOnly, SameSite=Strict session cookie that opens the
// console's routes and the API; logout ends it; a browser without one is
// sent to the login page, a script gets 401 with the basic-auth challenge,
// a browser's script 401 without it (no browser password prompt).
func TestSessionLoginLogout(t *testing.T) {
	s, base := loginServer(t)
	if res := doWith(t, "GET", base+"/desk", nil, "Accept", "text/html"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?next=%2Fdesk" {
		t.Errorf("browser without a session: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res := doWith(t, "GET", base+"/api/v1/status", nil); res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("script without a credential: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	if res := doWith(t, "GET", base+"/api/v1/status", nil, "Sec-Fetch-Site", "same-origin"); res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("browser script without a session: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	if res := login(t, base, "wrong"); res.StatusCode != 401 || sessionCookie(res) != nil {
		t.Errorf("wrong password: %d, cookie %v", res.StatusCode, sessionCookie(res))
	}
	res := login(t, base, "s3cret-pass")
	c := sessionCookie(res)
	if res.StatusCode != http.StatusNoContent || c == nil {
		t.Fatalf("login: %d, cookie %v", res.StatusCode, c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" || len(c.Value) < 40 {
		t.Errorf("cookie %+v", c)
	}
	for _, path := range []string{"/desk", "/api/v1/status", "/api/v1/slots"} {
		if res := doWith(t, "GET", base+path, &http.Cookie{Name: SessionCookie, Value: c.Value}); res.StatusCode != 200 {
			t.Errorf("%s with the session: %d", path, res.StatusCode)
		}
	}
	if res := doWith(t, "GET", base+"/desk", &http.Cookie{Name: SessionCookie, Value: c.Value + "x"}); res.StatusCode != 401 {
		t.Errorf("forged session: %d", res.StatusCode)
	}
	if res := doWith(t, "POST", base+"/logout", &http.Cookie{Name: SessionCookie, Value: c.Value}); res.StatusCode != 200 {
		t.Errorf("logout: %d", res.StatusCode)
	}
	if res := doWith(t, "GET", base+"/desk", &http.Cookie{Name: SessionCookie, Value: c.Value}); res.StatusCode != 401 {
		t.Errorf("after logout: %d", res.StatusCode)
	}
	_ = s
}

// The cookie is Secure over TLS.
func TestSessionCookieSecureOverTLS(t *testing.T) {
	s, _ := loginServer(t)
	r := httptest.NewRequest("POST", "https://parkpage.lan/login", nil)
	w := httptest.NewRecorder()
	if err := s.Login(w, r, "admin", "s3cret-pass"); err != nil {
		t.Fatal(err)
	}
	if c := sessionCookie(w.Result()); c == nil || !c.Secure {
		t.Errorf("cookie over TLS %+v", c)
	}
}

// Sessions end after SessionIdle without use, after SessionMax in any
// case, and when the password changes.
func TestSessionExpiry(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	now := start
	ss := sessions{now: func() time.Time { return now }}
	id := ss.create("admin", "h1")
	if u, ok := ss.lookup(id, "h1"); !ok || u != "admin" {
		t.Fatal("fresh session not found")
	}
	// Used every SessionIdle/2: alive until SessionMax.
	for elapsed := time.Duration(0); elapsed+SessionIdle/2 < SessionMax; elapsed += SessionIdle / 2 {
		now = now.Add(SessionIdle / 2)
		if _, ok := ss.lookup(id, "h1"); !ok {
			t.Fatalf("session in use ended after %v", elapsed+SessionIdle/2)
		}
	}
	now = start.Add(SessionMax + time.Second)
	if _, ok := ss.lookup(id, "h1"); ok {
		t.Error("session alive past SessionMax")
	}
	id = ss.create("admin", "h1")
	now = now.Add(SessionIdle + time.Second)
	if _, ok := ss.lookup(id, "h1"); ok {
		t.Error("idle session alive")
	}
	id = ss.create("admin", "h1")
	if _, ok := ss.lookup(id, "h2"); ok {
		t.Error("session alive after a password change")
	}
}

// Failed logins on the login page are throttled per source like every
// other credential: after authguard's free failures even the right
// password is refused with a retry time.
func TestLoginThrottled(t *testing.T) {
	_, base := loginServer(t)
	var last int
	for i := 0; i < 8; i++ {
		last = login(t, base, "wrong").StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("8th wrong password: %d, want 429", last)
	}
	if res := login(t, base, "s3cret-pass"); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password from a locked-out source: %d", res.StatusCode)
	}
}

// Every state-changing request to the JSON API needs Content-Type:
// application/json, whatever its credential; a console form route does
// not; cross-site requests are refused even with a valid session.
func TestJSONContentTypeAndCrossSite(t *testing.T) {
	_, base := loginServer(t)
	c := sessionCookie(login(t, base, "s3cret-pass"))
	tok := []string{"Authorization", "Bearer tok-0123456789abcdef"}
	for _, tc := range []struct {
		name string
		c    *http.Cookie
		hdr  []string
		want int
	}{
		{"session, no type", c, nil, http.StatusUnsupportedMediaType},
		{"session, text/plain", c, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"session, form", c, []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"session, json", c, []string{"Content-Type", "application/json; charset=utf-8"}, http.StatusOK},
		{"token, no type", nil, tok, http.StatusUnsupportedMediaType},
		{"token, json", nil, append(tok, "Content-Type", "application/json"), http.StatusOK},
		{"session, json, cross-site", c, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"session, json, same-site", c, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"session, json, foreign origin", c, []string{"Content-Type", "application/json", "Origin", "http://evil.example"}, http.StatusForbidden},
		{"session, json, same origin", c, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "same-origin", "Origin", base}, http.StatusOK},
	} {
		if res := doWith(t, "POST", base+"/api/v1/things/7", tc.c, tc.hdr...); res.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, res.StatusCode, tc.want)
		}
	}
	// The login form itself is cross-site protected too.
	res := doWith(t, "POST", base+"/login", nil, "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site")
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site login: %d", res.StatusCode)
	}
	// A form route outside /api/ takes a form.
	if res := doWith(t, "POST", base+"/logout", c, "Content-Type", "application/x-www-form-urlencoded"); res.StatusCode != 200 {
		t.Errorf("logout form: %d", res.StatusCode)
	}
}
