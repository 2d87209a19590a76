package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parse decodes, defaults and validates a config. name is used in problem
// locations. It returns the config and its warnings, or an *Error.
func Parse(name string, data []byte) (*Config, []Problem, error) {
	ps := &problems{file: name, pos: map[string]Pos{}}
	var c Config
	if p, ok := controlChar(name, data); ok {
		return nil, nil, &Error{Problems: []Problem{p}}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		ps.list = append(ps.list, syntaxProblem(name, data, err))
		return nil, nil, &Error{Problems: ps.list}
	}
	if len(doc.Content) > 0 {
		ps.decode(doc.Content[0], reflect.ValueOf(&c).Elem(), "")
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" ||
		doc.Content[0].Kind == yaml.MappingNode && len(doc.Content[0].Content) == 0 {
		ps.list = append(ps.list, definesNothing(name))
	}
	delete(ps.pos, "")
	c.applyDefaults(ps)
	c.validate(ps)
	all := ps.sorted()
	if len(ps.errors()) > 0 {
		return nil, nil, &Error{Problems: all}
	}
	return &c, all, nil
}

func yamlSyntax(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return "YAML syntax: " + msg
}

func (ps *problems) set(path string) bool { _, ok := ps.pos[path]; return ok }

// applyDefaults fills what the file left out. A key written with a zero value
// stays zero so validation can refuse it (timeout: 0s is an error, not "use the default").
func (c *Config) applyDefaults(ps *problems) {
	def := func(path string, f func()) {
		if !ps.set(path) {
			f()
		}
	}
	c.defaultPhonePages(def)
	def("state_dir", func() { c.StateDir = "/var/lib/parkpage" })
	def("log.format", func() { c.Log.Format = "text" })
	def("log.level", func() { c.Log.Level = "info" })
	def("http.listen", func() { c.HTTP.Listen = "127.0.0.1:8080" })
	def("sip.listen", func() {
		c.SIP.Listen = []Listener{{"udp", "0.0.0.0:5060"}, {"tcp", "0.0.0.0:5060"}}
	})
	def("sip.trusted", func() {
		// Loopback only: a PBX is let in by naming it (sip.pbx or
		// sip.trusted), phones register (sip.users).
		for _, s := range []string{"127.0.0.0/8", "::1/128"} {
			c.SIP.Trusted = append(c.SIP.Trusted, CIDR{netip.MustParsePrefix(s)})
		}
	})
	def("sip.parker_header", func() { c.SIP.ParkerHeader = "X-Parker" })
	def("sip.rtp_ports", func() { c.SIP.RTPPorts = Range{10000, 10999} })
	def("sip.user_agent", func() { c.SIP.UserAgent = "parkpage" })
	if c.SIP.TLS != nil {
		def("sip.tls.address", func() { c.SIP.TLS.Address = "0.0.0.0:5061" })
	}
	def("park.lots", func() {
		c.Park.Lots = []*Lot{{Extension: "700", Slots: Range{701, 710}}}
	})
	for i, l := range c.Park.Lots {
		if l == nil {
			l = &Lot{}
			c.Park.Lots[i] = l
		}
		p := fmt.Sprintf("park.lots[%d]", i)
		def(p+".name", func() { l.Name = l.Extension })
		def(p+".find_slot", func() { l.FindSlot = "next" })
		def(p+".timeout", func() { l.Timeout = Duration(90 * time.Second) })
		def(p+".ringback_time", func() { l.RingbackTime = Duration(30 * time.Second) })
		def(p+".on_taken", func() { l.OnTaken = "refuse" })
		def(p+".on_empty", func() { l.OnEmpty = "consult" })
		if l.Announce != nil {
			defaultSlotAnnounce(ps, p+".announce", l.Announce)
		}
	}
	for k, s := range c.Park.Slots {
		if s == nil {
			c.Park.Slots[k] = &Slot{}
		} else if s.Announce != nil {
			defaultSlotAnnounce(ps, "park.slots."+k+".announce", s.Announce)
		}
	}
	def("park.privacy.privacy_header", func() { t := true; c.Park.Privacy.PrivacyHeader = &t })
	def("park.blf.max_expires", func() { c.Park.BLF.MaxExpires = Duration(time.Hour) })
	def("park.whisper", func() { c.Park.Whisper = "returning call from {slot}" })
	def("park.rtp_timeout", func() { c.Park.RTPTimeout = Duration(60 * time.Second) })
	def("park.resume_within", func() { c.Park.ResumeWithin = Duration(60 * time.Second) })

	a := &c.Announce
	def("announce.voice", func() { a.Voice = "rms" })
	def("announce.template", func() { a.Template = "Call for {label} on {slot}" }) // announce.DefaultTemplate
	def("announce.chime", func() { a.Chime = "two-tone" })
	def("announce.repeat", func() { a.Repeat = 1 })
	def("announce.loudness", func() { a.Loudness = -18 })
	def("announce.peak", func() { a.Peak = -1 })
	def("announce.lead_in", func() { a.LeadIn = Duration(300 * time.Millisecond) })
	def("announce.prompt_fallback", func() { a.PromptFallback = "rms" })
	defaultSpeech(def, "announce.speech", &a.Speech, DefaultSpeech)

	for zn, z := range c.Zones {
		if z == nil {
			z = &Zone{}
			c.Zones[zn] = z
		}
		zp := "zones." + zn
		def(zp+".max_page", func() { z.MaxPage = Duration(60 * time.Second) })
		def(zp+".align", func() { z.Align = AlignTogether })
		def(zp+".align_wait", func() { z.AlignWait = Duration(3 * time.Second) })
		def(zp+".voice", func() { z.Voice = a.Voice })
		defaultSpeech(def, zp+".speech", &z.Speech, a.Speech)
		for i, o := range z.Outputs {
			if o == nil {
				o = &Output{}
				z.Outputs[i] = o
			}
			op := fmt.Sprintf("%s.outputs[%d]", zp, i)
			if o.TTL == nil && (o.Type == OutputPolycom || o.Type == OutputRTP) {
				one := 1
				o.TTL = &one
			}
			switch o.Type {
			case OutputPolycom:
				def(op+".group", func() { o.Group = "224.0.1.116" })
				def(op+".port", func() { o.Port = 5001 })
				def(op+".channel", func() { o.Channel = 26 })
				def(op+".codec", func() { o.Codec = "g722" })
				def(op+".caller_id", func() { o.CallerID = "Park" })
				def(op+".emergency_channel", func() { o.EmergencyCh = 50 })
				def(op+".priority_channel", func() { o.PriorityCh = 49 })
				def(op+".frame", func() { o.Frame = Duration(20 * time.Millisecond) })
				if o.SourcePort == nil {
					port := o.Port
					o.SourcePort = &port
				}
			case OutputRTP:
				def(op+".codec", func() { o.Codec = "pcmu" })
			case OutputSIP:
				def(op+".preset", func() { o.Preset = "generic" })
				def(op+".dtmf", func() { o.DTMF = "rfc4733" })
				def(op+".settle", func() { o.Settle = Duration(time.Second) })
				def(op+".digit_on", func() { o.DigitOn = Duration(100 * time.Millisecond) })
				def(op+".digit_gap", func() { o.DigitGap = Duration(100 * time.Millisecond) })
				def(op+".after_code", func() { o.AfterCode = Duration(time.Second) })
				def(op+".answer_timeout", func() { o.Answer = Duration(10 * time.Second) })
			case OutputLineOut:
				def(op+".rate", func() { o.Rate = 48000 })
			}
		}
	}
	for rn, r := range c.Relays {
		if r == nil {
			r = &Relay{}
			c.Relays[rn] = r
		}
		rp := "relays." + rn
		def(rp+".role", func() { r.Role = RoleZone })
		def(rp+".lead", func() { r.Lead = Duration(400 * time.Millisecond) })
		def(rp+".hold", func() { r.Hold = Duration(800 * time.Millisecond) })
	}
	if b := c.External.BLF; b != nil {
		def("external.blf.expires", func() { b.Expires = Duration(600 * time.Second) })
	}
	def("labels.record_prefix", func() { c.Labels.RecordPrefix = "*7" })
	def("labels.announcement_prefix", func() { c.Labels.AnnouncementPrefix = "*8" })
	for pn, p := range c.Pages {
		if p == nil {
			p = &PageExt{}
			c.Pages[pn] = p
		}
		pp := "pages." + pn
		def(pp+".mode", func() { p.Mode = "live" })
		def(pp+".priority", func() { p.Priority = "live" })
		def(pp+".max_length", func() { p.MaxLen = Duration(60 * time.Second) })
	}
}

// DefaultSpeech is announce.speech when the config sets none of it: the
// settings the intelligibility bench chose (internal/announce.DefaultPaging
// holds the same values; a test keeps them equal).
var DefaultSpeech = Speech{
	Rate:         1.1,
	DigitGap:     Duration(100 * time.Millisecond),
	SlotRepeat:   2,
	SlotEmphasis: 2,
	HighPass:     200,
	Presence:     4,
	Zero:         true,
}

// defaultSpeech fills the keys of a speech section p that the file left
// out from def.
func defaultSpeech(set func(string, func()), p string, s *Speech, def Speech) {
	set(p+".plain", func() { s.Plain = def.Plain })
	set(p+".rate", func() { s.Rate = def.Rate })
	set(p+".digit_gap", func() { s.DigitGap = def.DigitGap })
	set(p+".slot_repeat", func() { s.SlotRepeat = def.SlotRepeat })
	set(p+".slot_emphasis", func() { s.SlotEmphasis = def.SlotEmphasis })
	set(p+".high_pass", func() { s.HighPass = def.HighPass })
	set(p+".presence", func() { s.Presence = def.Presence })
	set(p+".zero", func() { s.Zero = def.Zero })
}

func validateSpeech(ps *problems, p string, s Speech) {
	if s.Rate < 0.5 || s.Rate > 2 {
		ps.add(p+".rate", "%g is out of range 0.5-2", s.Rate)
	}
	if s.DigitGap < 0 || s.DigitGap.D() > time.Second {
		ps.add(p+".digit_gap", "%s is out of range 0-1s", s.DigitGap)
	}
	if s.SlotRepeat < 1 || s.SlotRepeat > 3 {
		ps.add(p+".slot_repeat", "%d is out of range 1-3", s.SlotRepeat)
	}
	if s.SlotEmphasis < 0 || s.SlotEmphasis > 6 {
		ps.add(p+".slot_emphasis", "%g dB is out of range 0-6", s.SlotEmphasis)
	}
	if s.HighPass != 0 && (s.HighPass < 50 || s.HighPass > 500) {
		ps.add(p+".high_pass", "%g Hz is out of range 50-500 (0 turns it off)", s.HighPass)
	}
	if s.Presence < 0 || s.Presence > 9 {
		ps.add(p+".presence", "%g dB is out of range 0-9", s.Presence)
	}
}

func defaultSlotAnnounce(ps *problems, p string, a *SlotAnnounce) {
	if !ps.set(p + ".repeat_max") {
		a.RepeatMax = 3
	}
}

var (
	zoneNameRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	digitsRe    = regexp.MustCompile(`^[0-9]+$`)
	dtmfRe      = regexp.MustCompile(`^[0-9*#A-Da-d]+$`)
	patternRe   = regexp.MustCompile(`^\+?[0-9Xx*#]*\.?$`)
	headerRe    = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]+(=.*)?$`)
	sipHeaderRe = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]+:\s*\S.*$`)
)

