package provision

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"

	"github.com/parkpage/parkpage/internal/config"
)

// polyTransport maps a transport to reg.x.server.y.transport, a word
// (provisioning.md §2.1: UDPOnly, TLSOnly T; TCPOnly I).
var polyTransport = map[string]string{"udp": "UDPOnly", "tcp": "TCPOnly", "tls": "TLSOnly"}

// polyCodec maps an output codec to ptt.pageMode.codec (spellings I).
var polyCodec = map[string]string{"pcmu": "G.711Mu", "pcma": "G.711A", "g722": "G.722"}

// Poly paging channels: group N is channel 25+N; groups 1-23 are normal,
// 24 priority, 25 emergency (provisioning.md §2.5, paging-formats.md).
const polyChannelBase = 25

// polyFirstBLFOnSidecar is the first EM50 key (§2.4, T).
const polyFirstBLFOnSidecar = 13

// xmlWriter writes a Poly configuration file: one element per group of
// parameters, each parameter an attribute. Parameters inferred in
// provisioning.md go into elements of their own, after an UNCONFIRMED
// comment (a comment cannot sit inside a tag).
type xmlWriter struct {
	b           bytes.Buffer
	unconfirmed []string
}

type attr struct{ k, v string }

func (w *xmlWriter) comment(format string, a ...any) {
	s := strings.ReplaceAll(fmt.Sprintf(format, a...), "--", "-")
	fmt.Fprintf(&w.b, "  <!-- %s -->\n", s)
}

func (w *xmlWriter) element(name string, attrs []attr) {
	if len(attrs) == 0 {
		return
	}
	fmt.Fprintf(&w.b, "  <%s\n", name)
	for _, a := range attrs {
		fmt.Fprintf(&w.b, "    %s=\"%s\"\n", a.k, xmlEscape(a.v))
	}
	w.b.WriteString("  />\n")
}

// unsure writes an element of inferred parameters.
func (w *xmlWriter) unsure(name, why string, attrs []attr) {
	if len(attrs) == 0 {
		return
	}
	w.comment("UNCONFIRMED: %s", why)
	w.element(name, attrs)
	for _, a := range attrs {
		w.unconfirmed = append(w.unconfirmed, a.k)
	}
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), `"`, "&quot;")
}

