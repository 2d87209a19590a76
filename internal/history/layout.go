package history

import (
	"strconv"

	"github.com/parkpage/parkpage/internal/config"
)

// LayoutOf reads the report's layout from the config: every lot's slots
// with their labels and announcement zones, and the users' groups.
func LayoutOf(cfg *config.Config) Layout {
	l := Layout{Groups: map[string][]string{}}
	for u, su := range cfg.SIP.Users {
		l.Groups[u] = su.Groups
	}
	for _, lot := range cfg.Park.Lots {
		ll := LotLayout{Name: lot.Name, Label: lot.Label}
		for n := lot.Slots.First; n <= lot.Slots.Last; n++ {
			s := strconv.Itoa(n)
			sl := SlotLayout{Slot: s}
			if lot.Announce != nil {
				sl.Zones = lot.Announce.Zones
			}
			if c := cfg.Park.Slots[s]; c != nil {
				sl.Label = c.Label
				if c.Announce != nil {
					sl.Zones = c.Announce.Zones
				}
			}
			ll.Slots = append(ll.Slots, sl)
		}
		l.Lots = append(l.Lots, ll)
	}
	return l
}
