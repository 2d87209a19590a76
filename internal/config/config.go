// Package config is parkpage's configuration: one typed struct decoded
// strictly from YAML, defaulted, then validated as a whole. Every problem
// is reported at once with its file, line, column and key path. Nothing
// else in parkpage reads config files.
package config

import (
	_ "embed"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Default is the embedded default config: it is what `parkpage run` uses
// without -config and what `parkpage print-default-config` prints.
//
//go:embed default.yaml
var Default []byte

// Duration is a time.Duration written in config as "90s", "500ms", "2m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the whole appliance configuration.
type Config struct {
	// StateDir holds what survives a restart (registrations, parked-call
	// journal). Default /var/lib/parkpage.
	StateDir string `yaml:"state_dir"`
	Log      Log    `yaml:"log"`
	HTTP     HTTP   `yaml:"http"`
	SIP      SIP    `yaml:"sip"`
	Park     Park   `yaml:"park"`
	// Announce is the default announcement rendering; zones and slots
	// override the template.
	Announce Announce `yaml:"announce"`
	// Zones are named groups of outputs that are paged together.
	Zones map[string]*Zone `yaml:"zones"`
	// Relays are GPIO outputs driven while pages play.
	Relays map[string]*Relay `yaml:"relays"`
	// Pages are extensions a phone dials to page live.
	Pages map[string]*PageExt `yaml:"pages"`
	// External reads park events from a PBX that parks calls itself.
	External External `yaml:"external"`
	// PhonePages are phones' own multicast pages (Polycom group paging,
	// Yealink RTP multicast) relayed to zones' amplifiers, line outs and
	// relays (phonepages.go).
	PhonePages []*PhonePage `yaml:"phone_pages"`
	// Labels are slot labels and announcements recorded from a phone
	// (labels.go in gateway/labelrec).
	Labels Labels `yaml:"labels"`

	// Source names where the config came from ("embedded default" or a path).
	Source string `yaml:"-"`
}

// Log configures logging.
type Log struct {
	Format string `yaml:"format"` // text (default) or json
	Level  string `yaml:"level"`  // debug, info (default), warn, error
}

// HTTP configures the admin web page and JSON API.
type HTTP struct {
	// Listen is host:port. Without a credential the server is forced onto
	// 127.0.0.1 whatever this says. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// PasswordHash is a bcrypt hash ("$2a$..." from `parkpage hash-password`)
	// for HTTP basic auth as user "admin".
	PasswordHash string `yaml:"password_hash"`
	// BearerTokens are accepted as "Authorization: Bearer TOKEN".
	BearerTokens []string `yaml:"bearer_tokens"`
}

// HasCredential reports whether any admin credential is configured.
func (h HTTP) HasCredential() bool { return h.PasswordHash != "" || len(h.BearerTokens) > 0 }

// SIP configures the SIP endpoint shared by the park server, registrar,
// BLF notifier and page extensions.
type SIP struct {
	// Listen lists transport endpoints. Default UDP and TCP on 0.0.0.0:5060.
	Listen []Listener `yaml:"listen"`
	// TLS optionally adds a TLS listener.
	TLS *TLS `yaml:"tls"`
	// Domain is the host part parkpage puts in its own URIs (default: the
	// address the request arrived on).
	Domain string `yaml:"domain"`
	// Trusted lists source networks allowed to send requests without
	// registering. Default loopback only; the sip.pbx host is trusted too.
	Trusted []CIDR `yaml:"trusted"`
	// PBX is the route for calls parkpage places to numbers that are not
	// registered to it (ring-back, fallback): a SIP URI host[:port], e.g.
	// "sip:pbx.lan:5060". Empty: only registered contacts are called.
	PBX string `yaml:"pbx"`
	// ParkerHeader names a header carrying the parker when a PBX drops
	// Referred-By. Default "X-Parker".
	ParkerHeader string `yaml:"parker_header"`
	// Users are accounts phones may register with (digest auth).
	Users map[string]*User `yaml:"users"`
	// RTPPorts is the UDP port range for media, "10000-10999".
	RTPPorts Range `yaml:"rtp_ports"`
	// UserAgent is sent in requests and responses. Default "parkpage".
	UserAgent string `yaml:"user_agent"`
}

// Listener is one SIP transport endpoint.
type Listener struct {
	Transport string `yaml:"transport"` // udp or tcp
	Address   string `yaml:"address"`   // host:port
}

// TLS is a TLS listener with its certificate.
type TLS struct {
	Address string `yaml:"address"` // host:port, default 0.0.0.0:5061
	Cert    string `yaml:"cert"`    // PEM certificate chain file
	Key     string `yaml:"key"`     // PEM private key file
}

// User is a SIP account.
type User struct {
	Password string   `yaml:"password"`
	Groups   []string `yaml:"groups"`
	// Display is the name shown to others (optional).
	Display string `yaml:"display"`
}

// Park configures the park server.
type Park struct {
	// Lots are park extensions, each with its own slot range and policy.
	// Default: one lot, extension 700, slots 701-710.
	Lots []*Lot `yaml:"lots"`
	// Slots hold per-slot settings keyed by slot number.
	Slots map[string]*Slot `yaml:"slots"`
	// Privacy rules refuse parking of sensitive calls.
	Privacy Privacy `yaml:"privacy"`
	// BLF tunes the dialog-event notifier.
	BLF BLF `yaml:"blf"`
	// Music is hold music: a WAV file or a directory of WAV files played in
	// turn. Empty: the bundled default.
	Music string `yaml:"music"`
	// Whisper is said to whoever answers a ring-back or fallback call before
	// the caller is connected. Default "returning call from {slot}".
	Whisper string `yaml:"whisper"`
	// RTPTimeout cleans up a parked call whose caller sends no RTP for this
	// long. Default 60s.
	RTPTimeout Duration `yaml:"rtp_timeout"`
	// ResumeWithin is how old a parked call's journal entry may be for a
	// restarted parkpage to take the call over; older ones get a BYE.
	// Default 60s.
	ResumeWithin Duration `yaml:"resume_within"`
}

// Lot is one park extension with its slots.
type Lot struct {
	Name      string `yaml:"name"`      // default "default", or the extension
	Extension string `yaml:"extension"` // dialled to park in the next free slot
	Slots     Range  `yaml:"slots"`     // e.g. "701-710"
	// FindSlot is "next" (after the last used, default) or "first" (lowest free).
	FindSlot string `yaml:"find_slot"`
	// Timeout is how long a call stays parked before ring-back. Default 90s,
	// at most 1h; zero is an error (a parked call is never left forever).
	Timeout Duration `yaml:"timeout"`
	// RingbackTime is how long the parker's phone rings. Default 30s.
	RingbackTime Duration `yaml:"ringback_time"`
	// Fallback is a SIP URI or number called when ring-back is not answered.
	Fallback string `yaml:"fallback"`
	// OnTaken is what a directed park to an occupied slot does: "refuse"
	// (486, default) or "next" (park in the next free slot).
	OnTaken string `yaml:"on_taken"`
	// OnEmpty is what a plain call to an empty slot does: "consult" (answer as
	// the consultation leg of an attended transfer, default) or "reject" (404).
	OnEmpty string `yaml:"on_empty"`
	// Pickup lists users ("1001") and groups ("@reception") allowed to
	// retrieve. Empty: everyone.
	Pickup []string `yaml:"pickup"`
	// Label is the default label of this lot's slots.
	Label string `yaml:"label"`
	// Announce is what parking in this lot announces.
	Announce *SlotAnnounce `yaml:"announce"`
}

// Slot is per-slot policy; unset fields come from its lot.
type Slot struct {
	Label    string        `yaml:"label"`
	Timeout  Duration      `yaml:"timeout"`
	Pickup   []string      `yaml:"pickup"`
	Announce *SlotAnnounce `yaml:"announce"`
}

// SlotAnnounce is how a park is announced.
type SlotAnnounce struct {
	// Enabled turns announcements on (default true when zones are set).
	Enabled *bool `yaml:"enabled"`
	// Zones to page. Empty: no announcement.
	Zones []string `yaml:"zones"`
	// Template overrides the announce template, e.g. "{label} call on {slot}".
	Template string `yaml:"template"`
	// Recording is an installer's WAV used instead of text-to-speech.
	Recording string `yaml:"recording"`
	// RepeatEvery repeats the announcement while the call stays parked.
	// Zero: announce once.
	RepeatEvery Duration `yaml:"repeat_every"`
	// RepeatMax bounds the repeats. Default 3.
	RepeatMax int `yaml:"repeat_max"`
}

// Privacy refuses parking for calls matching any rule.
type Privacy struct {
	// PrivacyHeader refuses calls carrying "Privacy: id" or "header". Default true.
	PrivacyHeader *bool `yaml:"privacy_header"`
	// Headers refuse calls carrying any of these headers (name, or name=value).
	Headers []string `yaml:"headers"`
	// Calling and Called are number patterns: digits with "X" for any digit
	// and a trailing "." for any rest, e.g. "911", "+1555XXXXXXX", "9.".
	Calling []string `yaml:"calling"`
	Called  []string `yaml:"called"`
	// Sources are networks (trunks) whose calls are never parked.
	Sources []CIDR `yaml:"sources"`
}

// BLF configures the dialog-event notifier.
type BLF struct {
	// Early reports occupied slots as "early" (keys flash) instead of
	// "confirmed" (keys lit).
	Early bool `yaml:"early"`
	// MaxExpires clamps subscription lifetimes. Default 3600s.
	MaxExpires Duration `yaml:"max_expires"`
}

// Announce is the default announcement rendering.
type Announce struct {
	Voice    string `yaml:"voice"`    // flite voice: rms (default), slt, kal16, awb; or prompts (recorded words, TTS for the rest)
	Template string `yaml:"template"` // default "Call for {label} on {slot}" (announce.DefaultTemplate)
	// Chime is a built-in chime name (two-tone, three-tone, none) or a WAV path.
	Chime    string   `yaml:"chime"`
	Repeat   int      `yaml:"repeat"`   // times the phrase is said in one announcement, default 1
	Loudness float64  `yaml:"loudness"` // target speech level in dBFS, default -18
	Peak     float64  `yaml:"peak"`     // peak ceiling in dBFS, default -1
	LeadIn   Duration `yaml:"lead_in"`  // silence before the chime, default 300ms
	// Speech tunes how the phrase is spoken for paging; zones may override
	// any of its keys (zones.NAME.speech).
	Speech Speech `yaml:"speech"`
	// PromptDir is a directory of extra recorded words for voice prompts:
	// WAV files named after the word they say (warehouse.wav, call.wav).
	PromptDir string `yaml:"prompt_dir"`
	// PromptFallback is the TTS voice of voice prompts for the words no
	// recording covers. Default rms, the default voice.
	PromptFallback string `yaml:"prompt_fallback"`
}

// Speech is paging speech (internal/announce.Paging): the defaults are
// the settings the intelligibility bench chose (README, "How
// announcements sound").
type Speech struct {
	// Plain speaks the phrase as the voice says it: none of the keys below.
	Plain bool `yaml:"plain"`
	// Rate is the TTS duration stretch: 1 the voice's own, 1.1 10% slower.
	Rate float64 `yaml:"rate"`
	// DigitGap is the pause between the slot's digits ("seven… oh…
	// four"); 0s says the slot as one phrase.
	DigitGap Duration `yaml:"digit_gap"`
	// SlotRepeat is how many times the slot is said ("call on seven oh
	// four, seven oh four"), 1-3.
	SlotRepeat int `yaml:"slot_repeat"`
	// SlotEmphasis raises the slot over the other words, dB (0-6).
	SlotEmphasis float64 `yaml:"slot_emphasis"`
	// HighPass is the corner of a gentle high-pass for small speakers, Hz
	// (50-500; 0 off).
	HighPass float64 `yaml:"high_pass"`
	// Presence boosts the consonant band around 2.5 kHz, dB (0-9).
	Presence float64 `yaml:"presence"`
	// Zero says a 0 in the slot as "zero" ("seven zero four"), not "oh",
	// which is heard as "or" and "of".
	Zero bool `yaml:"zero"`
}

// Zone is a set of outputs paged together.
type Zone struct {
	Description string    `yaml:"description"`
	Outputs     []*Output `yaml:"outputs"`
	// Relays switched on while this zone is paged (zone select).
	Relays []string `yaml:"relays"`
	// Template overrides the announcement template for this zone.
	Template string `yaml:"template"`
	// Voice overrides announce.voice for this zone.
	Voice string `yaml:"voice"`
	// Speech overrides keys of announce.speech for this zone.
	Speech Speech `yaml:"speech"`
	// MaxPage bounds one page's length. Default 60s.
	MaxPage Duration `yaml:"max_page"`
	// Align is how the zone's outputs start: AlignTogether (default) holds
	// the faster ones so every output's first audio frame leaves at once
	// (Polycom's ~0.93 s of Alerts, SIP amplifiers' answer and zone code);
	// AlignLatency starts each as soon as it can.
	Align string `yaml:"align"`
	// AlignWait bounds how long the zone waits for an output still setting
	// up (a SIP amplifier not yet answered): one answering later joins
	// late. Default 3s.
	AlignWait Duration `yaml:"align_wait"`
}

// Zone align modes.
const (
	AlignTogether = "together"
	AlignLatency  = "latency"
)

// Output types.
const (
	OutputPolycom = "polycom"
	OutputRTP     = "rtp"
	OutputSIP     = "sip"
	OutputLineOut = "lineout"
)

// Output is one destination of a zone's pages. Which fields apply depends
// on Type.
type Output struct {
	Type string `yaml:"type"` // polycom, rtp, sip, lineout

	// Multicast outputs (polycom, rtp).
	Group     string `yaml:"group"`     // IPv4 multicast group
	Port      int    `yaml:"port"`      // UDP port
	Interface string `yaml:"interface"` // interface name or address; empty: default route
	TTL       *int   `yaml:"ttl"`       // default 1
	Loopback  bool   `yaml:"loopback"`  // also deliver to listeners on this host
	Codec     string `yaml:"codec"`     // pcmu, pcma, g722, opus
	// Polycom only.
	Channel     int    `yaml:"channel"`           // 1-50; default 26 (paging group 1)
	CallerID    string `yaml:"caller_id"`         // at most 13 characters, default "Park"
	HostSerial  uint32 `yaml:"host_serial"`       // default derived from the host
	AllowG711A  bool   `yaml:"allow_g711a"`       // permit codec pcma (not in Polycom's document)
	EmergencyCh int    `yaml:"emergency_channel"` // channel for emergency pages, default 50
	PriorityCh  int    `yaml:"priority_channel"`  // default 49
	// SourcePort is the UDP port pages are sent from. Absent: the group's
	// port (as phones send, and as some receivers require); 0: a random port.
	SourcePort *int `yaml:"source_port"`
	// Frame is the audio per Transmit packet: 20ms (default) or 30ms.
	Frame Duration `yaml:"frame"`
	// RTP only.
	PayloadType *int `yaml:"payload_type"` // override (Opus default 111)

	// SIP outputs.
	URI       string   `yaml:"uri"`      // sip:page@amp.lan
	Preset    string   `yaml:"preset"`   // algo, cyberdata, bogen, valcom, polycom, yealink, generic
	Headers   []string `yaml:"headers"`  // extra "Name: value" headers
	Username  string   `yaml:"username"` // digest credentials when challenged
	Password  string   `yaml:"password"`
	ZoneCode  string   `yaml:"zone_code"`      // DTMF sent after answer, e.g. "#1" or "0000099"
	DTMF      string   `yaml:"dtmf"`           // rfc4733 (default), inband, info
	Settle    Duration `yaml:"settle"`         // wait after answer before digits, default 1s
	DigitOn   Duration `yaml:"digit_on"`       // default 100ms
	DigitGap  Duration `yaml:"digit_gap"`      // default 100ms
	AfterCode Duration `yaml:"after_code"`     // wait after the last digit, default 1s
	Answer    Duration `yaml:"answer_timeout"` // give up if not answered, default 10s
	Retry     int      `yaml:"retry"`          // retries after failure, default 0

	// Line out.
	Device string `yaml:"device"` // ALSA PCM device, e.g. /dev/snd/pcmC0D0p or hw:0,0
	Rate   int    `yaml:"rate"`   // sample rate, default 48000
}

// Relay roles.
const (
	RoleZone       = "zone"        // on while a zone naming it is paged
	RolePageActive = "page_active" // on while any page plays
)

// Relay is one GPIO output.
type Relay struct {
	Pin       string   `yaml:"pin"`        // periph pin name, e.g. GPIO17
	Role      string   `yaml:"role"`       // zone (default) or page_active
	ActiveLow bool     `yaml:"active_low"` // energise by driving low
	Lead      Duration `yaml:"lead"`       // on this long before audio, default 400ms
	Hold      Duration `yaml:"hold"`       // off this long after audio, default 800ms
}

// Labels configures recording a slot's label or whole announcement from a
// phone: dial RecordPrefix + slot ("*7" + "704"), speak after the beep,
// hash to stop, 1 to keep.
type Labels struct {
	// RecordPrefix + a slot number records that slot's label, spoken in
	// place of {label} in its announcements. Default "*7"; "off" turns
	// recording from phones off.
	RecordPrefix string `yaml:"record_prefix"`
	// AnnouncementPrefix + a slot number records the slot's whole
	// announcement, played instead of the spoken template. Default "*8";
	// "off" turns it off.
	AnnouncementPrefix string `yaml:"announcement_prefix"`
	// Allow lists the users and @groups who may record; empty: every
	// caller the SIP stack lets in (trusted sources and registered users).
	Allow []string `yaml:"allow"`
}

// PageExt is an extension phones dial to page live.
type PageExt struct {
	Zones    []string `yaml:"zones"`
	Mode     string   `yaml:"mode"`     // live (default) or store (store-and-forward)
	Priority string   `yaml:"priority"` // live (default) or emergency
	Chime    string   `yaml:"chime"`    // chime before the page, default the announce chime
	MaxLen   Duration `yaml:"max_length"`
	Allow    []string `yaml:"allow"` // users/groups allowed to page; empty: everyone trusted
}

// External configures park events from elsewhere: an existing PBX's BLF
// dialog events, Asterisk AMI, or a webhook.
type External struct {
	AMI *AMI      `yaml:"ami"`
	BLF *BLFWatch `yaml:"blf"`
	// WebhookTokens are bearer tokens accepted on POST /api/v1/park-events.
	WebhookTokens []string `yaml:"webhook_tokens"`
	// SlotMap maps a PBX's slot numbers to local slots ("71": "701").
	// Unmapped slots keep their number.
	SlotMap map[string]string `yaml:"slot_map"`
	// AnnounceUnknownSlots lets the webhook (POST /api/v1/park-events)
	// accept slots that map to no configured park slot. Default false:
	// they get 400 naming the field slot.
	AnnounceUnknownSlots bool `yaml:"announce_unknown_slots"`
}

// AMI is an Asterisk Manager Interface connection.
type AMI struct {
	Address  string `yaml:"address"`  // host:port, e.g. pbx.lan:5038
	Username string `yaml:"username"` // manager.conf user
	Secret   string `yaml:"secret"`
	// Lot is the Asterisk parking lot to follow; empty: every lot.
	Lot string `yaml:"lot"`
}

// BLFWatch subscribes to a PBX's park slots as a phone would.
type BLFWatch struct {
	// Server is where SUBSCRIBEs go, e.g. sip:pbx.lan:5060.
	Server string `yaml:"server"`
	// Listen is no longer used (kept so old configs load): the PBX's
	// NOTIFYs arrive on the SIP port of sip.listen. When set it must still
	// be an ip:port.
	Listen string `yaml:"listen"`
	// Slots are the PBX's slot numbers to watch, e.g. 701-710.
	Slots Range `yaml:"slots"`
	// URI is the watched resource, {slot} replaced; default sip:{slot}@HOST of server.
	URI      string   `yaml:"uri"`
	Username string   `yaml:"username"` // digest user, when challenged
	Password string   `yaml:"password"`
	Expires  Duration `yaml:"expires"` // requested subscription lifetime, default 600s
}

// Range is an inclusive numeric range written "701-710" (or one number).
type Range struct {
	First, Last int
}

// UnmarshalScalar parses "701-710".
func (r *Range) UnmarshalScalar(s string) error {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		b = a
	}
	f, err1 := strconv.Atoi(strings.TrimSpace(a))
	l, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || f < 0 {
		return fmt.Errorf("%q is not a range (write e.g. 701-710)", s)
	}
	if l < f {
		return fmt.Errorf("%q: range ends before it starts", s)
	}
	r.First, r.Last = f, l
	return nil
}

