// Package announcer turns park events into pages. A parked call is announced
// to its slot's zones ("Sales call on seven oh four"), repeated while it stays
// parked, and cut the moment it is picked up, abandoned or rung back.
//
// It reads the events bus, so parks held by parkpage's own park server and
// parks reported by another PBX (AMI, BLF watcher, webhook) follow the same
// rules. Each slot has at most one announcement run: a new park in a slot
// replaces the run of the call before it, so rapid park and unpark never
// stacks announcements.
package announcer

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
)

// Pager plays pages; *gateway.Gateway is one.
type Pager interface {
	Submit(ctx context.Context, pg paging.Page) (*paging.Handle, error)
}

// Renderer makes announcement audio; *announce.Cache is one.
type Renderer interface {
	Get(ctx context.Context, req announce.Request) (*announce.Rendered, error)
	Prepare(ctx context.Context, req announce.Request, codecs ...codec.Name) (*announce.Rendered, error)
}

// Options are an Announcer's collaborators.
type Options struct {
	Pager Pager
	// Audio renders the announcements. If it is also a Resolver, Announce
	// checks requests with it before queueing them.
	Audio Renderer
	// Bus carries the park events the announcer follows; required.
	Bus    *events.Bus
	Logger *slog.Logger
	// Now and After are the clock for repeats; default the system clock.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// NoWarm skips rendering every slot's phrase ahead of its first park.
	NoWarm bool
	// ReleaseMemory, if set, is called after the warm-up renders, to hand
	// the synthesiser's freed C heap back to the kernel (tts.ReleaseMemory).
	ReleaseMemory func()
	// SlotParties, if set, returns the caller and parker in a local park
	// slot, for announcing a slot on request (Announce).
	SlotParties func(slot string) (caller, parker string, ok bool)
	// Parked, if set, lists the calls parked now (as call.parked events)
	// in the park server this announcer serves. After the bus reports lost
	// events the announcer resynchronises from it: it starts announcing
	// parks it missed and stops runs whose call has gone. Parks reported
	// by another PBX cannot be resynchronised.
	Parked func() []events.Event
	// Recordings, if set, are labels and announcements recorded from a
	// phone (internal/labels), used in place of synthesised words.
	Recordings Recordings
}

// Announcer follows park events and pages them.
type Announcer struct {
	o   Options
	log *slog.Logger
	cfg atomic.Pointer[config.Config]

	sub  *events.Subscription
	mu   sync.Mutex
	runs map[string]*run // by slot
	// parked holds the slots whose park has been seen and not yet ended,
	// announced or not (runs end after their repeats; the call may stay).
	parked map[string]bool
	ctx    context.Context // Run's, for the runs it starts
	wg     sync.WaitGroup
	warm   chan struct{}
}

// run is one parked call's announcements.
type run struct {
	slot   string
	cancel context.CancelFunc
}

// New returns an Announcer for cfg (it reads the announce, park and zones
// sections); Run starts it.
func New(cfg *config.Config, o Options) (*Announcer, error) {
	if o.Pager == nil || o.Audio == nil || o.Bus == nil || cfg == nil {
		return nil, errors.New("announcer: config, Pager, Audio and Bus are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	a := &Announcer{o: o, log: o.Logger.With("component", "announcer"), runs: map[string]*run{}, parked: map[string]bool{}, warm: make(chan struct{}, 1)}
	a.cfg.Store(cfg)
	return a, nil
}

// Name is the app part's name.
func (a *Announcer) Name() string { return "announcer" }

// Start subscribes to the bus, so no event published after it returns is
// missed; Run calls it if it was not called.
func (a *Announcer) Start(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sub == nil {
		a.sub = a.o.Bus.Subscribe(256)
	}
	return nil
}

// Reload applies a new config; running announcements keep the rule they
// started with, the next park uses the new one.
func (a *Announcer) Reload(cfg *config.Config) error {
	a.cfg.Store(cfg)
	select {
	case a.warm <- struct{}{}:
	default:
	}
	return nil
}

// Run follows the bus until ctx ends, then stops every announcement.
func (a *Announcer) Run(ctx context.Context) error {
	a.Start(ctx)
	a.mu.Lock()
	a.ctx = ctx
	sub := a.sub
	a.mu.Unlock()
	defer sub.Close()
	if !a.o.NoWarm {
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.warmLoop(ctx) }()
		a.warm <- struct{}{}
	}
	defer a.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			a.mu.Lock()
			for slot, r := range a.runs {
				r.cancel()
				delete(a.runs, slot)
			}
			a.mu.Unlock()
			return nil
		case e := <-sub.C():
			a.handle(e)
		}
	}
}