// TemplateFields are the placeholders announcement templates may use.
var TemplateFields = []string{"slot", "label", "caller", "parker", "zone", "lot"}

// CheckTemplate reports a problem with an announcement template.
func CheckTemplate(t string) error {
	rest := t
	for {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			return nil
		}
		if rest[i] == '}' {
			return fmt.Errorf("template %q: unmatched }", t)
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("template %q: unclosed {", t)
		}
		f := rest[i+1 : i+j]
		known := false
		for _, k := range TemplateFields {
			known = known || f == k
		}
		if !known {
			return fmt.Errorf("template %q: unknown field {%s} (known: {%s})", t, f, strings.Join(TemplateFields, "}, {"))
		}
		rest = rest[i+j+1:]
	}
}

// Presets are the SIP output auto-answer presets.
var Presets = []string{"algo", "cyberdata", "bogen", "valcom", "polycom", "yealink", "generic"}

// BuiltinChimes are the chimes parkpage generates itself.
var BuiltinChimes = []string{"beep", "four-tone", "none", "single", "three-tone", "two-tone"}

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (c *Config) validate(ps *problems) {
	if c.StateDir == "" {
		ps.add("state_dir", "must not be empty")
	}
	if !oneOf(c.Log.Format, "text", "json") {
		ps.add("log.format", "%q is not text or json", c.Log.Format)
	}
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		ps.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		ps.add("http.listen", "%q is not host:port", c.HTTP.Listen)
	}
	if h := c.HTTP.PasswordHash; h != "" && !strings.HasPrefix(h, "$2") {
		ps.add("http.password_hash", "not a bcrypt hash (make one with: parkpage hash-password)")
	}
	for i, t := range c.HTTP.BearerTokens {
		if len(t) < 16 {
			ps.add(fmt.Sprintf("http.bearer_tokens[%d]", i), "too short: use at least 16 random characters")
		}
	}
	c.validateSIP(ps)
	c.validatePark(ps)
	c.validateAnnounce(ps)
	c.validateZones(ps)
	c.validateRelays(ps)
	c.validatePages(ps)
	c.validateExternal(ps)
	c.validatePhonePages(ps)
	c.validateLabels(ps)
}

