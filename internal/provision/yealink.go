package provision

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/parkpage/parkpage/internal/config"
)

// yealinkFirstKey is the first line key parkpage's keys take: keys 1-5
// stay with the phone's PBX account and the installer's own keys
// (provisioning.md §3 puts the park key on line key 6).
const yealinkFirstKey = 6

// Yealink transport_type values (provisioning.md §1.1: 0 and 2 T, 1 I).
var yealinkTransport = map[string]string{"udp": "0", "tcp": "1", "tls": "2"}

// yealinkCodec maps an output codec to multicast.codec (§1.5, V).
var yealinkCodec = map[string]string{"pcmu": "PCMU", "pcma": "PCMA", "g722": "G722"}

// cfgWriter writes Yealink "key = value" lines, with "## " comments and
// UNCONFIRMED marks.
type cfgWriter struct {
	b           bytes.Buffer
	unconfirmed []string
}

func (w *cfgWriter) comment(format string, a ...any) {
	fmt.Fprintf(&w.b, "## "+format+"\n", a...)
}

func (w *cfgWriter) blank() { w.b.WriteString("\n") }

func (w *cfgWriter) set(key, value string) {
	fmt.Fprintf(&w.b, "%s = %s\n", key, yealinkValue(value))
}

// unsure writes a key that provisioning.md marks as inferred, with the
// reason on a comment line just above it.
func (w *cfgWriter) unsure(key, value, why string) {
	w.comment("UNCONFIRMED: %s", why)
	w.set(key, value)
	w.unconfirmed = append(w.unconfirmed, key)
}

// yealinkValue keeps a value on its line: the .cfg format has no quoting.
func yealinkValue(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r < 0x20 {
			return ' '
		}
		return r
	}, v)
}

func yealink(cfg *config.Config, mi ModelInfo, p Phone, l *layout) (*File, error) {
	f := &File{Name: fileName(p.MAC, ".cfg"), ContentType: "text/plain; charset=utf-8"}
	// Count the keys first: an error names what does not fit.
	lineKeys := len(l.parks) + len(l.pages)
	if !p.Sidecar {
		lineKeys += len(l.slots)
	}
	if last := yealinkFirstKey + lineKeys - 1; last > mi.LineKeys {
		return nil, fmt.Errorf("%s: %d park, page and slot keys from line key %d need line key %d, the phone has %d: %w (use the %s sidecar)",
			mi.Name, lineKeys, yealinkFirstKey, last, mi.LineKeys, ErrTooMany, mi.Sidecar)
	}
	if p.Sidecar && len(l.slots) > 3*mi.SidecarKeys {
		return nil, fmt.Errorf("%s: %d slots need more than three %s modules: %w", mi.Name, len(l.slots), mi.Sidecar, ErrTooMany)
	}

	w := &cfgWriter{}
	w.b.WriteString("#!version:1.0.0.1\n")
	side := ""
	if p.Sidecar {
		side = " + " + mi.Sidecar
	}
	w.comment("parkpage: %s%s, park account %s (parkpage provision --model %s --user %s)", mi.Name, side, l.user, mi.Model, l.user)
	w.comment("Keys marked UNCONFIRMED are inferred, not read in a Yealink guide: test them on a phone.")
	w.comment("Only parkpage's keys are set here; account 1 and keys 1-%d are left as they are.", yealinkFirstKey-1)
	w.blank()

	w.comment("Account 2 registers to parkpage: the park and BLF keys use it.")
	a := "account.2."
	w.set(a+"enable", "1")
	w.set(a+"label", "Park")
	w.set(a+"display_name", l.display)
	w.set(a+"auth_name", l.user)
	w.set(a+"user_name", l.user)
	w.set(a+"password", l.password)
	w.set(a+"sip_server.1.address", l.server.Host)
	w.set(a+"sip_server.1.port", fmt.Sprint(l.server.Port))
	if l.server.Transport == "tcp" {
		w.unsure(a+"sip_server.1.transport_type", yealinkTransport["tcp"], "1 = TCP is inferred (0 = UDP and 2 = TLS are from templates)")
	} else {
		w.set(a+"sip_server.1.transport_type", yealinkTransport[l.server.Transport])
	}
	w.set(a+"sip_server.1.expires", "3600")
	w.blank()

	w.comment("A BLF key pressed during a call transfers the call to its slot: one-press directed park.")
	w.unsure("transfer.dsskey_deal_type", "2", "2 = blind transfer (REFER without Replaces) is from memory; 1 = attended also works with parkpage")
	w.blank()

	key := yealinkFirstKey
	if len(l.parks) > 0 {
		w.comment("Park key: blind-transfers the call to the park extension; parkpage picks a free slot and pages it.")
		for _, pk := range l.parks {
			lk := fmt.Sprintf("linekey.%d.", key)
			w.set(lk+"type", "10")
			w.set(lk+"line", "2")
			w.set(lk+"value", pk.Ext)
			w.set(lk+"label", pk.Label)
			key++
		}
		w.blank()
	}
	if len(l.pages) > 0 {
		w.comment("Page keys: call a parkpage page extension; parkpage pages its zones.")
		for _, pg := range l.pages {
			lk := fmt.Sprintf("linekey.%d.", key)
			w.set(lk+"type", "13")
			w.set(lk+"line", "2")
			w.set(lk+"value", pg.Ext)
			w.set(lk+"label", pg.Label)
			key++
		}
		w.blank()
	}
	if len(l.slots) > 0 {
		where := "line keys"
		if p.Sidecar {
			where = mi.Sidecar + " keys"
		}
		w.comment("Park slots as BLF keys (%s): lit while a call is parked; press to pick it up, or during a call to park there.", where)
		w.comment("UNCONFIRMED: the value is the bare slot; the phone is expected to subscribe to sip:<slot>@<account 2 server>.")
		f.Unconfirmed = append(f.Unconfirmed, "BLF key value as a bare slot number")
		for i, s := range l.slots {
			label := s.Label
			if label == "" {
				label = "Park " + s.Slot
			}
			var k string
			if p.Sidecar {
				k = fmt.Sprintf("expansion_module.%d.key.%d.", i/mi.SidecarKeys+1, i%mi.SidecarKeys+1)
			} else {
				k = fmt.Sprintf("linekey.%d.", key)
				key++
			}
			w.set(k+"type", "16")
			w.set(k+"line", "2")
			w.set(k+"value", s.Slot)
			w.set(k+"label", label)
			if !p.Sidecar {
				// provisioning.md §1.3: leave the pickup code empty for slots (I).
				w.set(k+"extension", "%NULL%")
			}
		}
		w.blank()
	}

	yealinkMulticast(cfg, w, f, l)
	f.Body = append(bytes.TrimRight(w.b.Bytes(), "\n"), '\n')
	f.Unconfirmed = append(w.unconfirmed, f.Unconfirmed...)
	return f, nil
}