func (a *Announcer) handle(e events.Event) {
	switch e.Type {
	case events.CallParked, events.CallReturned:
		a.start(e)
	case events.CallMoved: // at the front desk: announce the new slot
		a.stop(e.From, string(e.Type))
		a.start(e)
	case events.CallRetrieved, events.CallAbandoned, events.CallTimedOut, events.CallRangBack:
		a.stop(e.Slot, string(e.Type))
	case events.Lost:
		if a.o.Parked == nil {
			a.log.Warn("missed events: an announcement may run on after its call ended, or a park go unannounced", "count", e.Count)
			return
		}
		a.log.Warn("missed events: resynchronising announcements with the park board", "count", e.Count)
		a.resync(a.o.Parked())
	}
}

// resync makes the announcer match the board: a parked slot it never saw
// parked is announced, a slot it thinks parked that is free stops. Slots
// parked on both sides keep their run (or its absence, once its repeats
// are done): restarting would repeat an announcement already made.
func (a *Announcer) resync(parked []events.Event) {
	want := map[string]events.Event{}
	for _, e := range parked {
		want[e.Slot] = e
	}
	a.mu.Lock()
	var stop []string
	for slot := range a.parked {
		if _, ok := want[slot]; !ok {
			stop = append(stop, slot)
		}
	}
	var start []events.Event
	for slot, e := range want {
		if !a.parked[slot] {
			start = append(start, e)
		}
	}
	a.mu.Unlock()
	for _, slot := range stop {
		a.stop(slot, "resync")
	}
	for _, e := range start {
		a.start(e)
	}
}

// Active reports the slots being announced now (for tests and the API).
func (a *Announcer) Active() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var s []string
	for slot := range a.runs {
		s = append(s, slot)
	}
	return s
}

func (a *Announcer) stop(slot, why string) {
	a.mu.Lock()
	r := a.runs[slot]
	delete(a.runs, slot)
	delete(a.parked, slot)
	a.mu.Unlock()
	if r != nil {
		a.log.Debug("announcement stopped", "slot", slot, "reason", why)
		r.cancel()
	}
}

func (a *Announcer) start(e events.Event) {
	cfg := a.cfg.Load()
	rule, ok := a.rule(cfg, e.Slot)
	if !ok {
		a.log.Info("park not announced: slot is in no configured lot", "slot", e.Slot, "source", e.Source)
		return
	}
	if e.Label != "" && rule.Label == "" {
		rule.Label = e.Label
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.parked[e.Slot] = true
	if old := a.runs[e.Slot]; old != nil {
		old.cancel()
		delete(a.runs, e.Slot)
	}
	if !rule.Enabled || a.ctx == nil || a.ctx.Err() != nil {
		return
	}
	f := announce.Fields{Caller: PartyName(e.Caller), Parker: PartyName(e.Parker)}
	specs, err := Compose(cfg, rule, f, nil)
	if err != nil {
		a.log.Error("park not announced", "slot", e.Slot, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(a.ctx)
	r := &run{slot: e.Slot, cancel: cancel}
	a.runs[e.Slot] = r
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		a.loop(ctx, r, rule, specs)
		a.mu.Lock()
		if a.runs[r.slot] == r {
			delete(a.runs, r.slot)
		}
		a.mu.Unlock()
	}()
}

// current reports whether r is still the slot's run (its call still parked).
func (a *Announcer) current(r *run) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runs[r.slot] == r
}

// loop plays the announcement, then its repeats every RepeatEvery (from the
// start of one to the start of the next, never overlapping).
func (a *Announcer) loop(ctx context.Context, r *run, rule Rule, specs []Spec) {
	for i := 0; ; i++ {
		started := a.o.Now()
		a.playOnce(ctx, r, specs)
		if ctx.Err() != nil || rule.RepeatEvery <= 0 || i >= rule.RepeatMax {
			return
		}
		wait := rule.RepeatEvery - a.o.Now().Sub(started)
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-a.o.After(wait):
		}
	}
}

