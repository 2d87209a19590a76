package config

import (
	"errors"
	"strings"
	"testing"
)

const phonePageZones = `
relays:
  amp: { pin: GPIO17 }
zones:
  warehouse:
    relays: [amp]
    outputs:
      - { type: polycom, group: 224.0.1.116, port: 5001, channel: 26, codec: g722 }
  phones:
    outputs:
      - { type: rtp, group: 239.10.0.1, port: 10001, codec: pcmu }
`

func TestPhonePages(t *testing.T) {
	c, _, err := Parse("p.yaml", []byte(phonePageZones+`
phone_pages:
  - { type: polycom, channel: 26, zones: [warehouse] }
  - { type: rtp, group: 239.10.0.1, port: 10001, interface: eth0, zones: [warehouse], priority: emergency }
`))
	if err != nil {
		t.Fatal(err)
	}
	p, r := c.PhonePages[0], c.PhonePages[1]
	if p.Group != "224.0.1.116" || p.Port != 5001 || p.Priority != "live" {
		t.Errorf("polycom defaults: %+v", p)
	}
	if r.Group != "239.10.0.1" || r.Port != 10001 || r.Priority != "emergency" || r.Interface != "eth0" {
		t.Errorf("rtp: %+v", r)
	}
}

func TestPhonePagesInvalid(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want string
	}{
		{`[{ type: sip, group: 239.1.1.1, port: 1, zones: [warehouse] }]`, `phone_pages[0].type: "sip" is not polycom or rtp`},
		{`[{ type: polycom, channel: 51, zones: [warehouse] }]`, `phone_pages[0].channel: 51 is out of range 1-50`},
		{`[{ type: polycom, zones: [warehouse] }]`, `phone_pages[0].channel: 0 is out of range`},
		{`[{ type: rtp, group: 239.1.1.1, port: 1, channel: 3, zones: [warehouse] }]`, `phone_pages[0].channel: only Polycom pages have channels`},
		{`[{ type: rtp, group: 10.0.0.1, port: 1, zones: [warehouse] }]`, `phone_pages[0].group: "10.0.0.1" is not an IPv4 multicast address`},
		{`[{ type: rtp, group: 239.1.1.1, zones: [warehouse] }]`, `phone_pages[0].port: missing`},
		{`[{ type: polycom, channel: 26, zones: [] }]`, `phone_pages[0].zones: missing`},
		{`[{ type: polycom, channel: 26, zones: [nowhere] }]`, `phone_pages[0].zones[0]: zone "nowhere" does not exist`},
		{`[{ type: polycom, channel: 26, zones: [phones] }]`, `zone "phones" has no SIP or line-out output and no relay`},
		{`[{ type: polycom, channel: 26, zones: [warehouse], priority: park }]`, `phone_pages[0].priority: "park" is not live or emergency`},
		{`[{ type: polycom, channel: 26, zones: [warehouse], interface: "e th0" }]`, `phone_pages[0].interface`},
		{`[{ type: polycom, channel: 26, zones: [warehouse] }, { type: polycom, channel: 26, zones: [warehouse] }]`, `phone_pages[1]: same group, port and channel as phone_pages[0]`},
	} {
		_, _, err := Parse("p.yaml", []byte(phonePageZones+"phone_pages: "+tt.yaml+"\n"))
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s:\n got %v\nwant %s", tt.yaml, err, tt.want)
		}
	}
}
