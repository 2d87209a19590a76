package provision

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parkpage/parkpage/internal/authguard"
	"github.com/parkpage/parkpage/internal/config"
)

// HTTPUser is the user name phones give with the provisioning password.
const HTTPUser = "provision"

// Handler serves phones' files at /provision/yealink/<file> and
// /provision/poly/<file>: only to phones in the registry, and only with
// HTTP basic auth as user "provision" and the registry's password. Failed
// logins are throttled per source.
type Handler struct {
	Config   func() *config.Config
	Registry *Registry
	Guard    *authguard.Guard
	Logger   *slog.Logger

	mu      sync.Mutex
	fetched map[string]Fetch
}

// Fetch is a phone's last request for its file.
type Fetch struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
	File   string    `json:"file"`
}

// LastFetch returns when the phone with mac last fetched its file.
func (h *Handler) LastFetch(mac string) (Fetch, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.fetched[mac]
	return f, ok
}

func (h *Handler) log() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

// ServeHTTP answers GET (and HEAD) /provision/<vendor>/<file>.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/provision/")
	vendor, file, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || strings.Contains(file, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Poly phones PUT logs and overrides: parkpage keeps none.
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "parkpage stores no files from phones", http.StatusMethodNotAllowed)
		return
	}
	if !h.authenticate(w, r) {
		return
	}
	mac, kind := ParseRequest(vendor, file)
	if kind == KindCommon {
		// The Yealink common file: parkpage sets nothing model-wide.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "#!version:1.0.0.1\n## parkpage: nothing model-wide; each phone's settings are in its <MAC>.cfg\n")
		return
	}
	if kind == KindNone {
		http.NotFound(w, r)
		return
	}
	p, ok := h.Registry.Phone(mac)
	mi, err := Lookup(string(p.Model))
	if !ok || err != nil || mi.Vendor != vendor {
		h.log().Info("provision: unknown phone", "mac", mac, "vendor", vendor, "file", file, "source", r.RemoteAddr)
		http.NotFound(w, r)
		return
	}
	var f *File
	if kind == KindPolyMaster {
		f = PolyMaster(mac)
	} else {
		srv, err := SIPServer(h.Config(), localHost(r))
		if err == nil {
			f, err = Generate(h.Config(), p, srv)
		}
		if err != nil {
			h.log().Warn("provision: cannot generate", "mac", mac, "error", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	h.mu.Lock()
	if h.fetched == nil {
		h.fetched = map[string]Fetch{}
	}
	h.fetched[mac] = Fetch{Time: time.Now(), Source: r.RemoteAddr, File: file}
	h.mu.Unlock()
	h.log().Info("provision: served", "mac", mac, "file", file, "source", r.RemoteAddr)
	w.Header().Set("Content-Type", f.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(f.Body)))
	w.Write(f.Body)
}

// localHost is the address the phone reached the server on.
func localHost(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap().String()
		}
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		return r.Host
	}
	return host
}

func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) bool {
	deny := func() bool {
		w.Header().Set("WWW-Authenticate", `Basic realm="parkpage provisioning"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return false
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return deny()
	}
	src := remoteAddr(r)
	if h.Guard != nil {
		if ok, retry := h.Guard.Allow(src); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			http.Error(w, "too many failed logins", http.StatusTooManyRequests)
			return false
		}
	}
	good := subtle.ConstantTimeCompare([]byte(user), []byte(HTTPUser)) == 1
	good = subtle.ConstantTimeCompare([]byte(pass), []byte(h.Registry.Password())) == 1 && good
	if !good {
		if h.Guard != nil {
			h.Guard.Fail(src)
		}
		h.log().Warn("provision: wrong password", "source", r.RemoteAddr, "path", r.URL.Path)
		return deny()
	}
	if h.Guard != nil {
		h.Guard.Succeed(src)
	}
	return true
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