func (c *Config) validateLabels(ps *problems) {
	l := &c.Labels
	for _, k := range []struct{ key, v string }{{"labels.record_prefix", l.RecordPrefix}, {"labels.announcement_prefix", l.AnnouncementPrefix}} {
		if k.v == "off" {
			continue
		}
		if !dtmfRe.MatchString(k.v) {
			ps.add(k.key, "%q is not a dial prefix of digits, * and # (or off)", k.v)
		}
	}
	if l.RecordPrefix != "off" && l.RecordPrefix == l.AnnouncementPrefix {
		ps.add("labels.announcement_prefix", "%q is also labels.record_prefix: use two prefixes", l.AnnouncementPrefix)
	}
	c.checkPickup(ps, "labels.allow", l.Allow)
}

func (c *Config) validateExternal(ps *problems) {
	e := &c.External
	if a := e.AMI; a != nil {
		if a.Address == "" {
			ps.add("external.ami.address", "missing: the AMI host:port, e.g. pbx.lan:5038")
		} else if _, _, err := net.SplitHostPort(a.Address); err != nil {
			ps.add("external.ami.address", "%q is not host:port", a.Address)
		}
		if a.Username == "" {
			ps.add("external.ami.username", "missing: the manager.conf user")
		}
	}
	if b := e.BLF; b != nil {
		if !strings.HasPrefix(b.Server, "sip:") {
			ps.add("external.blf.server", "%q is not a SIP URI (write e.g. sip:pbx.lan:5060)", b.Server)
		}
		// listen is no longer used (NOTIFYs arrive on the SIP port); a
		// value must still be well formed.
		if h, _, err := net.SplitHostPort(b.Listen); b.Listen != "" && (err != nil || net.ParseIP(h) == nil || net.ParseIP(h).IsUnspecified()) {
			ps.add("external.blf.listen", "%q is not ip:port with an address the PBX can reach", b.Listen)
		}
		if b.Slots.Len() <= 0 || b.Slots.First == 0 {
			ps.add("external.blf.slots", "missing: the PBX's slot range, e.g. 701-710")
		} else if b.Slots.Len() > 100 {
			ps.add("external.blf.slots", "%d slots: at most 100", b.Slots.Len())
		}
		if b.URI != "" && !strings.Contains(b.URI, "{slot}") {
			ps.add("external.blf.uri", "%q has no {slot}", b.URI)
		}
		if b.Expires.D() < 60*time.Second || b.Expires.D() > 24*time.Hour {
			ps.add("external.blf.expires", "%s is out of range 60s-24h", b.Expires)
		}
	}
	for i, t := range e.WebhookTokens {
		if len(t) < 16 {
			ps.add(fmt.Sprintf("external.webhook_tokens[%d]", i), "too short: use at least 16 random characters")
		}
	}
	for _, k := range sortedKeys(e.SlotMap) {
		n, err := strconv.Atoi(e.SlotMap[k])
		if !digitsRe.MatchString(k) || err != nil || c.LotOf(n) == nil {
			ps.add("external.slot_map."+k, "%q must map a PBX slot number to a local slot", e.SlotMap[k])
		}
	}
}

