package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	c, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SIP.Listen) != 2 || c.SIP.Listen[0].Address != "0.0.0.0:5060" {
		t.Errorf("sip listen = %+v", c.SIP.Listen)
	}
	l := c.Park.Lots[0]
	if l.Extension != "700" || l.Slots != (Range{701, 710}) || l.Timeout.D() != 90*time.Second || l.Name != "700" {
		t.Errorf("lot = %+v", l)
	}
	z := c.Zones["all"]
	if z == nil || len(z.Outputs) != 2 {
		t.Fatalf("zone all = %+v", z)
	}
	p, r := z.Outputs[0], z.Outputs[1]
	if p.Type != "polycom" || p.Group != "224.0.1.116" || p.Port != 5001 || p.Channel != 26 || *p.TTL != 1 {
		t.Errorf("polycom output = %+v", p)
	}
	if r.Type != "rtp" || r.Codec != "pcmu" || *r.TTL != 1 {
		t.Errorf("rtp output = %+v", r)
	}
	if c.HTTP.Listen != "127.0.0.1:8080" || c.HTTP.HasCredential() {
		t.Errorf("http = %+v", c.HTTP)
	}
}

// An empty file gets the same scalar defaults as the embedded default, so
// the default file documents what omitting a key means.
func TestEmptyFileMatchesDefaults(t *testing.T) {
	empty, _, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := LoadDefault()
	if !reflect.DeepEqual(empty.SIP, def.SIP) {
		t.Errorf("sip differs:\n%+v\n%+v", empty.SIP, def.SIP)
	}
	if !reflect.DeepEqual(empty.Announce, def.Announce) || empty.StateDir != def.StateDir || !reflect.DeepEqual(empty.Log, def.Log) {
		t.Errorf("defaults differ")
	}
	if empty.Park.Lots[0].Timeout != def.Park.Lots[0].Timeout || empty.Park.Lots[0].Slots != def.Park.Lots[0].Slots {
		t.Errorf("lot defaults differ")
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // every problem, in order, exactly
	}{
		{"unknown key with suggestion", "zones:\n  w:\n    outputs:\n      - type: rtp\n        grup: 239.1.1.1\n        port: 5000\n",
			[]string{
				`p.yaml:4:9: zones.w.outputs[0].group: missing: a multicast output needs its group address`,
				`p.yaml:5:9: zones.w.outputs[0].grup: unknown key (did you mean "group"?)`,
			}},
		{"not multicast", "zones:\n  warehouse:\n    outputs:\n      - type: polycom\n      - type: rtp\n        group: \"239.1.1\"\n        port: 5000\n",
			[]string{`p.yaml:6:16: zones.warehouse.outputs[1].group: "239.1.1" is not an IPv4 multicast address`}},
		{"wrong type", "zones:\n  a:\n    outputs:\n      - type: rtp\n        group: 239.1.1.1\n        port: five\n",
			[]string{`p.yaml:6:15: zones.a.outputs[0].port: expected an integer, got "five"`}},
		{"list where mapping", "park: [1, 2]\n",
			[]string{`p.yaml:1:7: park: expected a mapping, got a list`}},
		{"duration without unit", "park:\n  lots:\n    - extension: \"700\"\n      slots: 701-705\n      timeout: 90\n",
			[]string{`p.yaml:5:16: park.lots[0].timeout: "90" is not a duration: write it with a unit, e.g. 90s`}},
		{"timeout zero", "park:\n  lots:\n    - extension: \"700\"\n      slots: 701-705\n      timeout: 0s\n",
			[]string{`p.yaml:5:16: park.lots[0].timeout: timeout must be more than zero: a parked call is never left forever`}},
		{"timeout off", "park:\n  lots:\n    - extension: \"700\"\n      slots: 701-705\n      timeout: off\n",
			[]string{`p.yaml:5:16: park.lots[0].timeout: "off" is not a duration (write e.g. 90s, 500ms, 2m)`}},
		{"timeout too long", "park:\n  lots:\n    - extension: \"700\"\n      slots: 701-705\n      timeout: 2h\n",
			[]string{`p.yaml:5:16: park.lots[0].timeout: 2h0m0s is more than the maximum 1h`}},
		{"dangling zone", "park:\n  slots:\n    \"704\":\n      label: Sales\n      announce:\n        zones: [sales]\n",
			[]string{`p.yaml:6:17: park.slots.704.announce.zones[0]: zone "sales" does not exist`}},
		{"slot outside lots", "park:\n  slots:\n    \"799\": {label: X}\n",
			[]string{`p.yaml:3:12: park.slots.799: slot 799 is not in any lot's slot range`}},
		{"dangling relay and group", "zones:\n  a:\n    relays: [amp]\npark:\n  lots:\n    - {extension: \"700\", slots: 701-702, pickup: [\"@ops\"]}\n",
			[]string{
				`p.yaml:3:14: zones.a.relays[0]: relay "amp" does not exist`,
				`p.yaml:6:51: park.lots[0].pickup[0]: group "ops" is not given to any user under sip.users`,
			}},
		{"extension clash", "park:\n  lots:\n    - {extension: \"700\", slots: 701-710}\n    - {extension: \"705\", slots: 720-721}\n",
			[]string{`p.yaml:4:19: park.lots[1].extension: extension 705 is already used by park.lots[0].slots`}},
		{"bad template", "announce:\n  template: \"{lable} call on {slot}\"\n",
			[]string{`p.yaml:2:13: announce.template: template "{lable} call on {slot}": unknown field {lable} (known: {slot}, {label}, {caller}, {parker}, {zone}, {lot})`}},
		{"yaml syntax", "zones: [\n", []string{`p.yaml:1:8: YAML syntax: did not find expected node content`}},
		{"polycom codec and channel", "zones:\n  a:\n    outputs:\n      - {type: polycom, channel: 51, codec: pcma, caller_id: \"a very long caller\"}\n",
			[]string{
				`p.yaml:4:34: zones.a.outputs[0].channel: 51 is out of range 1-50 (1-25 push-to-talk, 26-50 group paging)`,
				`p.yaml:4:45: zones.a.outputs[0].codec: pcma is not in Polycom's packet format document; set allow_g711a: true to use it anyway`,
				`p.yaml:4:62: zones.a.outputs[0].caller_id: "a very long caller" is longer than the 13 characters phones show`,
			}},
		{"sip output", "zones:\n  a:\n    outputs:\n      - {type: sip, preset: acme, zone_code: \"#1x\"}\n",
			[]string{
				`p.yaml:4:9: zones.a.outputs[0].uri: missing: a SIP output needs the URI to call, e.g. sip:page@amp.lan`,
				`p.yaml:4:29: zones.a.outputs[0].preset: "acme" is not one of algo, cyberdata, bogen, valcom, polycom, yealink, generic`,
				`p.yaml:4:46: zones.a.outputs[0].zone_code: "#1x": DTMF digits are 0-9, *, # and A-D`,
			}},
		{"zone align", "zones:\n  a:\n    align: fast\n    align_wait: 1m\n    relays: [amp]\nrelays:\n  amp: {pin: GPIO17}\n",
			[]string{
				`p.yaml:3:12: zones.a.align: "fast": write together (outputs start in step) or latency (each as soon as it can)`,
				`p.yaml:4:17: zones.a.align_wait: 1m0s is out of range 250ms-30s`,
			}},
		{"zone align_wait negative", "zones:\n  a:\n    align: latency\n    align_wait: -1s\n    relays: [amp]\nrelays:\n  amp: {pin: GPIO17}\n",
			[]string{`p.yaml:4:17: zones.a.align_wait: -1s is out of range 250ms-30s`}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n",
			[]string{`p.yaml:3:3: log.level: defined twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse("p.yaml", []byte(tt.yaml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			var got []string
			for _, p := range ce.Problems {
				if !p.Warning {
					got = append(got, p.String())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	y := "log:\n  format: xml\nhttp:\n  listen: nowhere\nannounce:\n  repeat: 9\n  loudness: -3\nbogus: 1\n"
	_, _, err := Parse("p.yaml", []byte(y))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 5 {
		t.Fatalf("want 5 problems, got %v", err)
	}
}

func TestWarningForManySlots(t *testing.T) {
	c, warns, err := Parse("p.yaml", []byte("park:\n  lots:\n    - {extension: \"700\", slots: 701-720}\n"))
	if err != nil || c == nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "p.yaml:3:33: warning: park.lots[0].slots: 20 slots in one lot") {
		t.Errorf("warnings = %v", warns)
	}
}

func TestLoadNamesFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "parkpage.yaml")
	os.WriteFile(f, []byte("zones:\n  x:\n    outputs:\n      - type: rtp\n        group: 10.0.0.1\n        port: 1\n"), 0o644)
	_, _, err := Load(f)
	if err == nil || err.Error() != `parkpage.yaml:5:16: zones.x.outputs[0].group: "10.0.0.1" is not an IPv4 multicast address` {
		t.Errorf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Default)
	f.Add([]byte("zones:\n  a:\n    outputs:\n      - {type: polycom}\n"))
	f.Add([]byte("park: {lots: [{extension: \"1\", slots: 2-3, timeout: 5s}]}"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("zones:\n  a:\n    align: latency\n    align_wait: 500ms\n    outputs:\n      - {type: polycom}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := Parse("f.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v with error %v", c, err)
		}
	})
}

// The default trusts loopback only: a LAN device must register or be named
// (sip.pbx, sip.trusted) before it can park or pick up.
func TestDefaultTrustsLoopbackOnly(t *testing.T) {
	for name, load := range map[string]func() (*Config, error){
		"embedded": LoadDefault,
		"empty file": func() (*Config, error) {
			c, _, err := Parse("empty.yaml", nil)
			return c, err
		},
	} {
		c, err := load()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range c.SIP.Trusted {
			got = append(got, p.Prefix.String())
		}
		if strings.Join(got, " ") != "127.0.0.0/8 ::1/128" {
			t.Errorf("%s: sip.trusted = %v, want loopback only", name, got)
		}
	}
	_, warns, err := Parse("default.yaml", Default)
	if err != nil || len(warns) != 0 {
		t.Errorf("embedded default: warnings %v, err %v", warns, err)
	}
}

func TestWideTrustWarning(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		warn       string // substring of the one warning; "" for none
	}{
		{"lan listener, 10/8", "sip:\n  trusted: [10.0.0.0/8]\n", "default.yaml:2:13: warning: sip.trusted[0]: 10.0.0.0/8 trusts the whole private range 10.0.0.0/8 on sip.listen[0] 0.0.0.0:5060"},
		{"lan listener, everything", "sip:\n  trusted: [127.0.0.0/8, 0.0.0.0/0]\n", "sip.trusted[1]: 0.0.0.0/0 trusts the whole private range 10.0.0.0/8"},
		{"specific address listener, 192.168/16", "sip:\n  listen: [{transport: udp, address: \"192.0.2.1:5060\"}]\n  trusted: [192.168.0.0/16]\n", "sip.trusted[0]: 192.168.0.0/16 trusts the whole private range"},
		{"ula", "sip:\n  trusted: [\"fd00::/8\", \"fc00::/7\"]\n", "sip.trusted[1]: fc00::/7"},
		{"lan listener, one PBX", "sip:\n  trusted: [127.0.0.0/8, 10.1.2.3/32, 192.168.1.0/24]\n", ""},
		{"loopback listener, 10/8", "sip:\n  listen: [{transport: udp, address: \"127.0.0.1:5060\"}]\n  trusted: [10.0.0.0/8]\n", ""},
		{"tls on lan", "sip:\n  listen: [{transport: udp, address: \"127.0.0.1:5060\"}]\n  tls: {address: \"0.0.0.0:5061\", cert: /dev/null, key: /dev/null}\n  trusted: [172.16.0.0/12]\n", "on sip.tls 0.0.0.0:5061"},
	} {
		_, warns, err := Parse("default.yaml", []byte(tc.yaml))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var ws []string
		for _, w := range warns {
			if strings.Contains(w.String(), "trusts the whole") {
				ws = append(ws, w.String())
			}
		}
		switch {
		case tc.warn == "" && len(ws) != 0:
			t.Errorf("%s: unexpected warnings %q", tc.name, ws)
		case tc.warn != "" && (len(ws) != 1 || !strings.Contains(ws[0], tc.warn)):
			t.Errorf("%s: warnings %q, want one containing %q", tc.name, ws, tc.warn)
		}
	}
}

// YAML syntax errors and control characters are reported with a line and a
// column like every other problem.
func TestSyntaxProblemsHavePositions(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"log:\n  format: text\n  level: a: b\n", "p.yaml:3:11: YAML syntax: mapping values are not allowed in this context"},
		{"log:\n\tformat: text\n", "p.yaml:2:1: YAML syntax: found character that cannot start any token"},
		{"log:\n  format: te\x01xt\n", "p.yaml:2:13: control character U+0001 is not allowed (write it as an escape in a double-quoted string)"},
		{"log:\n  level: info\n  format: \"é\u0085\"\n", "p.yaml:3:13: control character U+0085 is not allowed (write it as an escape in a double-quoted string)"},
	} {
		_, _, err := Parse("p.yaml", []byte(tt.yaml))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q:\n got %v\nwant %s", tt.yaml, err, tt.want)
		}
	}
}

// A file that defines nothing is valid (every setting a default) but is
// warned about loudly: it is more likely empty by mistake.
func TestEmptyFileIsWarnedAbout(t *testing.T) {
	for _, y := range []string{"", "\n\n", "# only a comment\n", "---\n"} {
		_, warns, err := Parse("p.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, w := range warns {
			if w.Warning && strings.Contains(w.Message, "defines nothing") {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: no warning: %v", y, warns)
		}
	}
	_, warns, _ := Parse("p.yaml", []byte("log:\n  level: info\n"))
	for _, w := range warns {
		if strings.Contains(w.Message, "defines nothing") {
			t.Errorf("warning for a file that defines something: %v", w)
		}
	}
}

// A reload's new file that lacks whole sections the running config has
// (a file cut short, or the wrong file) is named section by section.
func TestMissingSections(t *testing.T) {
	full, _, err := Parse("p.yaml", []byte(`sip:
  users:
    "201": {password: pw}
zones:
  front:
    outputs:
      - {type: rtp, group: 239.1.1.1, port: 5004}
relays:
  door: {pin: GPIO17}
external:
  webhook_tokens: [tok-0123456789abcdef]
`))
	if err != nil {
		t.Fatal(err)
	}
	cut, _, err := Parse("p.yaml", []byte("sip:\n  users:\n    \"201\": {password: pw}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := MissingSections(full, cut)
	if want := []string{"external", "relays", "zones"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("MissingSections = %v, want %v", got, want)
	}
	if got := MissingSections(full, full); len(got) != 0 {
		t.Errorf("same config: %v", got)
	}
}

// speech.zero defaults on (the bench's choice); a zone may turn it off,
// and a zone that says nothing inherits announce.speech.
func TestSpeechZero(t *testing.T) {
	cases := []struct {
		name       string
		yaml       string
		top, quiet bool // announce.speech.zero, zones.quiet.speech.zero
	}{
		{"default", "zones:\n  quiet:\n    outputs: [{type: rtp, group: 239.1.1.1, port: 5004, interface: lo}]\n", true, true},
		{"zone off", "zones:\n  quiet:\n    outputs: [{type: rtp, group: 239.1.1.1, port: 5004, interface: lo}]\n    speech: {zero: false}\n", true, false},
		{"top off, zone inherits", "announce:\n  speech: {zero: false}\nzones:\n  quiet:\n    outputs: [{type: rtp, group: 239.1.1.1, port: 5004, interface: lo}]\n", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := Parse("t.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if c.Announce.Speech.Zero != tc.top {
				t.Errorf("announce.speech.zero = %v, want %v", c.Announce.Speech.Zero, tc.top)
			}
			if z := c.Zones["quiet"]; z == nil || z.Speech.Zero != tc.quiet {
				t.Errorf("zones.quiet.speech = %+v, want zero %v", z, tc.quiet)
			}
		})
	}
}
