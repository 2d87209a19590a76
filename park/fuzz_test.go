package park

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/config"
)

// Calling and called numbers come from SIP headers.
func FuzzMatchNumber(f *testing.F) {
	f.Add("+1555XXXXXXX", "+15551234567")
	f.Add("9.", "9")
	f.Add("911", "9111")
	f.Add(".", "")
	f.Fuzz(func(t *testing.T, pattern, number string) {
		got := MatchNumber(pattern, number)
		// A pattern of plain digits matches only itself.
		if !strings.ContainsAny(pattern, "Xx.") && got != (pattern == number) {
			t.Fatalf("MatchNumber(%q, %q) = %v", pattern, number, got)
		}
		if got && !strings.HasSuffix(pattern, ".") && len(pattern) != len(number) {
			t.Fatalf("MatchNumber(%q, %q): lengths differ", pattern, number)
		}
	})
}

// Privacy rules read header values as sent: any value is checked without
// panicking, and "Privacy: id" in any spelling refuses the call.
func FuzzPrivacyCheck(f *testing.F) {
	f.Add("Privacy", "id", "+15551234567")
	f.Add("X-Confidential", "yes;x=1, no", "")
	f.Add("Privacy", "none;header , user", "911")
	f.Fuzz(func(t *testing.T, name, value, calling string) {
		tr := true
		r := compilePrivacy(config.Privacy{PrivacyHeader: &tr, Headers: []string{"X-Confidential=yes", "X-Secret"}, Calling: []string{"911", "+1900."}})
		ci := CallInfo{Calling: calling, Source: netip.MustParseAddr("10.0.0.1"), Header: func(n string) []string {
			if strings.EqualFold(n, name) {
				return []string{value}
			}
			return nil
		}}
		why := r.check(ci)
		if strings.EqualFold(name, "Privacy") {
			for _, tok := range splitTokens(value) {
				if strings.EqualFold(tok, "id") && why == "" {
					t.Fatalf("Privacy: %q not refused", value)
				}
			}
		}
		if calling == "911" && why == "" {
			t.Fatal("calling 911 not refused")
		}
	})
}
