package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
)

// Defaults for Options.
const (
	DefaultMaxQueue = 16
	DefaultMaxWait  = 30 * time.Second
	DefaultCutGrace = 2 * time.Second
)

// Options are a Gateway's collaborators and tuning.
type Options struct {
	// Outputs makes each configured output; the wiring passes an
	// output.Kinds' Output method.
	Outputs output.Factory
	// Relays switches zone relays; nil: no relays.
	Relays Relays
	// Events receives PageStarted, PagePreempted, PageEnded and
	// OutputFailed; nil: none published.
	Events *events.Bus
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// MaxQueue bounds the pages waiting ahead of a new one on any of its
	// zones; Submit refuses a page beyond it. Default DefaultMaxQueue.
	MaxQueue int
	// MaxWait is how long a page may wait for its zones before it is dropped
	// ("expired"). Default DefaultMaxWait.
	MaxWait time.Duration
	// CutGrace is how long a cut zone's outputs may take to end cleanly
	// before the zone is handed to the next page anyway (the stragglers are
	// still waited for before their page ends). Default DefaultCutGrace.
	CutGrace time.Duration
}

// Gateway schedules pages over zones by priority and plays them on the
// zones' outputs and relays.
//
// Scheduling: waiting pages are ordered by priority, then submission. A page
// starts when every one of its zones is free of pages of equal or higher
// priority and no page ahead of it is waiting for any of its zones (so a
// multi-zone page is never starved by a stream of smaller ones). Lower pages
// on its zones are cut; the page starts once they have drained (their
// outputs ended cleanly, at most CutGrace later). A page plays on all its
// zones together.
type Gateway struct {
	log      *slog.Logger
	relays   Relays
	bus      *events.Bus
	factory  output.Factory
	maxQueue int
	maxWait  time.Duration
	grace    time.Duration

	runs     sync.WaitGroup // play goroutines
	watchers sync.WaitGroup // ctx watchers and expiry timers that may still fire

	mu      sync.Mutex
	closed  bool
	gen     *generation
	owner   map[string]*play // zone -> running play holding it
	waiting []*play          // play order: ahead first
	pages   map[string]*pageState
	seq     uint64
}

