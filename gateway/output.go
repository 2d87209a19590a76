// Package gateway is where pages meet zones: it schedules pages by priority
// over the zones they name, drives each zone's outputs and relays, and (in
// later work) turns park events into announcements. It knows outputs only
// through the small Output interface below; multicast, SIP amplifiers and
// line out implement it in their own packages.
package gateway

import (
	"context"
	"fmt"

	"github.com/parkpage/parkpage/internal/codec"
)

// Priority orders pages: a higher one pre-empts a lower one on shared zones.
type Priority int

// Page priorities, lowest first.
const (
	PriorityTest      Priority = iota // installer test pages
	PriorityPark                      // park announcements
	PriorityLive                      // live pages from a phone's page key
	PriorityEmergency                 // emergency pages: Polycom emergency channel, overrides DND
)

var priorityNames = []string{"test", "park", "live", "emergency"}

func (p Priority) String() string {
	if p < 0 || int(p) >= len(priorityNames) {
		return fmt.Sprintf("priority(%d)", int(p))
	}
	return priorityNames[p]
}

// ParsePriority reads a priority name as written in config and the API.
func ParsePriority(s string) (Priority, error) {
	for i, n := range priorityNames {
		if n == s {
			return Priority(i), nil
		}
	}
	return 0, fmt.Errorf("unknown priority %q (want test, park, live or emergency)", s)
}

// Audio is the sound of a page, rendered once and shared by every output.
type Audio interface {
	// Frames returns the page as 20 ms frames encoded in c. Implementations
	// cache per codec, so every output of a page sends the same frames.
	Frames(c codec.Name) ([][]byte, error)
	// PCM returns the page as 16 kHz mono samples (for line out, in-band use).
	PCM() []int16
}

// Playback is one page as an output sees it.
type Playback struct {
	ID       string
	Priority Priority
	Zone     string
	Audio    Audio
	CallerID string // what phones show, when the output can show it
}

// Output plays pages to one device or group address.
type Output interface {
	// Name identifies the output in logs, events and metrics, e.g.
	// "warehouse/outputs[1]".
	Name() string
	// Play sends the whole page and returns when it has been played, or
	// ends it cleanly (Polycom End burst, SIP BYE, drained line out) and
	// returns ctx.Err() when ctx is cancelled (pre-emption, pickup).
	Play(ctx context.Context, p *Playback) error
}