func checkHostPort(ps *problems, path, v string) {
	h, p, err := net.SplitHostPort(v)
	if err != nil {
		ps.add(path, "%q is not host:port", v)
		return
	}
	if h != "" && net.ParseIP(h) == nil {
		ps.add(path, "%q: host must be an IP address", v)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		ps.add(path, "%q: bad port", v)
	}
}

func (c *Config) validateSIP(ps *problems) {
	s := &c.SIP
	if len(s.Listen) == 0 && s.TLS == nil {
		ps.add("sip.listen", "no SIP listener configured")
	}
	for i, l := range s.Listen {
		p := fmt.Sprintf("sip.listen[%d]", i)
		if !oneOf(l.Transport, "udp", "tcp") {
			ps.add(p+".transport", "%q is not udp or tcp (TLS goes under sip.tls)", l.Transport)
		}
		checkHostPort(ps, p+".address", l.Address)
	}
	if s.TLS != nil {
		checkHostPort(ps, "sip.tls.address", s.TLS.Address)
		checkFile(ps, "sip.tls.cert", s.TLS.Cert, true)
		checkFile(ps, "sip.tls.key", s.TLS.Key, true)
	}
	if s.PBX != "" && !strings.HasPrefix(s.PBX, "sip:") && !strings.HasPrefix(s.PBX, "sips:") {
		ps.add("sip.pbx", "%q is not a SIP URI (write e.g. sip:pbx.lan:5060)", s.PBX)
	}
	if s.ParkerHeader != "" && !headerRe.MatchString(s.ParkerHeader) {
		ps.add("sip.parker_header", "%q is not a header name", s.ParkerHeader)
	}
	for _, u := range sortedKeys(s.Users) {
		if !digitsRe.MatchString(u) && !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(u) {
			ps.add("sip.users."+u, "user name may hold letters, digits, '.', '_' and '-' only")
		}
		if s.Users[u] == nil || s.Users[u].Password == "" {
			ps.add("sip.users."+u+".password", "missing: every SIP user needs a password")
		}
	}
	if s.RTPPorts.First < 1024 || s.RTPPorts.Last > 65535 || s.RTPPorts.Len() < 2 {
		ps.add("sip.rtp_ports", "%s: want a range of at least 2 ports within 1024-65535", s.RTPPorts)
	}
	s.warnWideTrust(ps)
}

// privateRanges are networks shared by every device on a site's LAN (and
// often its guest Wi-Fi): trusting one whole lets any of them park and
// pick up calls without registering.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// warnWideTrust warns when a listener reachable from the network trusts a
// whole private range (or more).
func (s *SIP) warnWideTrust(ps *problems) {
	var exposed string
	for i, l := range s.Listen {
		if !loopbackHost(l.Address) {
			exposed = fmt.Sprintf("sip.listen[%d] %s", i, l.Address)
			break
		}
	}
	if exposed == "" && s.TLS != nil && !loopbackHost(s.TLS.Address) {
		exposed = "sip.tls " + s.TLS.Address
	}
	if exposed == "" {
		return
	}
	for i, t := range s.Trusted {
		for _, r := range privateRanges {
			if t.Prefix.Bits() <= r.Bits() && t.Prefix.Overlaps(r) {
				ps.warn(fmt.Sprintf("sip.trusted[%d]", i), "%s trusts the whole private range %s on %s: any device there may park and pick up calls without registering; trust the PBX by name (sip.pbx, or its address in sip.trusted) and let phones register (sip.users)", t.Prefix, r, exposed)
				break
			}
		}
	}
}