// Len is the number of values in r.
func (r Range) Len() int { return r.Last - r.First + 1 }

// Contains reports whether n is in r.
func (r Range) Contains(n int) bool { return n >= r.First && n <= r.Last }

func (r Range) String() string {
	if r.First == r.Last {
		return strconv.Itoa(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// MarshalText writes "701-710".
func (r Range) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// CIDR is a network prefix, e.g. "192.168.0.0/16" (a bare address is a /32 or /128).
type CIDR struct{ netip.Prefix }

// UnmarshalScalar parses a prefix or address.
func (c *CIDR) UnmarshalScalar(s string) error {
	if p, err := netip.ParsePrefix(s); err == nil {
		c.Prefix = p.Masked()
		return nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		c.Prefix = netip.PrefixFrom(a, a.BitLen())
		return nil
	}
	return fmt.Errorf("%q is not a network (write e.g. 192.168.0.0/16)", s)
}

// Load reads and validates a config file. On failure the error is an
// *Error listing every problem. Warnings are returned with a valid config.
func Load(path string) (*Config, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	c, warns, err := Parse(filepath.Base(path), data)
	if c != nil {
		c.Source = path
	}
	return c, warns, err
}

// LoadDefault returns the embedded default config.
func LoadDefault() (*Config, error) {
	c, _, err := Parse("default.yaml", Default)
	if err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	c.Source = "embedded default"
	return c, nil
}