func (a *Announcer) playOnce(ctx context.Context, r *run, specs []Spec) {
	var hs []*paging.Handle
	for _, s := range specs {
		h, err := a.Play(ctx, s, output.PriorityPark, func() bool { return a.current(r) })
		if err != nil {
			if ctx.Err() == nil {
				a.log.Error("announcement failed", "slot", r.slot, "zones", s.Zones, "err", err)
			}
			continue
		}
		hs = append(hs, h)
	}
	for _, h := range hs {
		select {
		case <-h.Done():
		case <-ctx.Done():
			// The call ended: cut every page of this announcement now.
			for _, h := range hs {
				h.Cancel()
			}
			return
		}
	}
}

// Play renders one spec and submits it. stillWanted, if set, marks the page
// for replay after a pre-emption while it returns true.
func (a *Announcer) Play(ctx context.Context, s Spec, prio output.Priority, stillWanted func() bool) (*paging.Handle, error) {
	rendered, err := a.o.Audio.Get(ctx, s.Request)
	if err != nil {
		return nil, err
	}
	return a.o.Pager.Submit(ctx, paging.Page{
		Priority:    prio,
		Zones:       s.Zones,
		Audio:       Audio{rendered},
		Text:        s.Text,
		CallerID:    s.CallerID,
		Replay:      stillWanted != nil,
		StillWanted: stillWanted,
	})
}

// warmLoop renders every slot's phrase ahead of its first park (and again
// after a reload), so a park starts on the wire without waiting for speech
// synthesis. Phrases that name the caller cannot be prepared.
func (a *Announcer) warmLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.warm:
		}
		cfg := a.cfg.Load()
		n := 0
		start := time.Now()
		for _, lot := range cfg.Park.Lots {
			for s := lot.Slots.First; s <= lot.Slots.Last && ctx.Err() == nil; s++ {
				rule, ok := a.rule(cfg, itoa(s))
				if !ok || !rule.Enabled || dependsOnCall(cfg, rule) {
					continue
				}
				specs, err := Compose(cfg, rule, announce.Fields{}, nil)
				if err != nil {
					continue
				}
				for _, sp := range specs {
					if _, err := a.o.Audio.Prepare(ctx, sp.Request, Codecs(cfg, sp.Zones)...); err != nil {
						if ctx.Err() == nil {
							a.log.Warn("could not prepare announcement", "slot", s, "err", err)
						}
						continue
					}
					n++
				}
			}
		}
		a.log.Debug("announcements prepared", "count", n, "took", time.Since(start))
		// Synthesis leaves several times the cache's size in freed heap
		// (about 8 MB at the default config), which the runtime would hand
		// back to the kernel only after its next collection, two minutes
		// later on an idle box: return it now, so an idle box stays small.
		debug.FreeOSMemory()
		if a.o.ReleaseMemory != nil {
			a.o.ReleaseMemory()
		}
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// rule is RuleFor with the slot's phone recordings in force.
func (a *Announcer) rule(cfg *config.Config, slot string) (Rule, bool) {
	r, ok := RuleFor(cfg, slot)
	if !ok {
		return r, false
	}
	return WithRecordings(r, a.o.Recordings), true
}

// PartyName is the speakable part of a SIP party, "Alice <sip:201@pbx>" →
// "Alice", "<sip:201@pbx>" → "201".
func PartyName(p string) string {
	p = strings.TrimSpace(p)
	if i := strings.IndexByte(p, '<'); i >= 0 {
		if name := strings.Trim(strings.TrimSpace(p[:i]), `"`); name != "" {
			return name
		}
		p = strings.TrimSuffix(p[i+1:], ">")
		if j := strings.IndexByte(p, '>'); j >= 0 {
			p = p[:j]
		}
	}
	p = strings.TrimPrefix(strings.TrimPrefix(p, "sips:"), "sip:")
	if i := strings.IndexAny(p, "@;"); i >= 0 {
		p = p[:i]
	}
	return p
}

// Audio adapts a rendered announcement to the gateway.
type Audio struct{ R *announce.Rendered }

// Frames returns the announcement encoded in c (cached in the rendering).
func (a Audio) Frames(c codec.Name) ([][]byte, error) { return a.R.Frames(c) }

// PCM returns the 16 kHz mono samples.
func (a Audio) PCM() []int16 { return a.R.PCM }