// loopbackHost reports whether a listener's host:port is on loopback only.
func loopbackHost(hostport string) bool {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// groups returns every group named by a SIP user.
func (c *Config) groups() map[string]bool {
	g := map[string]bool{}
	for _, u := range c.SIP.Users {
		if u != nil {
			for _, n := range u.Groups {
				g[n] = true
			}
		}
	}
	return g
}

func (c *Config) checkPickup(ps *problems, path string, list []string) {
	groups := c.groups()
	for i, e := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		if g, ok := strings.CutPrefix(e, "@"); ok {
			if !groups[g] {
				ps.add(p, "group %q is not given to any user under sip.users", g)
			}
		} else if e == "" || strings.ContainsAny(e, " @:") {
			ps.add(p, "%q is not a user (write 1001) or group (write @reception)", e)
		}
	}
}

func (c *Config) checkSlotAnnounce(ps *problems, path string, a *SlotAnnounce) {
	if a == nil {
		return
	}
	for i, z := range a.Zones {
		if _, ok := c.Zones[z]; !ok {
			ps.add(fmt.Sprintf("%s.zones[%d]", path, i), "zone %q does not exist", z)
		}
	}
	if a.Template != "" {
		if err := CheckTemplate(a.Template); err != nil {
			ps.add(path+".template", "%v", err)
		}
	}
	checkFile(ps, path+".recording", a.Recording, false)
	if a.RepeatEvery != 0 && a.RepeatEvery.D() < 10*time.Second {
		ps.add(path+".repeat_every", "%s is too often: at least 10s", a.RepeatEvery)
	}
	if a.RepeatMax < 0 || a.RepeatMax > 20 {
		ps.add(path+".repeat_max", "%d is out of range 0-20", a.RepeatMax)
	}
}

func checkFile(ps *problems, path, file string, required bool) {
	if file == "" {
		if required {
			ps.add(path, "missing")
		}
		return
	}
	if _, err := os.Stat(file); err != nil {
		ps.add(path, "%q: no such file", file)
	}
}

func checkTimeout(ps *problems, path string, d Duration, what string) {
	switch {
	case d <= 0:
		ps.add(path, "%s must be more than zero: a parked call is never left forever", what)
	case d.D() > time.Hour:
		ps.add(path, "%s is more than the maximum 1h", d)
	}
}