func poly(cfg *config.Config, mi ModelInfo, p Phone, l *layout) (*File, error) {
	f := &File{Name: fileName(p.MAC, "-parkpage.cfg"), ContentType: "application/xml"}
	efks := len(l.parks) + len(l.pages)
	// Keys 1 and 2 are the two registrations' lines.
	mainKeys := 2 + efks
	if !p.Sidecar {
		mainKeys += len(l.slots)
	}
	if mainKeys > mi.LineKeys {
		return nil, fmt.Errorf("%s: 2 line keys, %d park and page keys and %d slot keys need %d keys, the phone has %d: %w (use the %s sidecar)",
			mi.Name, efks, len(l.slots), mainKeys, mi.LineKeys, ErrTooMany, mi.Sidecar)
	}
	if p.Sidecar && len(l.slots) > 3*mi.SidecarKeys {
		return nil, fmt.Errorf("%s: %d slots need more than three %s modules: %w", mi.Name, len(l.slots), mi.Sidecar, ErrTooMany)
	}
	w := &xmlWriter{}
	w.b.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n")
	side := ""
	if p.Sidecar {
		side = " + " + mi.Sidecar
	}
	fmt.Fprintf(&w.b, "<!-- parkpage: %s%s, park account %s (parkpage provision --model %s --user %s) -->\n", mi.Name, side, l.user, mi.Model, l.user)
	w.b.WriteString("<!-- Parameters after an UNCONFIRMED comment are inferred, not read in a Poly guide: test them on a phone. -->\n")
	w.b.WriteString("<polycomConfig>\n")

	w.comment("Registration 2 is parkpage: the BLF (attendant) keys subscribe through it.")
	r := "reg.2."
	regs := []attr{{r + "address", l.user}, {r + "label", "Park"}, {r + "displayName", l.display},
		{r + "auth.userId", l.user}, {r + "auth.password", l.password},
		{r + "server.1.address", l.server.Host}, {r + "server.1.port", fmt.Sprint(l.server.Port)}}
	if l.server.Transport != "tcp" {
		regs = append(regs, attr{r + "server.1.transport", polyTransport[l.server.Transport]})
	}
	regs = append(regs, attr{r + "server.1.expires", "3600"})
	w.element("reg", regs)
	if l.server.Transport == "tcp" {
		w.unsure("reg_transport", "TCPOnly is inferred (UDPOnly and TLSOnly are from templates)",
			[]attr{{r + "server.1.transport", polyTransport["tcp"]}})
	}

	// Key placement (§2.4): reassigned keys, the two lines first.
	var keys []attr
	keys = append(keys, attr{"lineKey.reassignment.enabled", "1"},
		attr{"lineKey.1.category", "Line"}, attr{"lineKey.1.index", "1"},
		attr{"lineKey.2.category", "Line"}, attr{"lineKey.2.index", "2"})
	next := 3
	for i := range efks {
		keys = append(keys, attr{fmt.Sprintf("lineKey.%d.category", next), "EFK"}, attr{fmt.Sprintf("lineKey.%d.index", next), fmt.Sprint(i + 1)})
		next++
	}
	if p.Sidecar {
		next = polyFirstBLFOnSidecar
	}
	for i := range l.slots {
		keys = append(keys, attr{fmt.Sprintf("lineKey.%d.category", next), "BLF"}, attr{fmt.Sprintf("lineKey.%d.index", next), fmt.Sprint(i + 1)})
		next++
	}
	where := "the phone's keys"
	if p.Sidecar {
		where = fmt.Sprintf("%s keys from lineKey.%d", mi.Sidecar, polyFirstBLFOnSidecar)
	}
	w.comment("Keys: 1 = line 1 (the PBX), 2 = line 2 (parkpage), then park and page keys, then the slots on %s.", where)
	w.element("lineKey", keys)

	// Park key (§2.3, T): an enhanced feature key that blind-transfers the
	// active call to the park extension.
	if len(l.parks) > 0 {
		var efk []attr
		efk = append(efk, attr{"feature.enhancedFeatureKeys.enabled", "1"}, attr{"feature.EFKLineKey.enabled", "1"})
		for i, pk := range l.parks {
			e := fmt.Sprintf("efk.efklist.%d.", i+1)
			efk = append(efk, attr{e + "mname", "park" + pk.Ext}, attr{e + "status", "1"}, attr{e + "label", pk.Label},
				attr{e + "action.string", pk.Ext + "$Trefer$"})
		}
		w.comment("Park key: blind-transfers (REFER) the call to the park extension; parkpage picks a free slot and pages it.")
		w.element("efk", efk)
	}
	if len(l.pages) > 0 {
		var efk []attr
		if len(l.parks) == 0 {
			efk = append(efk, attr{"feature.enhancedFeatureKeys.enabled", "1"}, attr{"feature.EFKLineKey.enabled", "1"})
		}
		for i, pg := range l.pages {
			e := fmt.Sprintf("efk.efklist.%d.", len(l.parks)+i+1)
			efk = append(efk, attr{e + "mname", "page" + pg.Ext}, attr{e + "status", "1"}, attr{e + "label", pg.Label},
				attr{e + "action.string", pg.Ext + "$Tinvite$"})
		}
		w.unsure("efk_pages", "a Page key as an EFK that dials the page extension ($Tinvite$) is inferred", efk)
	}

	if len(l.slots) > 0 {
		att := []attr{{"attendant.reg", "2"}}
		for i, s := range l.slots {
			a := fmt.Sprintf("attendant.resourceList.%d.", i+1)
			label := s.Label
			if label == "" {
				label = "Park " + s.Slot
			}
			att = append(att, attr{a + "address", s.Slot + "@" + l.server.Host}, attr{a + "label", label}, attr{a + "type", "automata"})
		}
		att = append(att, attr{"attendant.behaviors.display.spontaneousCallAppearances.automata", "0"},
			attr{"attendant.behaviors.display.remoteCallerID.automata", "1"})
		w.comment("Park slots as automata BLF keys: a press during a call parks it there, a press on a lit slot picks it up.")
		w.element("attendant", att)
	}

	polyPaging(cfg, w, f, l)
	w.b.WriteString("</polycomConfig>\n")
	f.Body = w.b.Bytes()
	f.Unconfirmed = w.unconfirmed
	return f, nil
}

