package announcer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/config"
)

// Resolver checks an announcement request (its voice and chime exist)
// before it is queued; *announce.Renderer is one.
type Resolver interface {
	Resolve(req announce.Request) (announce.Request, error)
}

// Announce serves POST /api/v1/announcements: a text, or a slot's own
// announcement, to named zones (a slot's zones when none are named), at
// the request's priority (default test). A bad field is an
// *api.FieldError naming it. It returns the IDs of the pages, comma
// separated; with req.Wait it returns once they have played.
func (a *Announcer) Announce(ctx context.Context, req api.AnnounceRequest) (string, error) {
	cfg := a.cfg.Load()
	prio := output.PriorityTest
	if req.Priority != "" {
		p, err := output.ParsePriority(req.Priority)
		if err != nil {
			return "", &api.FieldError{Field: "priority", Msg: err.Error()}
		}
		prio = p
	}
	for _, z := range req.Zones {
		if cfg.Zones[z] == nil {
			return "", &api.FieldError{Field: "zones", Msg: fmt.Sprintf("no zone %q (zones: %s)", z, strings.Join(ZoneNames(cfg), ", "))}
		}
	}
	var specs []Spec
	if req.Slot != "" {
		rule, ok := a.rule(cfg, req.Slot)
		if !ok {
			return "", &api.FieldError{Field: "slot", Msg: fmt.Sprintf("%q is not a configured park slot", req.Slot)}
		}
		var zones []string
		if len(req.Zones) > 0 {
			zones = req.Zones
		}
		if zones == nil && len(rule.Zones) == 0 {
			return "", &api.FieldError{Field: "zones", Msg: fmt.Sprintf("slot %s announces to no zone; name zones", req.Slot)}
		}
		f := announce.Fields{}
		if a.o.SlotParties != nil {
			if caller, parker, ok := a.o.SlotParties(req.Slot); ok {
				f.Caller, f.Parker = PartyName(caller), PartyName(parker)
			}
		}
		var err error
		if specs, err = Compose(cfg, rule, f, zones); err != nil {
			return "", err
		}
	} else {
		specs = []Spec{{Zones: req.Zones, Text: req.Text, Request: announce.Request{Text: req.Text, Voice: cfg.Announce.Voice, Chime: cfg.Announce.Chime, Repeat: cfg.Announce.Repeat}}}
	}
	var ids []string
	var hs []*paging.Handle
	for _, s := range specs {
		if req.Voice != "" {
			s.Request.Voice = req.Voice
		}
		if req.Chime != nil {
			s.Request.Chime = *req.Chime
		}
		if r, ok := a.o.Audio.(Resolver); ok {
			if _, err := r.Resolve(s.Request); err != nil {
				return "", &api.FieldError{Field: "text", Msg: err.Error()}
			}
		}
		// The page outlives the HTTP request unless the caller waits for it.
		h, err := a.Play(context.WithoutCancel(ctx), s, prio, nil)
		if err != nil {
			return "", err
		}
		ids = append(ids, h.ID())
		hs = append(hs, h)
	}
	if req.Wait {
		for _, h := range hs {
			if _, err := h.Wait(ctx); err != nil {
				return strings.Join(ids, ","), err
			}
		}
	}
	return strings.Join(ids, ","), nil
}

// ZoneNames lists the configured zones, sorted.
func ZoneNames(cfg *config.Config) []string {
	var names []string
	for n := range cfg.Zones {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