func (c *Config) validatePark(ps *problems) {
	exts := map[string]string{} // extension -> owner path
	claim := func(path, ext string) {
		if prev, ok := exts[ext]; ok {
			ps.add(path, "extension %s is already used by %s", ext, prev)
			return
		}
		exts[ext] = path
	}
	if len(c.Park.Lots) == 0 {
		ps.add("park.lots", "at least one park lot is needed")
	}
	names := map[string]bool{}
	for i, l := range c.Park.Lots {
		p := fmt.Sprintf("park.lots[%d]", i)
		if names[l.Name] {
			ps.add(p+".name", "lot name %q used twice", l.Name)
		}
		names[l.Name] = true
		if !digitsRe.MatchString(l.Extension) {
			ps.add(p+".extension", "%q is not an extension number", l.Extension)
		} else {
			claim(p+".extension", l.Extension)
		}
		if l.Slots.Len() <= 0 || l.Slots.First == 0 {
			ps.add(p+".slots", "missing: give a slot range like 701-710")
		} else {
			if l.Slots.Len() > 100 {
				ps.add(p+".slots", "%d slots: at most 100 in one lot", l.Slots.Len())
			} else if l.Slots.Len() > 10 {
				ps.warn(p+".slots", "%d slots in one lot: more than 10 is clutter on phones' BLF keys", l.Slots.Len())
			}
			for n := l.Slots.First; n <= l.Slots.Last && n-l.Slots.First <= 100; n++ {
				claim(p+".slots", strconv.Itoa(n))
			}
		}
		if !oneOf(l.FindSlot, "next", "first") {
			ps.add(p+".find_slot", "%q is not next or first", l.FindSlot)
		}
		checkTimeout(ps, p+".timeout", l.Timeout, "timeout")
		if l.RingbackTime <= 0 || l.RingbackTime.D() > 5*time.Minute {
			ps.add(p+".ringback_time", "%s is out of range (more than 0, at most 5m)", l.RingbackTime)
		}
		if l.Fallback != "" && strings.ContainsAny(l.Fallback, " <>") {
			ps.add(p+".fallback", "%q is not a SIP URI or number", l.Fallback)
		}
		if !oneOf(l.OnTaken, "refuse", "next") {
			ps.add(p+".on_taken", "%q is not refuse or next", l.OnTaken)
		}
		if !oneOf(l.OnEmpty, "consult", "reject") {
			ps.add(p+".on_empty", "%q is not consult or reject", l.OnEmpty)
		}
		c.checkPickup(ps, p+".pickup", l.Pickup)
		c.checkSlotAnnounce(ps, p+".announce", l.Announce)
	}
	for _, k := range sortedKeys(c.Park.Slots) {
		s := c.Park.Slots[k]
		p := "park.slots." + k
		n, err := strconv.Atoi(k)
		if err != nil || c.LotOf(n) == nil {
			ps.add(p, "slot %s is not in any lot's slot range", k)
		}
		if ps.set(p + ".timeout") {
			checkTimeout(ps, p+".timeout", s.Timeout, "timeout")
		}
		c.checkPickup(ps, p+".pickup", s.Pickup)
		c.checkSlotAnnounce(ps, p+".announce", s.Announce)
	}
	pr := &c.Park.Privacy
	for i, h := range pr.Headers {
		if !headerRe.MatchString(h) {
			ps.add(fmt.Sprintf("park.privacy.headers[%d]", i), "%q is not a header name or name=value", h)
		}
	}
	for i, pat := range pr.Calling {
		if !patternRe.MatchString(pat) || pat == "" {
			ps.add(fmt.Sprintf("park.privacy.calling[%d]", i), "%q is not a number pattern (digits, X, trailing .)", pat)
		}
	}
	for i, pat := range pr.Called {
		if !patternRe.MatchString(pat) || pat == "" {
			ps.add(fmt.Sprintf("park.privacy.called[%d]", i), "%q is not a number pattern (digits, X, trailing .)", pat)
		}
	}
	if c.Park.BLF.MaxExpires.D() < time.Minute || c.Park.BLF.MaxExpires.D() > 24*time.Hour {
		ps.add("park.blf.max_expires", "%s is out of range 1m-24h", c.Park.BLF.MaxExpires)
	}
	if st, err := os.Stat(c.Park.Music); c.Park.Music != "" && err != nil {
		ps.add("park.music", "%q: no such file or directory", c.Park.Music)
	} else {
		_ = st
	}
	if err := CheckTemplate(c.Park.Whisper); err != nil {
		ps.add("park.whisper", "%v", err)
	}
	if c.Park.RTPTimeout.D() < 5*time.Second {
		ps.add("park.rtp_timeout", "%s is too short: at least 5s", c.Park.RTPTimeout)
	}
	if c.Park.ResumeWithin.D() < time.Second {
		ps.add("park.resume_within", "%s is too short: at least 1s", c.Park.ResumeWithin)
	}
	for _, pn := range sortedKeys(c.Pages) {
		if !digitsRe.MatchString(pn) {
			ps.add("pages."+pn, "%q is not an extension number", pn)
		} else {
			claim("pages."+pn, pn)
		}
	}
}

// LotOf returns the lot whose slot range holds slot n, or nil.
func (c *Config) LotOf(n int) *Lot {
	for _, l := range c.Park.Lots {
		if l.Slots.Contains(n) {
			return l
		}
	}
	return nil
}

func (c *Config) validateAnnounce(ps *problems) {
	a := &c.Announce
	if a.Voice == "" {
		ps.add("announce.voice", "must not be empty")
	}
	if err := CheckTemplate(a.Template); err != nil {
		ps.add("announce.template", "%v", err)
	}
	if !oneOf(a.Chime, BuiltinChimes...) {
		if !strings.HasSuffix(strings.ToLower(a.Chime), ".wav") {
			ps.add("announce.chime", "%q is not a built-in chime (%s) or a .wav file", a.Chime, strings.Join(BuiltinChimes, ", "))
		} else {
			checkFile(ps, "announce.chime", a.Chime, true)
		}
	}
	if a.Repeat < 1 || a.Repeat > 5 {
		ps.add("announce.repeat", "%d is out of range 1-5", a.Repeat)
	}
	if a.Loudness < -40 || a.Loudness > -6 {
		ps.add("announce.loudness", "%g dBFS is out of range -40 to -6", a.Loudness)
	}
	if a.Peak < -20 || a.Peak > 0 {
		ps.add("announce.peak", "%g dBFS is out of range -20 to 0", a.Peak)
	} else if a.Loudness >= -40 && a.Loudness <= -6 && a.Peak < a.Loudness+10 {
		// Speech keeps a crest factor of about 10 dB even when limited.
		ps.add("announce.peak", "%g dBFS must be at least 10 dB above announce.loudness (%g dBFS)", a.Peak, a.Loudness)
	}
	if a.LeadIn < 0 || a.LeadIn.D() > 2*time.Second {
		ps.add("announce.lead_in", "%s is out of range 0-2s", a.LeadIn)
	}
	validateSpeech(ps, "announce.speech", a.Speech)
	if a.PromptDir != "" {
		checkFile(ps, "announce.prompt_dir", a.PromptDir, false)
	}
}

