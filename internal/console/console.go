// Package console is parkpage's web console for installers and the front
// desk: server-rendered pages (html/template) in one layout, with their CSS
// and small vanilla-JS files embedded in the binary (no CDN: it works on a
// LAN without internet).
//
// Why server-rendered templates and vanilla JS, not htmx or a JS app: the
// pages are forms and tables the server already knows how to fill in, so
// they render complete on the first response (a screenshot, a slow tablet
// or a browser without JS still gets the page). The one live page, the
// front desk, needs client code anyway (SSE, wait times counting up every
// second), which is a few dozen lines of plain JS; htmx's swaps would not
// remove them and would add a vendored dependency to keep patched. No build
// step, nothing to download.
//
// # Adding a page
//
// A page lives in files of its own: a Go file in this package registering
// it from init, a template under templates/ and, if it needs one, a script
// under static/ (both embedded by the patterns below, no list to edit):
//
//	func init() {
//		console.RegisterPage(console.Page{
//			Path: "/status", Nav: console.NavStatus, Title: "Status",
//			Template: "status.html", Scripts: []string{"status.js"},
//			Data: func(r *http.Request, env *console.Env) (any, error) {
//				return env.Backend.Status(), nil
//			},
//		})
//		console.RegisterRoute("POST /api/v1/things", func(env *console.Env) http.Handler { ... })
//	}
//
// The template defines "content" (the page's main area; it sees the
// View, with the page's data as .Data) and may define "head" (extra tags
// in <head>). Routes registered with RegisterRoute are served behind the
// login and the cross-site checks (see api.Server.Handle); JSON routes use
// WriteJSON and DecodeJSON. Forms post to their own page's path and need
// no token: the session cookie is SameSite=Strict and every unsafe request
// passes Go's CrossOriginProtection (Origin / Sec-Fetch-Site).
//
// Dependencies beyond the Backend (a history store, the config writer)
// are given to the console with Env.Provide by the code that wires the
// appliance, and read by the page with Env.Value.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/events"
)

//go:embed templates static
var files embed.FS

// Nav entries, in the order the navigation bar shows them.
const (
	NavFrontDesk = "Front desk"
	NavSetup     = "Setup"
	NavTest      = "Test outputs"
	NavStatus    = "Status"
	NavPhones    = "Phones"
	NavReport    = "Report"
)

var navOrder = []string{NavFrontDesk, NavSetup, NavTest, NavStatus, NavPhones, NavReport}

// Page is one page of the console, served on GET Path.
type Page struct {
	// Path is the page's path ("/status"); "/" is the front desk.
	Path string
	// Nav is the navigation entry the page is (one of the Nav constants)
	// or belongs to; "" for a page outside the navigation. The first page
	// registered for an entry is the one the entry links to.
	Nav string
	// Title is the page's title (window title and heading).
	Title string
	// Template is the page's file under templates/.
	Template string
	// Scripts are files under static/ loaded at the end of the page.
	Scripts []string
	// Data returns what the template sees as .Data; nil means no data. An
	// error is shown as a 500 page.
	Data func(r *http.Request, env *Env) (any, error)
	// Public pages are served without a login (the login page).
	Public bool
	// Bare pages have no navigation bar (login, first-run setup).
	Bare bool
}

// Redirect returned by a page's Data sends the browser to that path
// instead of rendering the page.
type Redirect string

// Route is a handler registered with RegisterRoute.
type Route struct {
	Pattern string
	Handler func(env *Env) http.Handler
	Public  bool
}

var registry struct {
	mu     sync.Mutex
	pages  []Page
	routes []Route
}

// RegisterPage adds a page to every console built afterwards; call it
// from init.
func RegisterPage(p Page) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	registry.pages = append(registry.pages, p)
}

// RegisterRoute adds an authenticated route (a JSON API or a form's POST)
// to every console built afterwards; call it from init. pattern is an
// http.ServeMux pattern with its method ("POST /api/v1/slots/{slot}/move").
func RegisterRoute(pattern string, h func(env *Env) http.Handler) {
	registerRoute(Route{Pattern: pattern, Handler: h})
}

func registerRoute(r Route) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	registry.routes = append(registry.routes, r)
}

// Auth is the login the console uses (api.Server implements it).
type Auth interface {
	// LoginRequired is false when no password is set (loopback only).
	LoginRequired() bool
	// Login checks the credential (throttled per source) and sets the
	// session cookie; api.ErrBadLogin or *api.ThrottledError.
	Login(w http.ResponseWriter, r *http.Request, user, password string) error
	Logout(w http.ResponseWriter, r *http.Request)
	// User is the logged-in user of r, "" without a session.
	User(r *http.Request) string
}

