package announcer

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/labels"
)

// Rule is how parks in one slot are announced: the slot's settings over its
// lot's, with the config's defaults under both.
type Rule struct {
	Slot  string
	Lot   string
	Label string
	// Enabled is false when the slot or lot turns announcements off or names
	// no zones.
	Enabled bool
	Zones   []string
	// Template is the slot's or lot's own template; "" defers to each zone's
	// template, then to announce.template.
	Template  string
	Recording string
	// LabelRecording is a recorded label (WAV path) spoken in place of
	// {label}; "" = the label's text is synthesised.
	LabelRecording string
	RepeatEvery    time.Duration
	RepeatMax      int
}

// RuleFor returns the announcement rule of a slot; ok is false when the
// slot belongs to no configured lot.
func RuleFor(cfg *config.Config, slot string) (r Rule, ok bool) {
	n, err := strconv.Atoi(slot)
	if err != nil {
		return Rule{}, false
	}
	lot := cfg.LotOf(n)
	if lot == nil {
		return Rule{}, false
	}
	r = Rule{Slot: slot, Lot: lot.Name, Label: lot.Label}
	var enabled *bool
	if a := lot.Announce; a != nil {
		enabled = a.Enabled
		r.Zones, r.Template, r.Recording = a.Zones, a.Template, a.Recording
		r.RepeatEvery, r.RepeatMax = a.RepeatEvery.D(), a.RepeatMax
	}
	if s := cfg.Park.Slots[slot]; s != nil {
		if s.Label != "" {
			r.Label = s.Label
		}
		if a := s.Announce; a != nil {
			if a.Enabled != nil {
				enabled = a.Enabled
			}
			if len(a.Zones) > 0 {
				r.Zones = a.Zones
			}
			if a.Template != "" {
				r.Template = a.Template
			}
			if a.Recording != "" {
				r.Recording = a.Recording
			}
			if a.RepeatEvery != 0 {
				r.RepeatEvery = a.RepeatEvery.D()
			}
			r.RepeatMax = a.RepeatMax
		}
	}
	r.Zones = slices.Clone(r.Zones)
	r.Enabled = len(r.Zones) > 0 && (enabled == nil || *enabled)
	return r, true
}

// Spec is one page of an announcement: the zones that share a phrase.
type Spec struct {
	Zones    []string
	Text     string
	Request  announce.Request
	CallerID string
}

// Compose turns a rule and the call's details into pages: one per distinct
// phrase, since zones may have templates of their own. zones, when not
// nil, replaces the rule's zones (an API call naming them).
func Compose(cfg *config.Config, r Rule, f announce.Fields, zones []string) ([]Spec, error) {
	if zones == nil {
		zones = r.Zones
	}
	f.Slot, f.Label, f.Lot = r.Slot, r.Label, r.Lot
	var specs []Spec
	// Zones share a page when they hear the same thing: phrase, voice and
	// paging speech (zones.NAME.voice and .speech).
	type sound struct {
		text, voice string
		paging      announce.Paging
	}
	byText := map[sound]int{}
	for _, z := range zones {
		tmpl := r.Template
		if tmpl == "" {
			if zc := cfg.Zones[z]; zc != nil && zc.Template != "" {
				tmpl = zc.Template
			} else {
				tmpl = cfg.Announce.Template
			}
		}
		zf := f
		zf.Zone = z
		text, err := announce.Phrase(tmpl, zf)
		if err != nil {
			return nil, err
		}
		labelWAV := ""
		if r.LabelRecording != "" && r.Recording == "" {
			lf := zf
			lf.Label = announce.LabelMark
			if spliced, err := announce.Phrase(tmpl, lf); err == nil && strings.Contains(spliced, announce.LabelMark) {
				// The page's text (logs, Polycom caller ID) keeps the
				// label's words; only the speech uses the recording.
				labelWAV, text = r.LabelRecording, spliced
			}
		}
		voice, paging := cfg.Announce.Voice, announce.PagingOf(cfg.Announce.Speech)
		if zc := cfg.Zones[z]; zc != nil {
			if zc.Voice != "" {
				voice = zc.Voice
			}
			paging = announce.PagingOf(zc.Speech)
		}
		key := sound{text, voice, paging}
		if i, ok := byText[key]; ok {
			specs[i].Zones = append(specs[i].Zones, z)
			continue
		}
		byText[key] = len(specs)
		specs = append(specs, Spec{
			Zones:    []string{z},
			Text:     strings.ReplaceAll(text, announce.LabelMark, r.Label),
			Request:  announce.Request{Text: text, Voice: voice, Chime: cfg.Announce.Chime, Repeat: cfg.Announce.Repeat, OverrideWAV: r.Recording, LabelWAV: labelWAV, Paging: paging},
			CallerID: CallerID(r.Slot, r.Label),
		})
	}
	return specs, nil
}