// polyPaging writes group-paging reception for the polycom outputs of the
// phone's zones (§2.5): every group parkpage pages on that address is
// listed and labelled, the phone's zones are subscribed.
func polyPaging(cfg *config.Config, w *xmlWriter, f *File, l *layout) {
	var addr string
	var port int
	var codec string
	var frame config.Duration
	var prio, emerg int
	subscribed := map[int]bool{}
	defaultGroup := 0
	for _, z := range l.zones {
		found := false
		for _, o := range cfg.Zones[z].Outputs {
			if o.Type != config.OutputPolycom {
				continue
			}
			found = true
			if addr == "" {
				addr, port, codec, frame, prio, emerg = o.Group, o.Port, o.Codec, o.Frame, o.PriorityCh, o.EmergencyCh
			} else if o.Group != addr || o.Port != port {
				f.Notes = append(f.Notes, fmt.Sprintf("zone %s pages %s:%d, but a Poly listens to one address (%s:%d): it will not hear this zone", z, o.Group, o.Port, addr, port))
				continue
			}
			g := o.Channel - polyChannelBase
			if g < 1 || g > 23 {
				f.Notes = append(f.Notes, fmt.Sprintf("zone %s pages on channel %d, outside the normal groups (channels 26-48)", z, o.Channel))
				continue
			}
			subscribed[g] = true
			if defaultGroup == 0 {
				defaultGroup = g
			}
		}
		if !found {
			f.Notes = append(f.Notes, fmt.Sprintf("zone %s has no polycom output: this Poly will not hear its pages", z))
		}
	}
	if addr == "" {
		return
	}
	// Every normal group paged on this address, with its zones' names.
	labels := map[int][]string{}
	for _, zn := range sortedZones(cfg) {
		for _, o := range cfg.Zones[zn].Outputs {
			if o.Type != config.OutputPolycom || o.Group != addr || o.Port != port {
				continue
			}
			if g := o.Channel - polyChannelBase; g >= 1 && g <= 23 && !slices.Contains(labels[g], Title(zn)) {
				labels[g] = append(labels[g], Title(zn))
			}
		}
	}
	var groups []int
	for g := range labels {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	pt := []attr{{"ptt.address", addr}, {"ptt.port", fmt.Sprint(port)}, {"ptt.pageMode.enable", "1"}}
	for _, g := range groups {
		p := fmt.Sprintf("ptt.pageMode.group.%d.", g)
		sub := "0"
		if subscribed[g] {
			sub = "1"
		}
		pt = append(pt, attr{p + "label", strings.Join(labels[g], "+")}, attr{p + "available", "1"}, attr{p + "allowReceive", "1"}, attr{p + "subscribed", sub})
	}
	w.comment("Group paging from parkpage (channel = 25 + group). Reboot the phone after changing ptt.address or ptt.port.")
	w.element("ptt", pt)
	pc := polyCodec[codec]
	if pc == "" {
		pc = "G.711Mu"
	}
	payload := int(frame.D().Milliseconds())
	if payload == 0 {
		payload = 20
	}
	w.unsure("ptt_mode", "defaultGroup, priorityGroup, emergencyGroup, displayName, codec and payloadSize are inferred",
		[]attr{{"ptt.pageMode.defaultGroup", fmt.Sprint(defaultGroup)},
			{"ptt.pageMode.priorityGroup", fmt.Sprint(prio - polyChannelBase)},
			{"ptt.pageMode.emergencyGroup", fmt.Sprint(emerg - polyChannelBase)},
			{"ptt.pageMode.displayName", l.display},
			{"ptt.pageMode.codec", pc},
			{"ptt.pageMode.payloadSize", fmt.Sprint(payload)}})
}

func sortedZones(cfg *config.Config) []string {
	var out []string
	for z := range cfg.Zones {
		out = append(out, z)
	}
	slices.Sort(out)
	return out
}

// PolyMaster is the master configuration file a Poly phone requests as
// <MAC>.cfg: it names the parameter file Generate writes for that MAC.
// The format (APPLICATION element, CONFIG_FILES) is from memory:
// UNCONFIRMED. APP_FILE_PATH names sip.ld, which parkpage does not serve,
// so the phone keeps its firmware.
func PolyMaster(mac string) *File {
	body := fmt.Sprintf(`<?xml version="1.0" standalone="yes"?>
<!-- parkpage master configuration for %s. UNCONFIRMED: the master file format is from memory, not read in a Poly guide. -->
<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES="%s" MISC_FILES="" LOG_FILE_DIRECTORY="" OVERRIDES_DIRECTORY="" CONTACTS_DIRECTORY="" LICENSE_DIRECTORY="" USER_PROFILES_DIRECTORY="" CALL_LISTS_DIRECTORY="" COREFILE_DIRECTORY=""/>
`, mac, fileName(mac, "-parkpage.cfg"))
	return &File{Name: fileName(mac, ".cfg"), ContentType: "application/xml", Body: []byte(body), Unconfirmed: []string{"APPLICATION"}}
}
