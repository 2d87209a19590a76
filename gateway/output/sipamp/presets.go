package sipamp

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Auto-answer headers per preset, from paging-formats.md section 3. {host}
// is replaced by the host of the called URI. Every row is documented in
// README.md; keep the two in step.
//
//   - generic, yealink: Call-Info answer-after=0 (Snom, Cisco SPA, Mitel,
//     Grandstream, Yealink) and Alert-Info info=alert-autoanswer (Mitel/
//     Aastra, Unify, Yealink): the pair the research recommends as the
//     default, since most SIP phones and speakers honour one of the two.
//     Call-Info carries a URI (RFC 3261 grammar) for strict parsers.
//   - polycom: Alert-Info "Ring Answer", which Poly phones map to their
//     autoAnswer ring class (voIpProt.SIP.alertInfo.x.value = Ring Answer,
//     .class = autoAnswer): the string must match the phone's config.
//   - algo, cyberdata: none. These appliances auto-answer calls to their
//     page extension whatever the headers (their ring extension never
//     auto-answers, so headers would not help there either).
//   - bogen: none. A Nyquist server answers its own dial codes, and a
//     UTI312 behind an FXS port answers the ATA's ring; zone selection is
//     by DTMF (zone_code).
//   - valcom: none. Valcom one-way SIP devices auto-answer.
//
// Extra headers from the output's config (headers:) are added after the
// preset's; a configured header with the same name replaces the preset's.
var presetHeaders = map[string][]string{
	"generic":   {"Call-Info: <sip:{host}>;answer-after=0", "Alert-Info: info=alert-autoanswer"},
	"yealink":   {"Call-Info: <sip:{host}>;answer-after=0", "Alert-Info: info=alert-autoanswer"},
	"polycom":   {"Alert-Info: Ring Answer"},
	"algo":      nil,
	"cyberdata": nil,
	"bogen":     nil,
	"valcom":    nil,
}

// Headers returns the headers an INVITE to a device of preset carries:
// the preset's auto-answer headers for host, then the configured extra
// headers ("Name: value"), which replace preset headers of the same name.
func Headers(preset, host string, extra []string) ([]sip.Header, error) {
	base, ok := presetHeaders[preset]
	if !ok {
		return nil, fmt.Errorf("unknown preset %q", preset)
	}
	var parsed [][2]string
	for _, h := range base {
		n, v, _ := parseHeader(strings.ReplaceAll(h, "{host}", host))
		parsed = append(parsed, [2]string{n, v})
	}
	for _, h := range extra {
		n, v, err := parseHeader(h)
		if err != nil {
			return nil, err
		}
		kept := parsed[:0]
		for _, p := range parsed {
			if !strings.EqualFold(p[0], n) {
				kept = append(kept, p)
			}
		}
		parsed = append(kept, [2]string{n, v})
	}
	out := make([]sip.Header, 0, len(parsed))
	for _, p := range parsed {
		out = append(out, sip.NewHeader(p[0], p[1]))
	}
	return out, nil
}

// reserved are headers the SIP stack writes itself; config may not set them.
var reserved = []string{"via", "from", "to", "call-id", "cseq", "contact", "content-length", "content-type", "max-forwards", "route", "record-route"}

// parseHeader splits "Name: value", refusing what would break the request.
func parseHeader(h string) (name, value string, err error) {
	n, v, ok := strings.Cut(h, ":")
	n, v = strings.TrimSpace(n), strings.TrimSpace(v)
	if !ok || n == "" || v == "" {
		return "", "", fmt.Errorf("header %q is not \"Name: value\"", h)
	}
	for _, r := range n {
		if !(r == '-' || r == '_' || r == '.' || r == '!' || r == '%' || r == '*' || r == '+' || r == '`' || r == '\'' || r == '~' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return "", "", fmt.Errorf("header %q: %q is not a header name", h, n)
		}
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return "", "", fmt.Errorf("header %q: value holds a line break", n)
	}
	for _, r := range reserved {
		if strings.EqualFold(n, r) {
			return "", "", fmt.Errorf("header %s is written by the SIP stack and cannot be configured", n)
		}
	}
	return n, v, nil
}
