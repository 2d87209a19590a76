package app

import (
	"context"
	"fmt"
	"time"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/park"
)

// backend adapts the app to the API's Backend interface.
type backend struct{ a *App }

func (b backend) Status() api.Status {
	b.a.mu.RLock()
	defer b.a.mu.RUnlock()
	st := api.Status{
		Version:      b.a.opts.Version,
		Started:      b.a.started,
		Uptime:       time.Since(b.a.started).Seconds(),
		ConfigSource: b.a.cfg.Source,
		ConfigLoaded: b.a.loadedAt,
		Warnings:     []string{},
	}
	for _, w := range b.a.warnings {
		st.Warnings = append(st.Warnings, w.String())
	}
	return st
}

func (b backend) Slots() []api.Slot {
	if b.a.slots != nil {
		return b.a.slots()
	}
	return []api.Slot{}
}

func (b backend) Zones() []api.Zone {
	if b.a.zones != nil {
		return b.a.zones()
	}
	return []api.Zone{}
}

func (b backend) Announce(ctx context.Context, req api.AnnounceRequest) (string, error) {
	if b.a.announce == nil {
		return "", fmt.Errorf("paging is not available")
	}
	return b.a.announce(ctx, req)
}

func (b backend) Reload() error { return b.a.Reload() }

func (b backend) ParkEvent(ctx context.Context, ev api.ParkEventRequest) error {
	if b.a.parkEvent == nil {
		return fmt.Errorf("park events are not available")
	}
	cfg := b.a.Config()
	if !cfg.External.AnnounceUnknownSlots {
		local := pbxevents.NewSlotMapper(cfg.External.SlotMap).Local(ev.Slot)
		if !park.ConfiguredSlot(cfg, local) {
			return &api.FieldError{Field: "slot", Msg: fmt.Sprintf("%q maps to no configured park slot (set external.slot_map, or external.announce_unknown_slots to announce it anyway)", ev.Slot)}
		}
	}
	return b.a.parkEvent(ctx, ev)
}

// Labels implements api.LabelsBackend.
func (b backend) Labels() api.LabelStore { return b.a.labels }
