package gateway

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/parkpage/parkpage/gateway/paging"
)

// Submit errors.
var (
	ErrClosed    = errors.New("gateway closed")
	ErrQueueFull = errors.New("page queue full")
	// errCancelled is the cancel cause paging.Handle.Cancel sets.
	errCancelled = errors.New("page cancelled")
)

// pageState is a submitted page. Fields below mu-guarded are owned by
// Gateway.mu.
type pageState struct {
	paging.Page
	id     string
	seq    uint64 // submission order: FIFO among equal priorities
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   func() bool // unregisters the ctx watcher
	done   chan struct{}
	reason paging.Reason // set before done is closed

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
