// Package paging is what the gateway's clients hand it and get back: a
// Page to play on zones, the Handle that follows it and the Reason it
// ended, the ZoneInfo snapshots the API shows, and LiveBuffer, the audio
// of a page still being spoken (a phone's live page, a phone's own
// multicast page relayed to amplifiers).
//
// It is a leaf below gateway: the announcer, live pages and phone pages
// import it (and gateway/output for priorities and audio), never gateway,
// and depend on the gateway only through the small Pager interface each
// declares.
package paging

import (
	"context"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
)

// Page is one request to play audio to zones.
type Page struct {
	// ID names the page in events and logs; Submit generates one when empty.
	ID       string
	Priority output.Priority
	// Zones to play on, all together. Duplicates are ignored.
	Zones []string
	Audio output.Audio
	// Text is what the page says, for events and the API (not spoken).
	Text string
	// CallerID is what phones show (Polycom's 13-byte field); empty: the
	// output's configured default.
	CallerID string
	// Replay asks for the page to be played again on the zones a higher page
	// cut, once they are free (a park announcement while its call is still
	// parked).
	Replay bool
	// StillWanted, when set, is asked just before a replay starts; false
	// drops the replay. It is called from the gateway's goroutines without
	// any gateway lock held, and must return quickly.
	StillWanted func() bool
	// OutputTypes, when set, limits the page to the zones' outputs of these
	// types (config.OutputSIP, ...); the zones' relays still switch. A phone's
	// own multicast page relayed to a zone's amplifiers uses it so the page
	// never goes back out on multicast.
	OutputTypes []string
	// Outputs, when set, limits the page to the zones' outputs of these
	// names (output.Name: "front/outputs[1]"); the zones' relays still
	// switch. An installer's test of one output uses it.
	Outputs []string
	// OnOutput, when set, is told how each output played, and whether
	// each zone's relays switched, as each ends: an installer's test page
	// reports it. It is called from the gateway's goroutines with no
	// gateway lock held, and must return quickly.
	OnOutput func(OutputResult)
}

// OutputResult is how one output played a page (Page.OnOutput).
type OutputResult struct {
	Zone string
	// Output is the output's name, or "ZONE/relays" for the zone's relays.
	Output string
	// Type is the output's type (polycom, rtp, sip, lineout), or "relay".
	Type    string
	Address string
	// Err is why it failed; nil when it played (or the relays switched).
	Err error
	// Cut is true when the page was cut (a higher page, a cancel) before
	// the output finished: neither played nor failed.
	Cut  bool
	Took time.Duration
}

// Reason says how a page ended (PageEnded's Reason, Handle.Wait's result).
type Reason string

// Page end reasons.
const (
	ReasonDone      Reason = "done"      // played to the end on its zones
	ReasonCancelled Reason = "cancelled" // Handle.Cancel or the Submit context
	ReasonExpired   Reason = "expired"   // waited longer than the maximum wait
	ReasonPreempted Reason = "preempted" // cut by a higher page and not replayed
	ReasonMaxPage   Reason = "max_page"  // cut by a zone's max_page
	ReasonFailed    Reason = "failed"    // every output of every zone failed
	ReasonClosed    Reason = "closed"    // the gateway shut down
)

// Handle follows and controls a submitted page.
type Handle struct {
	id     string
	cancel func()
	done   <-chan struct{}
	reason func() Reason
}

// NewHandle is the scheduler's (gateway.Submit's): cancel cuts the page,
// done is closed when it has ended, and reason, called only after done is
// closed, says why.
func NewHandle(id string, cancel func(), done <-chan struct{}, reason func() Reason) *Handle {
	return &Handle{id: id, cancel: cancel, done: done, reason: reason}
}

// ID is the page's ID.
func (h *Handle) ID() string { return h.id }

// Cancel stops the page at once: a waiting page is dropped, a playing one is
// cut cleanly (outputs see their context cancelled and send their End burst
// or BYE; relays are released). It does not wait; use Wait for that.
func (h *Handle) Cancel() { h.cancel() }

// Done is closed when the page has ended and every output has returned.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Wait blocks until the page has ended (including replays) and returns why,
// or returns ctx's error if ctx ends first.
func (h *Handle) Wait(ctx context.Context) (Reason, error) {
	select {
	case <-h.done:
		return h.reason(), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// OutputInfo describes an output for the API.
type OutputInfo struct {
	Name    string `json:"name"`
	Type    string `json:"type"`              // polycom, rtp, sip, lineout
	Address string `json:"address,omitempty"` // group:port, SIP URI or sound device
	Codec   string `json:"codec,omitempty"`
	Channel int    `json:"channel,omitempty"` // Polycom channel for normal pages
}

// ZoneInfo is a snapshot of a zone for the API.
type ZoneInfo struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Outputs     []OutputInfo `json:"outputs"`
	Relays      []string     `json:"relays,omitempty"`
	MaxPage     string       `json:"max_page,omitempty"`
	// Page and Priority are the page playing now, if any.
	Page     string `json:"page,omitempty"`
	Priority string `json:"priority,omitempty"`
	// Waiting counts pages queued for this zone.
	Waiting int `json:"waiting"`
}
