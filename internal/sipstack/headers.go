package sipstack

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Identity is a SIP name-addr: a display name and a URI.
type Identity struct {
	Display string // unquoted display name, may be empty
	URI     string // "sip:1001@pbx.lan"
	User    string // user part of the URI, empty if none
	Host    string // host part of the URI
}

// String writes the identity as a name-addr.
func (id Identity) String() string {
	if id.Display == "" {
		return "<" + id.URI + ">"
	}
	return quoteDisplay(id.Display) + " <" + id.URI + ">"
}

// quoteDisplay quotes a display name for a SIP header (RFC 3261 quoted-string).
func quoteDisplay(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			// control characters cannot be carried; drop them
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// maxHeaderLen bounds header values parkpage parses.
const maxHeaderLen = 2048

// ParseIdentity reads a name-addr or addr-spec header value such as
// `"ACME" <sip:+1555@pbx.lan>;tag=x` (Referred-By, P-Asserted-Identity,
// X-Parker, From). Header parameters are ignored.
func ParseIdentity(v string) (Identity, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return Identity{}, errors.New("empty identity")
	}
	if len(v) > maxHeaderLen {
		return Identity{}, errors.New("identity header too long")
	}
	// A header may carry several comma-separated values
	// (P-Asserted-Identity: sip + tel); take the first outside quotes/<>.
	v = firstValue(v)
	var uri sip.Uri
	var params sip.HeaderParams
	display, err := sip.ParseAddressValue(v, &uri, &params)
	if err != nil {
		return Identity{}, fmt.Errorf("identity %q: %w", v, err)
	}
	if uri.Scheme == "" {
		uri.Scheme = "sip"
	}
	id := Identity{Display: strings.TrimSpace(display), User: uri.User, Host: uri.Host}
	switch strings.ToLower(uri.Scheme) {
	case "sip", "sips":
		if uri.Host == "" {
			return Identity{}, fmt.Errorf("identity %q: no host", v)
		}
		u := sip.Uri{Scheme: strings.ToLower(uri.Scheme), User: uri.User, Host: uri.Host, Port: uri.Port}
		id.URI = u.String()
	case "tel":
		num := uri.User
		if num == "" {
			num = uri.Host
		}
		id.URI, id.User, id.Host = "tel:"+num, num, ""
	default:
		return Identity{}, fmt.Errorf("identity %q: unsupported scheme %q", v, uri.Scheme)
	}
	if badUser(id.User) || strings.ContainsAny(id.Host, "\r\n<>\" \t") {
		return Identity{}, fmt.Errorf("identity %q: bad characters", v)
	}
	// The user part goes into From headers of ring-back calls and is a
	// routing target: an escaped line break or space must not come through.
	if u, err := url.PathUnescape(id.User); err == nil && !badUser(u) {
		id.User = u
	}
	return id, nil
}

// badUser reports characters a user part must not carry once parsed.
func badUser(u string) bool {
	return strings.ContainsFunc(u, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '"' || r == '@'
	})
}

// firstValue returns the first comma-separated value, ignoring commas in
// quotes and angle brackets.
func firstValue(v string) string { return splitTop(v)[0] }

// splitTop splits v at commas outside quotes and angle brackets.
func splitTop(v string) []string {
	var out []string
	inQuote, inAngle, esc := false, false, false
	start := 0
	for i, r := range v {
		switch {
		case esc:
			esc = false
		case inQuote && r == '\\':
			esc = true
		case r == '"':
			inQuote = !inQuote
		case !inQuote && r == '<':
			inAngle = true
		case !inQuote && r == '>':
			inAngle = false
		case !inQuote && !inAngle && r == ',':
			out = append(out, strings.TrimSpace(v[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(v[start:]))
}

// Replaces is the value of a Replaces header (RFC 3891): the dialog to
// replace, with to-tag and from-tag as seen by the recipient (us).
type Replaces struct {
	CallID    string
	ToTag     string
	FromTag   string
	EarlyOnly bool
}

// ParseReplaces reads `call-id;to-tag=a;from-tag=b[;early-only]`.
func ParseReplaces(v string) (Replaces, error) {
	v = strings.TrimSpace(v)
	if len(v) > maxHeaderLen {
		return Replaces{}, errors.New("replaces: too long")
	}
	parts := strings.Split(v, ";")
	r := Replaces{CallID: strings.TrimSpace(parts[0])}
	if r.CallID == "" || strings.ContainsAny(r.CallID, " \t\r\n<>\"") {
		return Replaces{}, fmt.Errorf("replaces %q: bad call-id", v)
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		k, val = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(val)
		switch k {
		case "to-tag":
			r.ToTag = val
		case "from-tag":
			r.FromTag = val
		case "early-only":
			r.EarlyOnly = true
		}
	}
	if r.ToTag == "" || r.FromTag == "" {
		return Replaces{}, fmt.Errorf("replaces %q: missing to-tag or from-tag", v)
	}
	return r, nil
}

// String writes the header value.
func (r Replaces) String() string {
	s := r.CallID + ";to-tag=" + r.ToTag + ";from-tag=" + r.FromTag
	if r.EarlyOnly {
		s += ";early-only"
	}
	return s
}

// headerValues returns every value of a header, also under its compact
// form when it has one.
func headerValues(req *sip.Request, name string) []string {
	names := []string{name}
	switch strings.ToLower(name) {
	case "referred-by":
		names = append(names, "b")
	case "from":
		names = append(names, "f")
	case "to":
		names = append(names, "t")
	case "contact":
		names = append(names, "m")
	case "event":
		names = append(names, "o")
	case "supported":
		names = append(names, "k")
	case "session-expires":
		names = append(names, "x")
	}
	var out []string
	for _, n := range names {
		for _, h := range req.GetHeaders(n) {
			out = append(out, h.Value())
		}
	}
	return out
}

// HeaderValues returns every value of a request header (compact forms
// included), for privacy rules.
func HeaderValues(req *sip.Request, name string) []string { return headerValues(req, name) }

// HeaderIdentity parses the first value of an identity header.
func HeaderIdentity(req *sip.Request, name string) (Identity, bool) {
	for _, v := range headerValues(req, name) {
		if id, err := ParseIdentity(v); err == nil {
			return id, true
		}
	}
	return Identity{}, false
}

// FromIdentity returns the From identity of a request.
func FromIdentity(req *sip.Request) Identity {
	f := req.From()
	if f == nil {
		return Identity{}
	}
	u := sip.Uri{Scheme: f.Address.Scheme, User: f.Address.User, Host: f.Address.Host, Port: f.Address.Port}
	if u.Scheme == "" {
		u.Scheme = "sip"
	}
	return Identity{Display: f.DisplayName, URI: u.String(), User: f.Address.User, Host: f.Address.Host}
}

// CallerIdentity is who a request is from as far as the callee should
// show: P-Asserted-Identity when present, else From.
func CallerIdentity(req *sip.Request) Identity {
	from := FromIdentity(req)
	if pai, ok := HeaderIdentity(req, "P-Asserted-Identity"); ok {
		if pai.Display == "" {
			pai.Display = from.Display
		}
		return pai
	}
	return from
}

// hasToken reports whether a comma-separated header (Supported, Require)
// lists tok.
func hasToken(req *sip.Request, name, tok string) bool {
	for _, v := range headerValues(req, name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// HasToken reports whether header name (Supported, Require, Allow) lists tok.
func HasToken(req *sip.Request, name, tok string) bool { return hasToken(req, name, tok) }