func isMulticast4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4() && a.IsMulticast()
}

func (c *Config) validateZones(ps *problems) {
	for _, zn := range sortedKeys(c.Zones) {
		z := c.Zones[zn]
		zp := "zones." + zn
		if !zoneNameRe.MatchString(zn) {
			ps.add(zp, "zone name %q: use lower-case letters, digits, '-' and '_'", zn)
		}
		if len(z.Outputs) == 0 && len(z.Relays) == 0 {
			ps.add(zp, "zone has no outputs and no relays")
		}
		if z.Template != "" {
			if err := CheckTemplate(z.Template); err != nil {
				ps.add(zp+".template", "%v", err)
			}
		}
		if z.Voice == "" {
			ps.add(zp+".voice", "must not be empty")
		}
		validateSpeech(ps, zp+".speech", z.Speech)
		if z.MaxPage.D() < time.Second || z.MaxPage.D() > 15*time.Minute {
			ps.add(zp+".max_page", "%s is out of range 1s-15m", z.MaxPage)
		}
		switch z.Align {
		case AlignTogether, AlignLatency:
		default:
			ps.add(zp+".align", "%q: write together (outputs start in step) or latency (each as soon as it can)", z.Align)
		}
		if z.AlignWait.D() < 250*time.Millisecond || z.AlignWait.D() > 30*time.Second {
			ps.add(zp+".align_wait", "%s is out of range 250ms-30s", z.AlignWait)
		}
		for i, r := range z.Relays {
			if _, ok := c.Relays[r]; !ok {
				ps.add(fmt.Sprintf("%s.relays[%d]", zp, i), "relay %q does not exist", r)
			}
		}
		for i, o := range z.Outputs {
			c.validateOutput(ps, fmt.Sprintf("%s.outputs[%d]", zp, i), o)
		}
	}
}

func (c *Config) validateOutput(ps *problems, p string, o *Output) {
	multicast := func() {
		if o.Group == "" {
			ps.add(p+".group", "missing: a multicast output needs its group address")
		} else if !isMulticast4(o.Group) {
			ps.add(p+".group", "%q is not an IPv4 multicast address", o.Group)
		}
		if o.Port < 1 || o.Port > 65535 {
			if !ps.set(p + ".port") {
				ps.add(p+".port", "missing: a multicast output needs its UDP port")
			} else {
				ps.add(p+".port", "%d is not a UDP port", o.Port)
			}
		}
		if o.TTL != nil && (*o.TTL < 1 || *o.TTL > 255) {
			ps.add(p+".ttl", "%d is out of range 1-255", *o.TTL)
		}
		if o.Interface != "" && !regexp.MustCompile(`^[A-Za-z0-9._:-]+$`).MatchString(o.Interface) {
			ps.add(p+".interface", "%q is not an interface name or address", o.Interface)
		}
	}
	switch o.Type {
	case OutputPolycom:
		multicast()
		for _, ch := range []struct {
			k string
			v int
		}{{"channel", o.Channel}, {"emergency_channel", o.EmergencyCh}, {"priority_channel", o.PriorityCh}} {
			if ch.v < 1 || ch.v > 50 {
				ps.add(p+"."+ch.k, "%d is out of range 1-50 (1-25 push-to-talk, 26-50 group paging)", ch.v)
			}
		}
		switch o.Codec {
		case "pcmu", "g722":
		case "pcma":
			if !o.AllowG711A {
				ps.add(p+".codec", "pcma is not in Polycom's packet format document; set allow_g711a: true to use it anyway")
			}
		default:
			ps.add(p+".codec", "%q: Polycom paging sends pcmu or g722", o.Codec)
		}
		if f := o.Frame.D(); f != 20*time.Millisecond && f != 30*time.Millisecond {
			ps.add(p+".frame", "%v: Polycom frames are 20ms or 30ms", f)
		}
		if o.SourcePort != nil && (*o.SourcePort < 0 || *o.SourcePort > 65535) {
			ps.add(p+".source_port", "%d is not a UDP port (0: a random port)", *o.SourcePort)
		}
		if len(o.CallerID) > 13 {
			ps.add(p+".caller_id", "%q is longer than the 13 characters phones show", o.CallerID)
		}
		for _, r := range o.CallerID {
			if r < 0x20 || r > 0x7e {
				ps.add(p+".caller_id", "%q: ASCII letters only", o.CallerID)
				break
			}
		}
	case OutputRTP:
		multicast()
		if !oneOf(o.Codec, "pcmu", "pcma", "g722", "opus") {
			ps.add(p+".codec", "%q is not pcmu, pcma, g722 or opus", o.Codec)
		}
		if o.PayloadType != nil && (*o.PayloadType < 0 || *o.PayloadType > 127) {
			ps.add(p+".payload_type", "%d is out of range 0-127", *o.PayloadType)
		}
	case OutputSIP:
		if o.URI == "" {
			ps.add(p+".uri", "missing: a SIP output needs the URI to call, e.g. sip:page@amp.lan")
		} else if !strings.HasPrefix(o.URI, "sip:") && !strings.HasPrefix(o.URI, "sips:") {
			ps.add(p+".uri", "%q is not a SIP URI", o.URI)
		}
		if !oneOf(o.Preset, Presets...) {
			ps.add(p+".preset", "%q is not one of %s", o.Preset, strings.Join(Presets, ", "))
		}
		if !oneOf(o.DTMF, "rfc4733", "inband", "info") {
			ps.add(p+".dtmf", "%q is not rfc4733, inband or info", o.DTMF)
		}
		if o.ZoneCode != "" && !dtmfRe.MatchString(o.ZoneCode) {
			ps.add(p+".zone_code", "%q: DTMF digits are 0-9, *, # and A-D", o.ZoneCode)
		}
		for i, h := range o.Headers {
			if !sipHeaderRe.MatchString(h) {
				ps.add(fmt.Sprintf("%s.headers[%d]", p, i), "%q is not \"Name: value\"", h)
			}
		}
		if o.DigitOn.D() < 40*time.Millisecond || o.DigitOn.D() > time.Second {
			ps.add(p+".digit_on", "%s is out of range 40ms-1s", o.DigitOn)
		}
		if o.DigitGap.D() < 40*time.Millisecond || o.DigitGap.D() > time.Second {
			ps.add(p+".digit_gap", "%s is out of range 40ms-1s", o.DigitGap)
		}
		if o.Settle < 0 || o.Settle.D() > 10*time.Second {
			ps.add(p+".settle", "%s is out of range 0-10s", o.Settle)
		}
		if o.AfterCode < 0 || o.AfterCode.D() > 10*time.Second {
			ps.add(p+".after_code", "%s is out of range 0-10s", o.AfterCode)
		}
		if o.Answer.D() < time.Second || o.Answer.D() > time.Minute {
			ps.add(p+".answer_timeout", "%s is out of range 1s-1m", o.Answer)
		}
		if o.Retry < 0 || o.Retry > 3 {
			ps.add(p+".retry", "%d is out of range 0-3", o.Retry)
		}
	case OutputLineOut:
		if o.Device == "" {
			ps.add(p+".device", "missing: a line-out output needs its sound device, e.g. hw:0,0")
		}
		if !oneOf(strconv.Itoa(o.Rate), "8000", "16000", "32000", "44100", "48000") {
			ps.add(p+".rate", "%d is not a supported rate (8000, 16000, 32000, 44100, 48000)", o.Rate)
		}
	case "":
		ps.add(p+".type", "missing: polycom, rtp, sip or lineout")
	default:
		ps.add(p+".type", "%q is not polycom, rtp, sip or lineout", o.Type)
	}
}