// New makes a gateway with the zones of config section zones, their
// outputs made by opts.Outputs.
func New(zones map[string]*config.Zone, opts Options) (*Gateway, error) {
	built, err := BuildZones(zones, opts.Outputs)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{
		log:      opts.Logger,
		relays:   opts.Relays,
		bus:      opts.Events,
		factory:  opts.Outputs,
		maxQueue: opts.MaxQueue,
		maxWait:  opts.MaxWait,
		grace:    opts.CutGrace,
		gen:      &generation{zones: built},
		owner:    map[string]*play{},
		pages:    map[string]*pageState{},
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.maxQueue <= 0 {
		g.maxQueue = DefaultMaxQueue
	}
	if g.maxWait <= 0 {
		g.maxWait = DefaultMaxWait
	}
	if g.grace <= 0 {
		g.grace = DefaultCutGrace
	}
	return g, nil
}

// Submit queues a page and starts it at once if its zones allow. The page
// lives until it has played, is cancelled (paging.Handle.Cancel, or ctx ending), or
// expires; callers that return before the page ends (an HTTP handler) should
// pass context.WithoutCancel(ctx).
func (g *Gateway) Submit(ctx context.Context, pg paging.Page) (*paging.Handle, error) {
	if pg.Audio == nil {
		return nil, errors.New("submit page: no audio")
	}
	if pg.Priority < output.PriorityTest || pg.Priority > output.PriorityEmergency {
		return nil, fmt.Errorf("submit page: bad priority %d", int(pg.Priority))
	}
	zones := make([]string, 0, len(pg.Zones))
	for _, z := range pg.Zones {
		if !slices.Contains(zones, z) {
			zones = append(zones, z)
		}
	}
	if len(zones) == 0 {
		return nil, errors.New("submit page: no zones")
	}
	pg.Zones = zones
	if pg.ID == "" {
		pg.ID = fmt.Sprintf("%016x", rand.Uint64())
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	for _, z := range zones {
		if _, ok := g.gen.zones[z]; !ok {
			return nil, fmt.Errorf("submit page %s: zone %q: no such zone", pg.ID, z)
		}
	}
	if _, dup := g.pages[pg.ID]; dup {
		return nil, fmt.Errorf("submit page %s: already submitted", pg.ID)
	}
	for _, z := range zones {
		n := 0
		for _, w := range g.waiting {
			if w.page.Priority >= pg.Priority && slices.Contains(w.zones, z) {
				n++
			}
		}
		if n >= g.maxQueue {
			return nil, fmt.Errorf("submit page %s: zone %q: %w (%d waiting)", pg.ID, z, ErrQueueFull, n)
		}
	}

	g.seq++
	p := &pageState{Page: pg, id: pg.ID, seq: g.seq, done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	g.watchers.Add(1)
	p.stop = context.AfterFunc(p.ctx, func() {
		defer g.watchers.Done()
		g.pageCancelled(p)
	})
	g.pages[p.id] = p
	g.log.Debug("page queued", "page", p.id, "priority", p.Priority, "zones", zones)
	g.enqueue(&play{page: p, zones: zones})
	g.schedule()
	return paging.NewHandle(p.id, func() { p.cancel(errCancelled) }, p.done, func() paging.Reason { return p.reason }), nil
}

// Zones returns a snapshot of the zones, sorted by name, with the page each
// is playing.
func (g *Gateway) Zones() []paging.ZoneInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]paging.ZoneInfo, 0, len(g.gen.zones))
	for _, z := range g.gen.zones {
		zi := paging.ZoneInfo{
			Name:        z.Name,
			Description: z.Description,
			Outputs:     make([]paging.OutputInfo, 0, len(z.Outputs)),
			Relays:      slices.Clone(z.Relays),
		}
		if z.MaxPage > 0 {
			zi.MaxPage = z.MaxPage.String()
		}
		for _, o := range z.Outputs {
			zi.Outputs = append(zi.Outputs, describe(o))
		}
		if o := g.owner[z.Name]; o != nil {
			zi.Page = o.page.id
			zi.Priority = o.page.Priority.String()
		}
		for _, w := range g.waiting {
			if slices.Contains(w.zones, z.Name) {
				zi.Waiting++
			}
		}
		out = append(out, zi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Reload swaps in the zones of config section zones. Pages already playing finish on the old
// outputs, which are closed when the last of them ends; waiting pages play
// on the new definitions (skipping zones that no longer exist). On error the
// old zones stay.
func (g *Gateway) Reload(zones map[string]*config.Zone) error {
	built, err := BuildZones(zones, g.factory)
	if err != nil {
		return fmt.Errorf("reload zones: %w", err)
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		closeZones(built)
		return ErrClosed
	}
	old := g.gen
	old.retired = true
	g.gen = &generation{zones: built}
	g.schedule()
	closeOld := old.refs == 0
	g.mu.Unlock()
	g.log.Info("zones reloaded", "zones", len(built))
	if closeOld {
		if err := closeZones(old.zones); err != nil {
			g.log.Warn("closing old outputs", "err", err)
		}
	}
	return nil
}

// Close cuts every page ("closed"), waits for their outputs and relays to
// finish, and closes the outputs.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		g.runs.Wait()
		return nil
	}
	g.closed = true
	for _, p := range g.pages {
		p.cancel(ErrClosed)
	}
	for _, w := range slices.Clone(g.waiting) {
		g.removeWaiting(w)
		g.playDone(w)
	}
	g.mu.Unlock()
	g.runs.Wait()
	g.watchers.Wait()
	g.mu.Lock()
	gen := g.gen
	gen.retired = true
	g.mu.Unlock()
	return closeZones(gen.zones)
}

func (g *Gateway) publish(e events.Event) {
	if g.bus != nil {
		g.bus.Publish(e)
	}
}

func (g *Gateway) pageEvent(t events.Type, p *pageState, zones []string, reason string) events.Event {
	return events.Event{
		Type:     t,
		Page:     p.id,
		Priority: p.Priority.String(),
		Zones:    slices.Clone(zones),
		Text:     p.Text,
		Reason:   reason,
	}
}

// enqueue adds w to the waiting list in play order and arms its expiry.
// Called with g.mu held.
func (g *Gateway) enqueue(w *play) {
	w.page.active++
	w.state = playWaiting
	i := sort.Search(len(g.waiting), func(i int) bool { return w.ahead(g.waiting[i]) })
	g.waiting = slices.Insert(g.waiting, i, w)
	g.watchers.Add(1)
	w.timer = time.AfterFunc(g.maxWait, func() {
		defer g.watchers.Done()
		g.expire(w)
	})
}

// removeWaiting takes w off the waiting list. Called with g.mu held.
func (g *Gateway) removeWaiting(w *play) {
	if i := slices.Index(g.waiting, w); i >= 0 {
		g.waiting = slices.Delete(g.waiting, i, i+1)
	}
	if w.timer != nil && w.timer.Stop() {
		g.watchers.Done()
	}
	w.timer = nil
}

// expire drops w if it is still waiting.
func (g *Gateway) expire(w *play) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.state != playWaiting || w.timer == nil {
		return
	}
	w.timer = nil // fired: removeWaiting must not count it again
	g.removeWaiting(w)
	w.page.expired = true
	g.log.Info("page expired waiting for its zones", "page", w.page.id, "zones", w.zones, "max_wait", g.maxWait)
	g.playDone(w)
	g.schedule()
}

