package app

import (
	"context"
	"errors"
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
	if b.a.drainer != nil {
		if d, err := b.a.drainer.Draining(); err == nil {
			st.Draining, st.Drain = d.Draining, &d
		}
	}
	return st
}

var errNoPark = errors.New("the park is not available")

// Drain, CancelDrain and Draining make the backend an api.Drainer.
func (b backend) Drain() (api.DrainStatus, error) {
	if b.a.drainer == nil {
		return api.DrainStatus{}, errNoPark
	}
	return b.a.drainer.Drain()
}

func (b backend) CancelDrain() (api.DrainStatus, error) {
	if b.a.drainer == nil {
		return api.DrainStatus{}, errNoPark
	}
	return b.a.drainer.CancelDrain()
}

func (b backend) Draining() (api.DrainStatus, error) {
	if b.a.drainer == nil {
		return api.DrainStatus{}, errNoPark
	}
	return b.a.drainer.Draining()
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
