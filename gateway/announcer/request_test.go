package announcer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/parkpage/parkpage/internal/api"
)

// Announce refuses a bad request with the field to fix, and plays a good
// one on the zones named, or on the slot's own zones.
func TestAnnounceRequest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		req       api.AnnounceRequest
		field     string // "" = accepted
		wantZones []string
	}{
		{"text to a zone", api.AnnounceRequest{Zones: []string{"lobby"}, Text: "hello"}, "", []string{"lobby"}},
		{"bad priority", api.AnnounceRequest{Zones: []string{"lobby"}, Text: "x", Priority: "urgent"}, "priority", nil},
		{"unknown zone", api.AnnounceRequest{Zones: []string{"roof"}, Text: "x"}, "zones", nil},
		{"unknown slot", api.AnnounceRequest{Slot: "799"}, "slot", nil},
		{"slot's own zones", api.AnnounceRequest{Slot: "704", Wait: true}, "", []string{"sales", "warehouse"}},
		{"slot to a named zone", api.AnnounceRequest{Slot: "701", Zones: []string{"sales"}, Priority: "emergency"}, "", []string{"sales"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, baseConfig)
				ids, err := h.ann.Announce(context.Background(), tc.req)
				var fe *api.FieldError
				if tc.field != "" {
					if !errors.As(err, &fe) || fe.Field != tc.field {
						t.Fatalf("error %v, want a field error on %q", err, tc.field)
					}
					return
				}
				if err != nil || ids == "" {
					t.Fatalf("Announce = %q, %v", ids, err)
				}
				synctest.Wait()
				h.mu.Lock()
				defer h.mu.Unlock()
				var zones []string
				for _, p := range h.plays {
					if !strings.Contains(strings.Join(zones, ","), p.zone) {
						zones = append(zones, p.zone)
					}
				}
				slices.Sort(zones)
				if strings.Join(zones, ",") != strings.Join(tc.wantZones, ",") {
					t.Errorf("played on %v, want %v", zones, tc.wantZones)
				}
			})
		})
	}
}