// NoticesKey is an Env value, a func() []string: problems every page
// shows at its top (the appliance's refused boot-partition files).
const NoticesKey = "app.Notices"

// Mux is where the console's routes go (api.Server).
type Mux interface {
	Handle(pattern string, h http.Handler)
	HandlePublic(pattern string, h http.Handler)
}

// Env is what pages and routes reach the appliance through.
type Env struct {
	Backend api.Backend
	Bus     *events.Bus
	Auth    Auth
	Log     *slog.Logger
	// Console is set by New: routes render pages with it.
	Console *Console

	values sync.Map
}

// Provide makes v available to pages as Value(key). Keys are strings
// named after their package ("history.Store").
func (e *Env) Provide(key string, v any) { e.values.Store(key, v) }

// Value is what Provide gave for key, or nil.
func (e *Env) Value(key string) any {
	v, _ := e.values.Load(key)
	return v
}

// Console serves the registered pages.
type Console struct {
	env   *Env
	pages []*page
	nav   []navLink
	// assetVersion changes with the embedded assets, for cache busting.
	assetVersion string
}

type page struct {
	Page
	tmpl *template.Template
}

type navLink struct{ Title, Path string }

// View is what every page's template sees.
type View struct {
	Title   string
	Nav     []NavItem
	User    string // "" when no login is configured
	Version string
	Asset   string // query string for asset URLs (cache busting)
	Scripts []string
	Page    string // the template's name without .html (a CSS hook)
	Bare    bool   // no navigation bar
	Notices []string
	Data    any
}

// NavItem is one entry of the navigation bar.
type NavItem struct {
	Title, Path string
	Active      bool
}

// New builds a console of every registered page. It fails when a template
// does not parse.
func New(env *Env) (*Console, error) {
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{env: env, assetVersion: assetVersion()}
	env.Console = c
	registry.mu.Lock()
	pages := slices.Clone(registry.pages)
	registry.mu.Unlock()
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: layout: %w", err)
	}
	seen := map[string]bool{}
	partials, _ := fs.Glob(files, "templates/partials/*.html")
	for _, p := range pages {
		t, err := template.Must(base.Clone()).ParseFS(files, "templates/"+p.Template)
		if err == nil && len(partials) > 0 {
			t, err = t.ParseFS(files, partials...)
		}
		if err != nil {
			return nil, fmt.Errorf("console: page %s: %w", p.Path, err)
		}
		t.Funcs(template.FuncMap{"panel": func(name string, data any) (template.HTML, error) {
			var b bytes.Buffer
			if t.Lookup("panel-"+name) == nil {
				return "", fmt.Errorf("no template panel-%s (templates/partials/%s.html)", name, name)
			}
			err := t.ExecuteTemplate(&b, "panel-"+name, data)
			return template.HTML(b.String()), err
		}})
		c.pages = append(c.pages, &page{Page: p, tmpl: t})
		if seen[p.Path] {
			return nil, fmt.Errorf("console: two pages on %s", p.Path)
		}
		seen[p.Path] = true
	}
	for _, n := range navOrder {
		for _, p := range c.pages {
			if p.Nav == n {
				c.nav = append(c.nav, navLink{n, p.Path})
				break
			}
		}
	}
	return c, nil
}

// Mount registers the console's pages, routes and assets on m.
func (c *Console) Mount(m Mux) {
	m.HandlePublic("GET /static/", http.StripPrefix("/static/", Static()))
	for _, p := range c.pages {
		pat := "GET " + p.Path
		if p.Path == "/" {
			pat = "GET /{$}"
		}
		if p.Public {
			m.HandlePublic(pat, c.pageHandler(p))
		} else {
			m.Handle(pat, c.pageHandler(p))
		}
	}
	registry.mu.Lock()
	routes := slices.Clone(registry.routes)
	registry.mu.Unlock()
	for _, r := range routes {
		if r.Public {
			m.HandlePublic(r.Pattern, r.Handler(c.env))
		} else {
			m.Handle(r.Pattern, r.Handler(c.env))
		}
	}
}

