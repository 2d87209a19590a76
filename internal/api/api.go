// Package api is parkpage's admin HTTP server: the JSON API under /api/v1,
// a Server-Sent Events stream of the event bus, Prometheus metrics, a
// health check and the admin page. It reaches the rest of the appliance
// only through the Backend interface, so it is tested with a fake.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/authguard"
	"github.com/parkpage/parkpage/internal/events"
)

// Backend is what the API needs from the appliance.
type Backend interface {
	Status() Status
	Slots() []Slot
	Zones() []Zone
	// Announce renders and submits a page; it returns the page ID once the
	// page is queued (or, with Wait, once it has played).
	Announce(ctx context.Context, req AnnounceRequest) (string, error)
	// Reload re-reads the config file; an invalid one is refused and the
	// running config kept.
	Reload() error
	// ParkEvent takes a park event from an outside system (webhook).
	ParkEvent(ctx context.Context, ev ParkEventRequest) error
}

// Status is GET /api/v1/status.
type Status struct {
	Version      string    `json:"version"`
	Started      time.Time `json:"started"`
	Uptime       float64   `json:"uptime_seconds"`
	ConfigSource string    `json:"config_source"`
	ConfigLoaded time.Time `json:"config_loaded"`
	// Warnings is always present, [] when there are none.
	Warnings []string `json:"config_warnings"`
	// Draining: new parks are refused until the drain is cancelled or
	// parkpage restarts; Drain says how many calls are left.
	Draining bool         `json:"draining"`
	Drain    *DrainStatus `json:"drain,omitempty"`
}

