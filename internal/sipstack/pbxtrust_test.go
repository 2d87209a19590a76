package sipstack

import (
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestPBXTrust(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		uri  string
		want string // an address that must be trusted; "" for none
	}{
		{"sip:10.200.0.2:5060", "10.200.0.2"},
		{"sip:[2001:db8::5]:5060", "2001:db8::5"},
		{"sip:localhost", "127.0.0.1"},
		{"", ""},
	} {
		var u *sip.Uri
		if tc.uri != "" {
			u = new(sip.Uri)
			if err := sip.ParseUri(tc.uri, u); err != nil {
				t.Fatal(err)
			}
		}
		got := pbxTrust(u, log)
		if tc.want == "" {
			if len(got) != 0 {
				t.Errorf("%q: trusted %v", tc.uri, got)
			}
			continue
		}
		a := netip.MustParseAddr(tc.want)
		if !slices.ContainsFunc(got, func(p netip.Prefix) bool { return p.Contains(a) }) {
			t.Errorf("%q: trusted %v, want %s in it", tc.uri, got, a)
		}
		for _, p := range got {
			if p.Bits() != p.Addr().BitLen() {
				t.Errorf("%q: %v trusts more than the PBX's address", tc.uri, p)
			}
		}
	}
}