// pageCancelled drops the waiting plays of p; its running plays see their
// contexts end.
func (g *Gateway) pageCancelled(p *pageState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range slices.Clone(g.waiting) {
		if w.page == p {
			g.removeWaiting(w)
			g.playDone(w)
		}
	}
	g.schedule()
}

// schedule starts every waiting play that may start. Called with g.mu held.
func (g *Gateway) schedule() {
	if g.closed {
		return
	}
	blocked := map[string]bool{} // zones a play ahead is waiting for
	var replays []*play
	for i := 0; i < len(g.waiting); {
		w := g.waiting[i]
		if g.tryStart(w, blocked, &replays) {
			continue // w left the list; i is now the next play
		}
		for _, z := range w.zones {
			blocked[z] = true
		}
		i++
	}
	// Replays wait for zones their own page still holds (draining), so they
	// cannot start in this pass.
	for _, r := range replays {
		g.enqueue(r)
	}
}

// tryStart starts w if nothing of equal or higher priority is in its way,
// cutting lower plays on its zones first. It reports whether w started.
func (g *Gateway) tryStart(w *play, blocked map[string]bool, replays *[]*play) bool {
	for _, z := range w.zones {
		if blocked[z] {
			return false
		}
		if o := g.owner[z]; o != nil && o.page.Priority >= w.page.Priority {
			return false
		}
	}
	free := true
	var lower []*play
	for _, z := range w.zones {
		if o := g.owner[z]; o != nil {
			free = false
			if !slices.Contains(lower, o) {
				lower = append(lower, o)
			}
		}
	}
	for _, o := range lower {
		g.preempt(o, w, replays)
	}
	if !free {
		return false // starts when the cut zones have drained
	}
	g.start(w)
	return true
}

// preempt cuts o on the zones it shares with w. Called with g.mu held.
func (g *Gateway) preempt(o, w *play, replays *[]*play) {
	var cut []string
	for _, z := range w.zones {
		if o.held[z] && !o.cut[z] {
			o.cut[z] = true
			o.cancels[z]()
			cut = append(cut, z)
		}
	}
	if len(cut) == 0 {
		return
	}
	p := o.page
	by := fmt.Sprintf("preempted by %s page %s", w.page.Priority, w.page.id)
	g.log.Info("page preempted", "page", p.id, "zones", cut, "by", w.page.id, "by_priority", w.page.Priority)
	g.publish(g.pageEvent(events.PagePreempted, p, cut, by))
	if p.Replay && p.ctx.Err() == nil {
		*replays = append(*replays, &play{page: p, zones: cut, replay: true})
	} else {
		p.preempted = true
	}
}

