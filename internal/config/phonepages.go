package config

import (
	"fmt"
	"regexp"
)

// PhonePage is a multicast page that phones send themselves (a VVX's group
// page or PTT key, a Yealink's multicast paging key) which parkpage
// receives and relays to zones' non-multicast outputs (SIP amplifiers,
// line out) and relays, so the phone's own paging key reaches the ceiling
// speakers too. It never goes back out on multicast: the phones on the
// group hear the sender directly.
type PhonePage struct {
	Type      string `yaml:"type"`      // polycom or rtp (Yealink multicast paging)
	Group     string `yaml:"group"`     // IPv4 multicast group; polycom default 224.0.1.116
	Port      int    `yaml:"port"`      // UDP port; polycom default 5001, required for rtp
	Channel   int    `yaml:"channel"`   // polycom: 1-50 (paging group N = channel 25+N); required
	Interface string `yaml:"interface"` // interface to join on; empty: the default route's
	// Zones hear the page on their SIP and line-out outputs and relays.
	Zones []string `yaml:"zones"`
	// Priority is live (default) or emergency (e.g. the Polycom emergency
	// channel 50).
	Priority string `yaml:"priority"`
}

// Phone page types.
const (
	PhonePagePolycom = "polycom"
	PhonePageRTP     = "rtp"
)

func (c *Config) defaultPhonePages(def func(string, func())) {
	for i, p := range c.PhonePages {
		if p == nil {
			p = &PhonePage{}
			c.PhonePages[i] = p
		}
		pp := fmt.Sprintf("phone_pages[%d]", i)
		def(pp+".priority", func() { p.Priority = "live" })
		if p.Type == PhonePagePolycom {
			def(pp+".group", func() { p.Group = "224.0.1.116" })
			def(pp+".port", func() { p.Port = 5001 })
		}
	}
}

var ifaceRe = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

func (c *Config) validatePhonePages(ps *problems) {
	type key struct {
		group   string
		port    int
		channel int
	}
	seen := map[key]string{}
	for i, p := range c.PhonePages {
		pp := fmt.Sprintf("phone_pages[%d]", i)
		switch p.Type {
		case PhonePagePolycom:
			if p.Channel < 1 || p.Channel > 50 {
				ps.add(pp+".channel", "%d is out of range 1-50 (1-25 push-to-talk, 26-50 group paging: group N is channel 25+N)", p.Channel)
			}
		case PhonePageRTP:
			if ps.set(pp + ".channel") {
				ps.add(pp+".channel", "only Polycom pages have channels")
			}
		default:
			ps.add(pp+".type", "%q is not polycom or rtp", p.Type)
		}
		if p.Group == "" {
			ps.add(pp+".group", "missing: the multicast group the phones page to")
		} else if !isMulticast4(p.Group) {
			ps.add(pp+".group", "%q is not an IPv4 multicast address", p.Group)
		}
		if p.Port < 1 || p.Port > 65535 {
			ps.add(pp+".port", "missing or out of range: the UDP port the phones page to")
		}
		if p.Interface != "" && !ifaceRe.MatchString(p.Interface) {
			ps.add(pp+".interface", "%q is not an interface name or address", p.Interface)
		}
		if !oneOf(p.Priority, "live", "emergency") {
			ps.add(pp+".priority", "%q is not live or emergency", p.Priority)
		}
		if len(p.Zones) == 0 {
			ps.add(pp+".zones", "missing: which zones' amplifiers and relays hear the page")
		}
		for j, z := range p.Zones {
			zc, ok := c.Zones[z]
			if !ok {
				ps.add(fmt.Sprintf("%s.zones[%d]", pp, j), "zone %q does not exist", z)
				continue
			}
			relayable := len(zc.Relays) > 0
			for _, o := range zc.Outputs {
				relayable = relayable || o != nil && (o.Type == OutputSIP || o.Type == OutputLineOut)
			}
			if !relayable {
				ps.add(fmt.Sprintf("%s.zones[%d]", pp, j), "zone %q has no SIP or line-out output and no relay: a phone page is relayed only to those (its multicast outputs reach the phones already)", z)
			}
		}
		k := key{p.Group, p.Port, p.Channel}
		if prev, dup := seen[k]; dup {
			ps.add(pp, "same group, port and channel as %s", prev)
		}
		seen[k] = pp
	}
}