func (c *Config) validateRelays(ps *problems) {
	pins := map[string]string{}
	for _, rn := range sortedKeys(c.Relays) {
		r := c.Relays[rn]
		p := "relays." + rn
		if !zoneNameRe.MatchString(rn) {
			ps.add(p, "relay name %q: use lower-case letters, digits, '-' and '_'", rn)
		}
		if r.Pin == "" {
			ps.add(p+".pin", "missing: the GPIO pin, e.g. GPIO17")
		} else if prev, ok := pins[r.Pin]; ok {
			ps.add(p+".pin", "pin %s is already used by relay %s", r.Pin, prev)
		} else {
			pins[r.Pin] = rn
		}
		if !oneOf(r.Role, RoleZone, RolePageActive) {
			ps.add(p+".role", "%q is not zone or page_active", r.Role)
		}
		if r.Lead < 0 || r.Lead.D() > 5*time.Second {
			ps.add(p+".lead", "%s is out of range 0-5s", r.Lead)
		}
		if r.Hold < 0 || r.Hold.D() > 10*time.Second {
			ps.add(p+".hold", "%s is out of range 0-10s", r.Hold)
		}
	}
}

func (c *Config) validatePages(ps *problems) {
	for _, pn := range sortedKeys(c.Pages) {
		pg := c.Pages[pn]
		p := "pages." + pn
		if len(pg.Zones) == 0 {
			ps.add(p+".zones", "missing: which zones this extension pages")
		}
		for i, z := range pg.Zones {
			if _, ok := c.Zones[z]; !ok {
				ps.add(fmt.Sprintf("%s.zones[%d]", p, i), "zone %q does not exist", z)
			}
		}
		if !oneOf(pg.Mode, "live", "store") {
			ps.add(p+".mode", "%q is not live or store", pg.Mode)
		}
		if !oneOf(pg.Priority, "live", "emergency") {
			ps.add(p+".priority", "%q is not live or emergency", pg.Priority)
		}
		if pg.MaxLen.D() < time.Second || pg.MaxLen.D() > 15*time.Minute {
			ps.add(p+".max_length", "%s is out of range 1s-15m", pg.MaxLen)
		}
		c.checkPickup(ps, p+".allow", pg.Allow)
	}
}