// Recordings are slot labels and announcements recorded from a phone;
// *labels.Store is one.
type Recordings interface {
	Get(slot string, k labels.Kind) (labels.Recording, bool)
	Path(r labels.Recording) string
}

// WithRecordings returns r with a slot's phone recordings in force: a
// recorded announcement replaces the spoken template (and any configured
// recording: the phone's is the newer word), a recorded label is spoken in
// place of {label}.
func WithRecordings(r Rule, recs Recordings) Rule {
	if recs == nil {
		return r
	}
	if rec, ok := recs.Get(r.Slot, labels.KindAnnouncement); ok {
		r.Recording = recs.Path(rec)
	}
	if rec, ok := recs.Get(r.Slot, labels.KindLabel); ok {
		r.LabelRecording = recs.Path(rec)
	}
	return r
}

// CallerID is what a Polycom phone shows during a park announcement: the
// slot and its label, cut to the format's 13 bytes.
func CallerID(slot, label string) string {
	s := strings.TrimSpace(slot + " " + label)
	if len(s) > 13 {
		s = s[:13]
	}
	return s
}

// Codecs lists the codecs the multicast outputs of zones send, to
// pre-encode an announcement for them.
func Codecs(cfg *config.Config, zones []string) []codec.Name {
	var cs []codec.Name
	for _, z := range zones {
		zc := cfg.Zones[z]
		if zc == nil {
			continue
		}
		for _, o := range zc.Outputs {
			if o.Codec == "" {
				continue
			}
			if c := codec.Name(o.Codec); !slices.Contains(cs, c) {
				cs = append(cs, c)
			}
		}
	}
	return cs
}

// dependsOnCall reports whether a rule's phrases depend on the call (its
// caller or parker), so they cannot be rendered ahead of a park.
func dependsOnCall(cfg *config.Config, r Rule) bool {
	ts := []string{r.Template, cfg.Announce.Template}
	for _, z := range r.Zones {
		if zc := cfg.Zones[z]; zc != nil {
			ts = append(ts, zc.Template)
		}
	}
	for _, t := range ts {
		if strings.Contains(t, "{caller}") || strings.Contains(t, "{parker}") {
			return true
		}
	}
	return false
}

// Phrases lists, per voice, the phrases of every configured slot's
// announcement on every zone (with no caller), so the appliance can warn
// at start-up of words voice prompts has no recording for.
func Phrases(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	for _, l := range cfg.Park.Lots {
		for n := l.Slots.First; n <= l.Slots.Last && n-l.Slots.First < 1000; n++ {
			r, ok := RuleFor(cfg, strconv.Itoa(n))
			if !ok || !r.Enabled || r.Recording != "" {
				continue
			}
			specs, err := Compose(cfg, r, announce.Fields{}, nil)
			if err != nil {
				continue
			}
			for _, s := range specs {
				if !slices.Contains(out[s.Request.Voice], s.Text) {
					out[s.Request.Voice] = append(out[s.Request.Voice], s.Text)
				}
			}
		}
	}
	return out
}
