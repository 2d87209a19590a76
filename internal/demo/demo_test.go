package demo

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/config"
)

// The demo's config is valid and loopback-only: every listener on
// 127.0.0.1, every network output on lo, no trust beyond loopback.
func TestConfigIsLoopbackOnly(t *testing.T) {
	for _, card := range []string{"", "hw:1,0"} {
		c, warns, err := config.Parse("demo.yaml", []byte(Config(t.TempDir(), 5062, 40000, card)))
		if err != nil {
			t.Fatalf("card %q: %v", card, err)
		}
		if len(warns) != 0 {
			t.Errorf("card %q: warnings %v", card, warns)
		}
		for _, l := range c.SIP.Listen {
			if ap, err := netip.ParseAddrPort(l.Address); err != nil || !ap.Addr().IsLoopback() {
				t.Errorf("sip listener %s is not on loopback", l.Address)
			}
		}
		if !strings.HasPrefix(c.HTTP.Listen, "127.0.0.1:") {
			t.Errorf("http.listen %s", c.HTTP.Listen)
		}
		for _, p := range c.SIP.Trusted {
			if !p.Prefix.Addr().IsLoopback() {
				t.Errorf("trusts %s", p.Prefix)
			}
		}
		lineouts := 0
		for _, o := range c.Zones["demo"].Outputs {
			switch o.Type {
			case config.OutputLineOut:
				lineouts++
				if o.Device != card {
					t.Errorf("line out %q, want %q", o.Device, card)
				}
			default:
				if o.Interface != "lo" {
					t.Errorf("output %s on interface %q, want lo", o.Type, o.Interface)
				}
			}
		}
		if want := map[bool]int{true: 1, false: 0}[card != ""]; lineouts != want {
			t.Errorf("card %q: %d line outs", card, lineouts)
		}
		if len(c.PhonePages) != 0 || c.External.AMI != nil || c.External.BLF != nil {
			t.Error("the demo config listens to outside sources")
		}
	}
}