// yealinkMulticast writes the listen groups: the RTP multicast outputs of
// the phone's zones, first zone first (index 1 is the highest priority).
func yealinkMulticast(cfg *config.Config, w *cfgWriter, f *File, l *layout) {
	type group struct{ addr, label, codec string }
	var groups []group
	seen := map[string]bool{}
	for _, z := range l.zones {
		found := false
		for _, o := range cfg.Zones[z].Outputs {
			if o.Type != config.OutputRTP {
				continue
			}
			found = true
			addr := fmt.Sprintf("%s:%d", o.Group, o.Port)
			if seen[addr] {
				continue
			}
			seen[addr] = true
			groups = append(groups, group{addr, Title(z), o.Codec})
		}
		if !found {
			f.Notes = append(f.Notes, fmt.Sprintf("zone %s has no rtp output: this Yealink will not hear its pages", z))
		}
	}
	if len(groups) == 0 {
		return
	}
	if len(groups) > 31 {
		f.Notes = append(f.Notes, fmt.Sprintf("%d multicast groups: a Yealink listens to 31, the rest are left out", len(groups)))
		groups = groups[:31]
	}
	w.comment("Multicast paging from parkpage: the phone plays these groups (index 1 = highest priority).")
	for i, g := range groups {
		k := fmt.Sprintf("multicast.listen_address.%d.", i+1)
		w.set(k+"ip_address", g.addr)
		w.set(k+"label", g.label)
		w.unsure(k+"channel", "0", "channel 0 = plain RTP is inferred")
		w.set(k+"volume", "0")
	}
	w.set("multicast.receive_priority.enable", "1")
	// Every listened group may barge into a call (§3: priority = the
	// number of groups).
	w.set("multicast.receive_priority.priority", fmt.Sprint(len(groups)))
	w.set("multicast.receive.ignore_dnd.priority", "0")
	codec := yealinkCodec[groups[0].codec]
	if codec == "" {
		f.Notes = append(f.Notes, fmt.Sprintf("codec %s: a Yealink plays PCMU, PCMA or G.722 multicast; set the zone's rtp output to pcmu or g722", groups[0].codec))
		codec = "PCMU"
	}
	w.set("multicast.codec", codec)
}