func (c *Console) pageHandler(p *page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var data any
		if p.Data != nil {
			d, err := p.Data(r, c.env)
			if err != nil {
				c.env.Log.Error("console page", "path", p.Path, "err", err)
				http.Error(w, "This page could not be built: "+err.Error(), http.StatusInternalServerError)
				return
			}
			if to, ok := d.(Redirect); ok {
				http.Redirect(w, r, string(to), http.StatusSeeOther)
				return
			}
			data = d
		}
		c.Render(w, r, http.StatusOK, p, data)
	})
}

// Render writes page p with data (a page's Data result, or a form's
// state after a refused POST) and status.
func (c *Console) Render(w http.ResponseWriter, r *http.Request, status int, p *page, data any) {
	v := c.view(r, p.Title, p.Nav, p.Template, p.Scripts, data)
	v.Bare = p.Bare
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	if err := p.tmpl.ExecuteTemplate(w, "layout.html", v); err != nil {
		c.env.Log.Error("console template", "page", p.Path, "err", err)
	}
}

// RenderPage renders the registered page at path (for a form handler
// answering a POST with the page and its errors).
func (c *Console) RenderPage(w http.ResponseWriter, r *http.Request, status int, path string, data any) {
	for _, p := range c.pages {
		if p.Path == path {
			c.Render(w, r, status, p, data)
			return
		}
	}
	http.NotFound(w, r)
}

func (c *Console) view(r *http.Request, title, nav, tmpl string, scripts []string, data any) View {
	v := View{Title: title, Asset: c.assetVersion, Scripts: scripts, Page: trimExt(tmpl), Data: data}
	if c.env.Backend != nil {
		v.Version = c.env.Backend.Status().Version
	}
	if c.env.Auth != nil && r != nil {
		v.User = c.env.Auth.User(r)
	}
	if f, ok := c.env.Value(NoticesKey).(func() []string); ok {
		v.Notices = f()
	}
	for _, n := range c.nav {
		v.Nav = append(v.Nav, NavItem{Title: n.Title, Path: n.Path, Active: n.Title == nav})
	}
	return v
}

func trimExt(name string) string { return name[:len(name)-len(path.Ext(name))] }

// Static serves the embedded assets (mounted at /static/).
func Static() http.Handler {
	sub, _ := fs.Sub(files, "static")
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Asset URLs carry ?v=<content hash>: cache them for long.
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		fsrv.ServeHTTP(w, r)
	})
}

func assetVersion() string {
	h := sha256.New()
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := files.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

var funcs = template.FuncMap{
	// panel renders a front-desk panel's template (rebound per page).
	"panel": func(string, any) (template.HTML, error) { return "", nil },
	// ago is a wait time as the board shows it: "1:05", "12:40", "1:02:03".
	"wait": func(since time.Time) string { return FormatWait(time.Since(since)) },
	"unix": func(t time.Time) int64 { return t.UnixMilli() },
	// stateText is a slot state as the front desk says it.
	"stateText": StateText,
	"lampOf":    lampOf,
}

// StateText is a slot state in words.
func StateText(state string) string {
	switch state {
	case "parked":
		return "Parked"
	case "ringback":
		return "Ringing back"
	case "returned":
		return "Returned"
	}
	return "Free"
}

// FormatWait is a duration as m:ss or h:mm:ss.
func FormatWait(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// WriteJSON writes v as a JSON answer with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError writes {"error": msg, "field": field} (field omitted when "").
func WriteError(w http.ResponseWriter, code int, field, msg string) {
	body := map[string]string{"error": msg}
	if field != "" {
		body["field"] = field
	}
	WriteJSON(w, code, body)
}

// DecodeJSON decodes r's JSON body strictly (unknown fields refused, 64 KiB
// at most) into v; errors are *api.FieldError naming the field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return api.DecodeJSON(http.MaxBytesReader(w, r.Body, 64<<10), v)
}

var standalone sync.Map // template name -> *template.Template

// RenderStandalone renders a bare page (the layout without navigation)
// from templates/<tmpl> outside a Console: the appliance's first-run
// setup, served before there is a credential or a running appliance. Its
// assets are under /static/: serve Static there.
func RenderStandalone(w http.ResponseWriter, status int, title, tmpl string, data any) error {
	t, ok := standalone.Load(tmpl)
	if !ok {
		parsed, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+tmpl)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return fmt.Errorf("console: %s: %w", tmpl, err)
		}
		t, _ = standalone.LoadOrStore(tmpl, parsed)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	return t.(*template.Template).ExecuteTemplate(w, "layout.html", View{Title: title, Asset: assetVersion(), Page: trimExt(tmpl), Bare: true, Data: data})
}
