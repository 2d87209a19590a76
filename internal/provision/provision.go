package provision

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/parkpage/parkpage/internal/config"
)

// Phone is what the installer says about one phone.
type Phone struct {
	// MAC is the phone's MAC address, 12 lower-case hex digits (empty for
	// a config generated without a phone, e.g. by the CLI).
	MAC   string `json:"mac,omitempty"`
	Model Model  `json:"model"`
	// User is the park account the phone registers to parkpage with: a
	// sip.users entry.
	User string `json:"user"`
	// Sidecar puts the slot keys on an expansion module (EXP50, EM50).
	Sidecar bool `json:"sidecar,omitempty"`
	// Zones are the zones whose multicast pages the phone plays.
	Zones []string `json:"zones,omitempty"`
	// Name is a note for the installer ("Reception desk").
	Name string `json:"name,omitempty"`
}

// Server is where phones reach parkpage's SIP side.
type Server struct {
	Host      string // address or name
	Port      int
	Transport string // udp, tcp or tls
}

// File is a generated configuration file.
type File struct {
	Name        string // file name as the phone requests it
	ContentType string
	Body        []byte
	// Unconfirmed lists the keys written that provisioning.md marks as
	// inferred (also marked in Body).
	Unconfirmed []string
	// Notes are problems the installer should know (keys that did not fit,
	// zones without a multicast output of the phone's kind).
	Notes []string
}

// Errors.
var (
	ErrNoUser   = errors.New("no such SIP user")
	ErrTooMany  = errors.New("more keys than the phone has")
	ErrNoServer = errors.New("no address for parkpage's SIP side")
)

// SIPServer is parkpage's SIP address for phones: host (sip.domain when
// set, else the given host, e.g. the address a phone reached the HTTP
// server on) and the port and transport of the first UDP listener (else
// TCP, else TLS).
func SIPServer(cfg *config.Config, host string) (Server, error) {
	if d := cfg.SIP.Domain; d != "" {
		host = d
	}
	if host == "" {
		return Server{}, ErrNoServer
	}
	s := Server{Host: host}
	for _, want := range []string{"udp", "tcp"} {
		for _, l := range cfg.SIP.Listen {
			if strings.EqualFold(l.Transport, want) {
				if _, p, err := net.SplitHostPort(l.Address); err == nil {
					s.Port, _ = strconv.Atoi(p)
					s.Transport = want
					return s, nil
				}
			}
		}
	}
	if cfg.SIP.TLS != nil {
		s.Port, s.Transport = 5061, "tls"
		if _, p, err := net.SplitHostPort(cfg.SIP.TLS.Address); err == nil {
			s.Port, _ = strconv.Atoi(p)
		}
		return s, nil
	}
	s.Port, s.Transport = 5060, "udp"
	return s, nil
}

// slotKey is one park slot as a key.
type slotKey struct {
	Slot  string
	Label string // slot label, else the lot's, else ""
}

// pageKey is one page extension as a key.
type pageKey struct {
	Ext   string
	Label string // "Pg Warehouse"
}

// parkKey is one lot's park extension.
type parkKey struct {
	Ext   string
	Label string
}

// layout is what the phone gets, independent of vendor.
type layout struct {
	user     string
	password string
	display  string
	server   Server
	parks    []parkKey
	slots    []slotKey
	pages    []pageKey
	zones    []string
}

func buildLayout(cfg *config.Config, p Phone, srv Server) (*layout, error) {
	u := cfg.SIP.Users[p.User]
	if p.User == "" || u == nil {
		return nil, fmt.Errorf("user %q: %w (sip.users): the phone's park account must be a SIP user of parkpage", p.User, ErrNoUser)
	}
	l := &layout{user: p.User, password: u.Password, display: u.Display, server: srv}
	if l.display == "" {
		l.display = "Park " + p.User
	}
	for _, lot := range cfg.Park.Lots {
		label := "Park"
		if len(cfg.Park.Lots) > 1 {
			label = "Park " + lot.Name
		}
		if lot.Extension != "" {
			l.parks = append(l.parks, parkKey{Ext: lot.Extension, Label: label})
		}
		for n := lot.Slots.First; n <= lot.Slots.Last; n++ {
			s := strconv.Itoa(n)
			k := slotKey{Slot: s, Label: lot.Label}
			if sc := cfg.Park.Slots[s]; sc != nil && sc.Label != "" {
				k.Label = sc.Label
			}
			l.slots = append(l.slots, k)
		}
	}
	exts := make([]string, 0, len(cfg.Pages))
	for e := range cfg.Pages {
		exts = append(exts, e)
	}
	sortNumeric(exts)
	for _, e := range exts {
		l.pages = append(l.pages, pageKey{Ext: e, Label: "Pg " + zonesTitle(cfg, cfg.Pages[e].Zones)})
	}
	for _, z := range p.Zones {
		if cfg.Zones[z] == nil {
			return nil, fmt.Errorf("zone %q: no such zone", z)
		}
		if !slices.Contains(l.zones, z) {
			l.zones = append(l.zones, z)
		}
	}
	return l, nil
}

// sortNumeric sorts extensions as numbers where they are numbers.
func sortNumeric(s []string) {
	sort.Slice(s, func(i, j int) bool {
		a, ea := strconv.Atoi(s[i])
		b, eb := strconv.Atoi(s[j])
		if ea == nil && eb == nil && a != b {
			return a < b
		}
		return s[i] < s[j]
	})
}

// zonesTitle names zones for a key label: "Warehouse", "Showroom+Manager".
func zonesTitle(cfg *config.Config, zones []string) string {
	var parts []string
	for _, z := range zones {
		parts = append(parts, Title(z))
	}
	return strings.Join(parts, "+")
}

// Title capitalises a zone name for a label: "warehouse" -> "Warehouse",
// "front_desk" -> "Front Desk".
func Title(s string) string {
	words := strings.FieldsFunc(s, func(r rune) bool { return r == '_' || r == '-' || r == ' ' })
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

// Generate writes the configuration of phone p: for a Yealink its
// <MAC>.cfg, for a Poly the parameter file its master config lists.
func Generate(cfg *config.Config, p Phone, srv Server) (*File, error) {
	mi, err := Lookup(string(p.Model))
	if err != nil {
		return nil, err
	}
	l, err := buildLayout(cfg, p, srv)
	if err != nil {
		return nil, err
	}
	switch mi.Vendor {
	case VendorYealink:
		return yealink(cfg, mi, p, l)
	default:
		return poly(cfg, mi, p, l)
	}
}

// fileName is the file a phone with this MAC requests ("" MAC: a
// placeholder).
func fileName(mac, suffix string) string {
	if mac == "" {
		mac = "<MAC>"
	}
	return mac + suffix
}
