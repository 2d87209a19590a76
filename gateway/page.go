package gateway

import (
	"context"
	"errors"
	"slices"
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

// Submit errors.
var (
	ErrClosed    = errors.New("gateway closed")
	ErrQueueFull = errors.New("page queue full")
	// errCancelled is the cancel cause Handle.Cancel sets.
	errCancelled = errors.New("page cancelled")
)

// Handle follows and controls a submitted page.
type Handle struct {
	p *pageState
}

// ID is the page's ID.
func (h *Handle) ID() string { return h.p.id }

// Cancel stops the page at once: a waiting page is dropped, a playing one is
// cut cleanly (outputs see their context cancelled and send their End burst
// or BYE; relays are released). It does not wait; use Wait for that.
func (h *Handle) Cancel() { h.p.cancel(errCancelled) }

// Done is closed when the page has ended and every output has returned.
func (h *Handle) Done() <-chan struct{} { return h.p.done }

// Wait blocks until the page has ended (including replays) and returns why,
// or returns ctx's error if ctx ends first.
func (h *Handle) Wait(ctx context.Context) (Reason, error) {
	select {
	case <-h.p.done:
		return h.p.reason, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// pageState is a submitted page. Fields below mu-guarded are owned by
// Gateway.mu.
type pageState struct {
	Page
	id     string
	seq    uint64 // submission order: FIFO among equal priorities
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   func() bool // unregisters the ctx watcher
	done   chan struct{}
	reason Reason // set before done is closed

	// Guarded by Gateway.mu.
	active    int  // plays waiting or running
	expired   bool // a play was dropped for waiting too long
	preempted bool // a zone was cut and not replayed
	maxPage   bool // a zone hit its max_page
	played    int  // zones that played (not cut before their outputs ran)
	failed    int  // zones where every output failed
}

// playState is where a play is in its life.
type playState uint8

const (
	playWaiting playState = iota
	playRunning
	playDone
)

// play is one attempt at a page on a set of zones: the first play has all
// the page's zones; a replay has the zones a pre-emption cut.
type play struct {
	page   *pageState
	zones  []string
	replay bool
	state  playState
	timer  *time.Timer // expiry while waiting

	// While running, guarded by Gateway.mu.
	gen     *generation
	names   []string                      // zones it holds (the play's zones that still exist)
	cancels map[string]context.CancelFunc // per zone
	ctxs    map[string]context.Context
	held    map[string]bool // zones this play still owns
	cut     map[string]bool // zones a higher page cut
}

// ahead reports whether a plays before b: higher priority first, then
// submission order.
func (a *play) ahead(b *play) bool {
	if a.page.Priority != b.page.Priority {
		return a.page.Priority > b.page.Priority
	}
	return a.page.seq < b.page.seq
}

func (a *play) overlaps(zones []string) bool {
	for _, z := range zones {
		if slices.Contains(a.zones, z) {
			return true
		}
	}
	return false
}