// start takes w's zones and plays it. Called with g.mu held.
func (g *Gateway) start(w *play) {
	g.removeWaiting(w)
	w.state = playRunning
	w.gen = g.gen
	w.gen.refs++
	w.ctxs = map[string]context.Context{}
	w.cancels = map[string]context.CancelFunc{}
	w.held = map[string]bool{}
	w.cut = map[string]bool{}
	var zones []*Zone
	var names []string
	for _, n := range w.zones {
		z := w.gen.zones[n]
		if z == nil {
			g.log.Warn("page zone removed by reload; skipped", "page", w.page.id, "zone", n)
			continue
		}
		w.ctxs[n], w.cancels[n] = context.WithCancel(w.page.ctx)
		w.held[n] = true
		g.owner[n] = w
		zones = append(zones, z)
		names = append(names, n)
	}
	w.names = names
	if !w.replay {
		g.started(w)
	} // a replay announces itself once StillWanted agrees
	g.runs.Add(1)
	go g.run(w, zones)
}

// started logs and publishes w's start. Called with g.mu held.
func (g *Gateway) started(w *play) {
	reason := ""
	if w.replay {
		reason = "replay"
	}
	g.log.Info("page started", "page", w.page.id, "priority", w.page.Priority, "zones", w.names, "replay", w.replay)
	g.publish(g.pageEvent(events.PageStarted, w.page, w.names, reason))
}

// run plays w on zones and returns once every output has returned.
func (g *Gateway) run(w *play, zones []*Zone) {
	defer g.runs.Done()
	if w.replay {
		wanted := w.page.StillWanted == nil || w.page.StillWanted()
		g.mu.Lock()
		if !wanted {
			g.log.Info("replay no longer wanted", "page", w.page.id, "zones", w.zones)
			w.page.preempted = true
			closers := g.finishPlay(w)
			g.mu.Unlock()
			g.closeRetired(closers)
			return
		}
		g.started(w)
		g.mu.Unlock()
	}
	var zoneRuns, outputs sync.WaitGroup
	for _, z := range zones {
		zoneRuns.Add(1)
		go func() {
			defer zoneRuns.Done()
			g.playZone(w, z, &outputs)
		}()
	}
	zoneRuns.Wait()
	outputs.Wait() // stragglers after a cut
	g.mu.Lock()
	closers := g.finishPlay(w)
	g.mu.Unlock()
	g.closeRetired(closers)
}

// finishPlay releases what w still holds and ends it; it returns a retired
// generation to close, if w was its last user. Called with g.mu held.
func (g *Gateway) finishPlay(w *play) *generation {
	for z := range w.held {
		if g.owner[z] == w {
			delete(g.owner, z)
		}
	}
	w.held = nil
	for _, c := range w.cancels {
		c()
	}
	gen := w.gen
	gen.refs--
	g.playDone(w)
	g.schedule()
	if gen.retired && gen.refs == 0 && gen != g.gen {
		return gen
	}
	return nil
}

func (g *Gateway) closeRetired(gen *generation) {
	if gen == nil {
		return
	}
	if err := closeZones(gen.zones); err != nil {
		g.log.Warn("closing old outputs", "err", err)
	}
}

// playDone ends w and, with its last play, its page. Called with g.mu held.
func (g *Gateway) playDone(w *play) {
	w.state = playDone
	p := w.page
	p.active--
	if p.active > 0 {
		return
	}
	var r paging.Reason
	cause := context.Cause(p.ctx)
	switch {
	case errors.Is(cause, ErrClosed):
		r = paging.ReasonClosed
	case cause != nil:
		r = paging.ReasonCancelled
	case p.expired:
		r = paging.ReasonExpired
	case p.preempted:
		r = paging.ReasonPreempted
	case p.maxPage:
		r = paging.ReasonMaxPage
	case p.played == 0 || p.failed == p.played:
		r = paging.ReasonFailed
	default:
		r = paging.ReasonDone
	}
	if p.stop() {
		g.watchers.Done()
	}
	p.cancel(context.Canceled)
	delete(g.pages, p.id)
	p.reason = r
	g.log.Info("page ended", "page", p.id, "priority", p.Priority, "reason", r)
	g.publish(g.pageEvent(events.PageEnded, p, p.Zones, string(r)))
	close(p.done)
}