// Slot is one park slot on the board (GET /api/v1/slots).
type Slot struct {
	Slot   string     `json:"slot"`
	Lot    string     `json:"lot"`
	Label  string     `json:"label,omitempty"`
	State  string     `json:"state"` // free, parked, ringback
	Caller string     `json:"caller,omitempty"`
	Parker string     `json:"parker,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
	// Timeout is the slot's park timeout in seconds (ring-back after it).
	Timeout float64 `json:"timeout_seconds,omitempty"`
	// Returned: the call came back after a ring-back nobody answered.
	Returned bool `json:"returned,omitempty"`
	// RingTarget is who rings for the call (state ringback).
	RingTarget string `json:"ring_target,omitempty"`
	// ParkedAt is when the caller was first parked (Since restarts when
	// the call returns to its slot).
	ParkedAt *time.Time `json:"parked_at,omitempty"`
}

// Zone is a paging zone (GET /api/v1/zones).
type Zone struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Outputs     []Output `json:"outputs"`
	Relays      []string `json:"relays,omitempty"`
	Paging      string   `json:"paging,omitempty"` // page ID playing now
	Priority    string   `json:"priority,omitempty"`
}

// Output describes one output of a zone.
type Output struct {
	Type    string `json:"type"`
	Address string `json:"address"`
	Codec   string `json:"codec,omitempty"`
	Channel int    `json:"channel,omitempty"`
}

// AnnounceRequest is the body of POST /api/v1/announcements: either Text
// or Slot (that slot's configured announcement) to the named zones.
type AnnounceRequest struct {
	Zones    []string `json:"zones"`
	Text     string   `json:"text,omitempty"`
	Slot     string   `json:"slot,omitempty"`
	Priority string   `json:"priority,omitempty"` // test (default), park, live, emergency
	Voice    string   `json:"voice,omitempty"`
	Chime    *string  `json:"chime,omitempty"` // override; "none" for no chime
	Wait     bool     `json:"wait,omitempty"`  // answer after the page has played
}

// ParkEventRequest is the body of POST /api/v1/park-events (webhook).
type ParkEventRequest struct {
	Event  string `json:"event"` // parked, retrieved, timed_out, abandoned
	Slot   string `json:"slot"`
	Caller string `json:"caller,omitempty"`
	Parker string `json:"parker,omitempty"`
}

// FieldError is a bad request naming the offending body field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Config is what the server needs from config.HTTP.
type Config struct {
	Listen       string
	PasswordHash string
	BearerTokens []string
	// WebhookTokens are accepted on POST /api/v1/park-events in addition to
	// the admin credentials.
	WebhookTokens []string
	// Trusted sources (sip.trusted: the LAN) are locked out for at most
	// authguard.DefaultLimits.MaxTrusted after failed logins.
	Trusted []netip.Prefix
}

// Server is the admin HTTP server.
type Server struct {
	cfg     Config                 // as started: the listen address
	creds   atomic.Pointer[Config] // credentials in force (SetCredentials)
	backend Backend
	bus     *events.Bus
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics.Set
	guard   *authguard.Guard // failed-login throttling per source
	// cross refuses cross-site browser requests on unsafe methods (a
	// browser resends basic-auth credentials to any page's form).
	cross    *http.CrossOriginProtection
	patterns []string
	sessions sessions
	// ui and public hold the console's routes (Handle, HandlePublic); ui
	// is consulted before the API's own routes, public before any
	// authentication.
	ui, public *http.ServeMux
}

// New returns a server; call Listen then Serve.
func New(cfg Config, backend Backend, bus *events.Bus, ms *metrics.Set, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, backend: backend, bus: bus, log: log, mux: http.NewServeMux(), metrics: ms, ui: http.NewServeMux(), public: http.NewServeMux()}
	s.sessions.now = time.Now
	s.creds.Store(&cfg)
	s.cross = http.NewCrossOriginProtection()
	s.guard = authguard.New("api", authguard.DefaultLimits, authguard.Options{Trusted: s.trusted, Metrics: ms, Logger: log})
	s.routes()
	return s
}

// ErrNeedsRestart is returned by SetCredentials when the new config would
// move the admin API to another address.
var ErrNeedsRestart = errors.New("needs a restart")

// CheckCredentials says whether SetCredentials would accept cfg.
func (s *Server) CheckCredentials(cfg Config) error {
	if got, want := cfg.ListenAddr(), s.cfg.ListenAddr(); got != want {
		return fmt.Errorf("http.listen: the admin API would move from %s to %s, which %w of parkpage; the running config is kept", want, got, ErrNeedsRestart)
	}
	return nil
}

// SetCredentials applies new credentials (password hash, bearer and
// webhook tokens) at once, for the next request. A config that would
// change the address the server listens on (http.listen, or adding or
// removing the only credential, which moves the API between loopback and
// http.listen) is refused with ErrNeedsRestart: the running credentials
// stay in force. It reports whether any credential changed.
func (s *Server) SetCredentials(cfg Config) (changed bool, err error) {
	if err := s.CheckCredentials(cfg); err != nil {
		return false, err
	}
	old := s.creds.Load()
	changed = old.PasswordHash != cfg.PasswordHash || !slices.Equal(old.BearerTokens, cfg.BearerTokens) || !slices.Equal(old.WebhookTokens, cfg.WebhookTokens)
	c := cfg
	c.Listen = s.cfg.Listen
	s.creds.Store(&c)
	return changed, nil
}

// ListenAddr is where the server listens: the configured address with a
// credential, else 127.0.0.1 on the configured port.
func (c Config) ListenAddr() string {
	if c.PasswordHash != "" || len(c.BearerTokens) > 0 {
		return c.Listen
	}
	_, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		port = "8080"
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// Listen opens the listening socket, with a start-up error that says what
// to do.
func (s *Server) Listen() (net.Listener, error) {
	addr := s.cfg.ListenAddr()
	if s.cfg.PasswordHash == "" && len(s.cfg.BearerTokens) == 0 {
		s.log.Warn("no admin credential configured: the admin API listens on loopback only; set http.password_hash (from `parkpage hash-password`) or http.bearer_tokens to serve http.listen",
			"listen", addr, "configured", s.cfg.Listen)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, errAddrInUse) || strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("http: %s is already in use: stop the other program or set http.listen to another port", addr)
		}
		return nil, fmt.Errorf("http: listen %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves HTTP on ln until ctx is cancelled, then shuts down,
// ending event streams.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// ServeHTTP applies authentication and the cross-site checks, then
// routes: public console routes (the login page, its assets), then the
// console's, then the API's.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// (ServeHTTP, not the handler Handler found: that sets path values.)
	if _, pat := s.public.Handler(r); pat != "" {
		if err := s.cross.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "", "cross-site request refused: "+err.Error())
			return
		}
		s.public.ServeHTTP(w, r)
		return
	}
	if r.URL.Path != "/healthz" && !s.authenticate(w, r) {
		return
	}
	if err := s.cross.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "", "cross-site request refused: "+err.Error())
		return
	}
	if err := checkJSONType(r); err != nil {
		writeError(w, http.StatusUnsupportedMediaType, "", err.Error())
		return
	}
	if _, pat := s.ui.Handler(r); pat != "" {
		s.ui.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// checkJSONType refuses a state-changing request to the JSON API (every
// method but GET, HEAD and OPTIONS under /api/) that does not say
// Content-Type: application/json. A browser cannot send that type
// cross-site without a CORS preflight, which parkpage never grants: a
// second line of defence behind the Origin checks. Requests without a
// body must say it too.
func checkJSONType(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && r.Method == http.MethodPut && (isAudio(mt) && strings.HasPrefix(r.URL.Path, "/api/v1/labels/") ||
		mt == "application/octet-stream" && strings.HasPrefix(r.URL.Path, "/api/v1/update/")) {
		// A recording's body is audio, an update's a disk image: those
		// types need a CORS preflight too, so the defence holds.
		return nil
	}
	if err != nil || mt != "application/json" {
		if ct == "" {
			ct = "none"
		}
		return fmt.Errorf("Content-Type must be application/json (got %s)", ct)
	}
	return nil
}

func isAudio(mt string) bool {
	switch mt {
	case "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave":
		return true
	}
	return false
}

// Handle registers an authenticated route of the console (pattern as for
// http.ServeMux). It is served before the API's own routes, and like them
// behind the login, the cross-site checks and, under /api/, the JSON
// Content-Type check.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.patterns = append(s.patterns, pattern)
	s.ui.Handle(pattern, h)
}

// HandlePublic registers a route served without a login (the login page
// and the console's static assets). Unsafe methods still pass the
// cross-site check.
func (s *Server) HandlePublic(pattern string, h http.Handler) {
	s.public.Handle(pattern, h)
}

// trusted reports whether a source is in the trusted networks in force.
func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.creds.Load().Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// authenticate checks r's credential; when it fails it answers 401, or 429
// for a source locked out after failed logins (authguard), and returns
// false. A request with no credential at all is not a failed login.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	cfg := s.creds.Load()
	if cfg.PasswordHash == "" && len(cfg.BearerTokens) == 0 {
		return true // loopback only, see ListenAddr
	}
	if cfg.PasswordHash != "" && s.User(r) != "" {
		return true // a console session
	}
	deny := func() bool {
		if wantsHTML(r) && cfg.PasswordHash != "" {
			// A browser navigating to a page goes to the login page.
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return false
		}
		if cfg.PasswordHash != "" && r.Header.Get("Sec-Fetch-Site") == "" {
			// Not to a browser's script (the console's fetches after
			// its session ended): the browser would show its own
			// password prompt instead of the console's login page.
			w.Header().Set("WWW-Authenticate", `Basic realm="parkpage"`)
		}
		writeError(w, http.StatusUnauthorized, "", "authentication required")
		return false
	}
	if r.Header.Get("Authorization") == "" {
		return deny()
	}
	src := remoteAddr(r)
	if ok, retry := s.guard.Allow(src); !ok {
		secs := int(math.Ceil(retry.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "", fmt.Sprintf("too many failed logins from %s: retry in %d s", src, secs))
		return false
	}
	if !s.authorized(r, cfg) {
		s.guard.Fail(src)
		return deny()
	}
	s.guard.Succeed(src)
	return true
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (s *Server) authorized(r *http.Request, cfg *Config) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		tokens := cfg.BearerTokens
		if r.URL.Path == "/api/v1/park-events" {
			tokens = append(append([]string(nil), tokens...), cfg.WebhookTokens...)
		}
		for _, t := range tokens {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
				return true
			}
		}
		return false
	}
	if user, pass, ok := r.BasicAuth(); ok && cfg.PasswordHash != "" && user == "admin" {
		return bcrypt.CompareHashAndPassword([]byte(cfg.PasswordHash), []byte(pass)) == nil
	}
	return false
}

// handle registers a route and remembers its pattern (Patterns).
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, h)
}

// Patterns lists the routes as "METHOD /path".
func (s *Server) Patterns() []string { return slices.Clone(s.patterns) }

func (s *Server) routes() {
	s.handle("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	s.handle("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		writeMetrics(w, s.metrics)
	})
	s.handle("GET /{$}", s.page) // the console's front desk when mounted
	s.handle("GET /classic", s.page)
	s.handle("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := s.backend.Status()
		if st.Warnings == nil {
			st.Warnings = []string{} // an empty list, not a missing field
		}
		writeJSON(w, http.StatusOK, st)
	})
	s.handle("GET /api/v1/slots", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"slots": s.backend.Slots()})
	})
	s.handle("GET /api/v1/zones", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"zones": s.backend.Zones()})
	})
	s.handle("POST /api/v1/announcements", s.announce)
	s.handle("POST /api/v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.backend.Reload(); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
	})
	s.handle("POST /api/v1/park-events", s.parkEvent)
	s.handle("GET /api/v1/events", s.events)
	s.labelRoutes()
	s.setupRoutes() // setup.go
	s.drainRoutes()
}

func (s *Server) announce(w http.ResponseWriter, r *http.Request) {
	var req AnnounceRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		writeBodyError(w, err)
		return
	}
	id, err := s.backend.Announce(r.Context(), req)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	code := http.StatusAccepted
	if req.Wait {
		code = http.StatusOK
	}
	writeJSON(w, code, map[string]string{"page": id})
}

// Validate checks what can be checked without the backend.
func (a *AnnounceRequest) Validate() error {
	if a.Text == "" && a.Slot == "" {
		return &FieldError{"text", "give text or slot"}
	}
	if a.Text != "" && a.Slot != "" {
		return &FieldError{"slot", "give text or slot, not both"}
	}
	if len(a.Text) > 500 {
		return &FieldError{"text", "longer than 500 characters"}
	}
	if a.Slot == "" && len(a.Zones) == 0 {
		return &FieldError{"zones", "name at least one zone"}
	}
	for _, z := range a.Zones {
		if z == "" {
			return &FieldError{"zones", "empty zone name"}
		}
	}
	switch a.Priority {
	case "", "test", "park", "live", "emergency":
	default:
		return &FieldError{"priority", fmt.Sprintf("%q is not test, park, live or emergency", a.Priority)}
	}
	return nil
}

func (s *Server) parkEvent(w http.ResponseWriter, r *http.Request) {
	var req ParkEventRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	switch req.Event {
	case "parked", "retrieved", "timed_out", "abandoned":
	default:
		writeBodyError(w, &FieldError{"event", fmt.Sprintf("%q is not parked, retrieved, timed_out or abandoned", req.Event)})
		return
	}
	if req.Slot == "" {
		writeBodyError(w, &FieldError{"slot", "missing"})
		return
	}
	if err := s.backend.ParkEvent(r.Context(), req); err != nil {
		writeBodyError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
}

// events streams the bus as Server-Sent Events until the client goes away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "", "streaming unsupported")
		return
	}
	sub := s.bus.Subscribe(256)
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": parkpage events\n\n")
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			io.WriteString(w, ": keep-alive\n\n")
			fl.Flush()
		case e, ok := <-sub.C():
			if !ok {
				return
			}
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b)
			fl.Flush()
		}
	}
}

// maxBody bounds request bodies.
const maxBody = 64 << 10

// decodeBody decodes a JSON body strictly. A body over maxBody is a
// *TooLargeError (413), found before the JSON is parsed when the request
// says its length.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &FieldError{"", "Content-Type must be application/json"}
	}
	if r.ContentLength > maxBody {
		return &TooLargeError{Limit: maxBody}
	}
	err := DecodeJSON(http.MaxBytesReader(w, r.Body, maxBody), v)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return &TooLargeError{Limit: mbe.Limit}
	}
	return err
}

// TooLargeError is a request body over the limit.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("request body larger than the limit of %d bytes", e.Limit)
}

// DecodeJSON decodes one JSON object strictly: unknown fields and wrong
// types are FieldErrors naming the field.
func DecodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return &FieldError{te.Field, fmt.Sprintf("expected %s, got %s", te.Type, te.Value)}
		case errors.As(err, &se):
			return &FieldError{"", fmt.Sprintf("invalid JSON at offset %d: %v", se.Offset, se)}
		case errors.Is(err, io.EOF):
			return &FieldError{"", "empty body: expected a JSON object"}
		case errors.As(err, new(*http.MaxBytesError)):
			return err
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &FieldError{f, "unknown field"}
		}
		return &FieldError{"", err.Error()}
	}
	if dec.More() {
		return &FieldError{"", "trailing data after the JSON object"}
	}
	return nil
}

func writeBodyError(w http.ResponseWriter, err error) {
	var tl *TooLargeError
	if errors.As(err, &tl) {
		// The rest of the body is not read: the connection is closed after
		// the answer.
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": tl.Error(), "limit_bytes": tl.Limit})
		return
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		writeError(w, http.StatusBadRequest, fe.Field, fe.Msg)
		return
	}
	var nf interface{ NotFound() bool }
	if errors.As(err, &nf) && nf.NotFound() {
		writeError(w, http.StatusNotFound, "", err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, "", err.Error())
}

func writeError(w http.ResponseWriter, code int, field, msg string) {
	body := map[string]string{"error": msg}
	if field != "" {
		body["field"] = field
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
