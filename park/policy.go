package park

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/parkpage/parkpage/internal/config"
)

// CallInfo is what privacy rules look at in a call offered for parking.
type CallInfo struct {
	// Calling is the caller's number (user part of P-Asserted-Identity,
	// else From).
	Calling string
	// Called is the number the caller originally dialled, when known.
	Called string
	// Header returns the values of a request header (case-insensitive
	// name); nil means the request has none.
	Header func(name string) []string
	// Source is the address the request came from.
	Source netip.Addr
}

func (ci CallInfo) header(name string) []string {
	if ci.Header == nil {
		return nil
	}
	return ci.Header(name)
}

// privacyRules is the compiled park.privacy section.
type privacyRules struct {
	privacyHeader bool
	headers       []headerRule
	calling       []string
	called        []string
	sources       []netip.Prefix
}

type headerRule struct {
	name  string
	value string // "" matches any value
	any   bool
}

func compilePrivacy(p config.Privacy) privacyRules {
	r := privacyRules{privacyHeader: p.PrivacyHeader == nil || *p.PrivacyHeader, calling: p.Calling, called: p.Called}
	for _, h := range p.Headers {
		name, value, hasValue := strings.Cut(h, "=")
		r.headers = append(r.headers, headerRule{name: strings.TrimSpace(name), value: strings.TrimSpace(value), any: !hasValue})
	}
	for _, s := range p.Sources {
		r.sources = append(r.sources, s.Prefix)
	}
	return r
}

// check returns why a call must not be parked, or "".
func (r privacyRules) check(ci CallInfo) string {
	if r.privacyHeader {
		for _, v := range ci.header("Privacy") {
			for _, tok := range splitTokens(v) {
				if strings.EqualFold(tok, "id") || strings.EqualFold(tok, "header") {
					return "Privacy: " + tok
				}
			}
		}
	}
	for _, h := range r.headers {
		vals := ci.header(h.name)
		if len(vals) == 0 {
			continue
		}
		if h.any {
			return "header " + h.name
		}
		for _, v := range vals {
			if strings.EqualFold(strings.TrimSpace(v), h.value) {
				return "header " + h.name + "=" + h.value
			}
			for _, tok := range splitTokens(v) {
				if strings.EqualFold(tok, h.value) {
					return "header " + h.name + "=" + h.value
				}
			}
		}
	}
	for _, p := range r.calling {
		if ci.Calling != "" && MatchNumber(p, ci.Calling) {
			return "calling number matches " + p
		}
	}
	for _, p := range r.called {
		if ci.Called != "" && MatchNumber(p, ci.Called) {
			return "called number matches " + p
		}
	}
	if ci.Source.IsValid() {
		src := ci.Source.Unmap()
		for _, p := range r.sources {
			if p.Contains(src) {
				return "source " + p.String()
			}
		}
	}
	return ""
}

func splitTokens(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' || r == ' ' || r == '\t' })
}

// MatchNumber reports whether number matches a dial pattern: digits (and
// '+', '*', '#') match themselves, 'X' any digit, and a trailing '.' any
// rest, including nothing ("9." matches every number starting with 9).
func MatchNumber(pattern, number string) bool {
	rest := false
	if strings.HasSuffix(pattern, ".") {
		pattern, rest = pattern[:len(pattern)-1], true
	}
	if len(number) < len(pattern) || !rest && len(number) != len(pattern) {
		return false
	}
	for i := 0; i < len(pattern); i++ {
		p, c := pattern[i], number[i]
		switch {
		case p == 'X' || p == 'x':
			if c < '0' || c > '9' {
				return false
			}
		case p != c:
			return false
		}
	}
	return true
}

// allowedPickup reports whether user may retrieve under list ("1001",
// "@reception"); an empty list allows everyone.
func allowedPickup(list []string, user string, groups map[string][]string) bool {
	if len(list) == 0 {
		return true
	}
	if user == "" {
		return false
	}
	for _, e := range list {
		if g, ok := strings.CutPrefix(e, "@"); ok {
			for _, ug := range groups[user] {
				if ug == g {
					return true
				}
			}
		} else if e == user {
			return true
		}
	}
	return false
}

// ConfiguredSlot reports whether slot is a slot of a configured park lot
// (an outside PBX's park event for any other slot is refused unless the
// config says to announce unknown slots).
func ConfiguredSlot(cfg *config.Config, slot string) bool {
	n, err := strconv.Atoi(strings.TrimSpace(slot))
	return err == nil && cfg.LotOf(n) != nil
}
