package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/announcer"
	"github.com/parkpage/parkpage/gateway/livepage"
	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/gateway/pbxevents/ami"
	"github.com/parkpage/parkpage/gateway/pbxevents/blfwatch"
	"github.com/parkpage/parkpage/gateway/phonepage"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/app"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/lineout"
	"github.com/parkpage/parkpage/internal/sipout"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/internal/tts"
	"github.com/parkpage/parkpage/multicast"
	"github.com/parkpage/parkpage/multicast/polycom"
	"github.com/parkpage/parkpage/park"
	parksip "github.com/parkpage/parkpage/park/sip"
	"github.com/parkpage/parkpage/relays"
)

// wireOptions replace hardware and timing for tests.
type wireOptions struct {
	// Relays resolves relay pins; nil: the board's GPIO (relays.HostResolver).
	Relays relays.Resolver
	// LineOut opens sound devices; nil: the kernel's.
	LineOut func(path string) (lineout.Device, error)
	// PolycomTiming shortens the Polycom session cadence in tests.
	PolycomTiming polycom.Timing
}

// wire connects the parts of the appliance to the app.
func wire(a *app.App) error {
	_, err := wireWith(a, wireOptions{})
	return err
}

// core owns the appliance's parts and stops them in an order that lets each
// finish cleanly: announcements and outside park sources first, then the
// pages (their SIP BYEs, Polycom End bursts, relay hold times), then the
// relays (safe state), the pacer, the park server (hanging up
// parked calls) and last the SIP stack.
type core struct {
	log   *slog.Logger
	bus   *events.Bus
	opt   wireOptions
	stack *sipstack.Stack
	park  *parksip.Server
	pacer *multicast.Pacer
	gw    *gateway.Gateway
	bank  *bankHolder
	audio *audioHolder
	ann   *announcer.Announcer
	ext   *external
	live  *livepage.Server
	phone *phonepage.Receiver

	cfg atomic.Pointer[config.Config]
}

func wireWith(a *app.App, opt wireOptions) (_ *core, err error) {
	cfg, log, bus := a.Config(), a.Logger(), a.Bus()
	c := &core{log: log, bus: bus, opt: opt}
	c.cfg.Store(cfg)
	var closers []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(closers) {
				f()
			}
		}
	}()

	if c.audio, err = newAudioHolder(cfg); err != nil {
		return nil, err
	}
	if c.stack, err = sipstack.New(cfg, log); err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	closers = append(closers, func() { c.stack.Close() })
	// One sending loop for every stream: hold music, call legs, pages.
	c.pacer = multicast.NewPacer(log)
	c.pacer.RegisterMetrics(a.Metrics())
	if c.park, err = parksip.New(cfg, c.stack, bus, c.audio, log, parksip.WithPacer(c.pacer)); err != nil {
		return nil, err // sipstack says which address and what to do
	}
	resolve := opt.Relays
	if resolve == nil {
		resolve = relays.HostResolver()
	}
	if c.bank, err = newBankHolder(cfg, resolve, bus, log); err != nil {
		return nil, fmt.Errorf("relays: %w", err)
	}
	closers = append(closers, func() { c.bank.Close() })
	b := &gateway.Builder{
		Pacer:         c.pacer,
		PolycomTiming: opt.PolycomTiming,
		Logger:        log,
		SIP: func(zone string, i int, o *config.Output) (gateway.Output, error) {
			out, err := sipout.New(gateway.OutputName(zone, i), o, sipout.Options{SIP: c.stack, Media: c.park.Media(), Logger: log})
			if err != nil {
				return nil, err
			}
			return out, nil
		},
		LineOut: func(zone string, i int, o *config.Output) (gateway.Output, error) {
			out, err := lineout.New(gateway.OutputName(zone, i), o, lineout.Options{Logger: log, Open: opt.LineOut})
			if err != nil {
				return nil, err
			}
			return out, nil
		},
	}
	if c.gw, err = gateway.New(gateway.Options{Config: cfg, Outputs: b.Output, Relays: gateway.LeaseRelays(c.bank.Acquire), Events: bus, Logger: log}); err != nil {
		return nil, fmt.Errorf("zones: %w", err)
	}
	closers = append(closers, func() { c.gw.Close() })
	if c.ann, err = announcer.New(announcer.Options{Config: cfg, Pager: c.gw, Audio: c.audio, Bus: bus, Logger: log, Parked: c.parkedNow}); err != nil {
		return nil, err
	}
	if c.live, err = livepage.New(cfg, livepage.Options{SIP: c.stack, Media: c.park.Media(), Pager: c.gw, Logger: log}); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	if c.phone, err = phonepage.New(cfg, phonepage.Options{Pager: c.gw, Own: b.OwnSource, DefaultInterface: b.DefaultInterface, Logger: log}); err != nil {
		return nil, fmt.Errorf("phone_pages: %w", err)
	}
	// Config validation has checked external.*; a source that still fails
	// to start (a BLF listen address in use) is logged by Run.
	c.ext = &external{log: log, bus: bus, pending: cfg}

	c.registerMetrics(a.Metrics())
	a.AddPart(c)
	a.SetHooks(app.Hooks{Slots: c.slots, Zones: c.zones, Announce: c.announce, ParkEvent: c.parkEvent})
	return c, nil
}

func (c *core) Name() string { return "core" }
func (c *core) Start(ctx context.Context) error {
	if err := c.ann.Start(ctx); err != nil {
		return err
	}
	if err := c.live.Start(ctx); err != nil {
		return err
	}
	return c.phone.Start(ctx)
}

// Run serves until ctx ends, then stops the parts in order.
func (c *core) Run(ctx context.Context) error {
	type runner struct {
		name string
		run  func(context.Context) error
	}
	start := func(r runner, errc chan<- error) (context.CancelFunc, <-chan struct{}) {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := r.run(rctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", r.name, err)
			}
		}()
		return cancel, done
	}
	errc := make(chan error, 8)
	stopStack, stackDone := start(runner{"sip", c.stack.Run}, errc)
	stopPark, parkDone := start(runner{"park", c.park.Run}, errc)
	stopPacer, pacerDone := start(runner{"pacer", c.pacer.Run}, errc)
	stopAnn, annDone := start(runner{"announcer", c.ann.Run}, errc)
	stopExt, extDone := start(runner{"external", c.ext.Run}, errc)
	stopLive, liveDone := start(runner{"pages", c.live.Run}, errc)
	stopPhone, phoneDone := start(runner{"phone_pages", c.phone.Run}, errc)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		c.log.Error("stopping", "err", err)
	}
	stopAnn()
	stopExt()
	stopLive()
	stopPhone()
	<-annDone
	<-extDone
	<-liveDone
	<-phoneDone
	c.gw.Close()
	c.bank.Close()
	stopPacer()
	<-pacerDone
	stopPark()
	<-parkDone
	stopStack()
	<-stackDone
	return err
}

// Reload applies a validated config to every part. Parked calls, pages in
// progress and their relays carry on.
func (c *core) Reload(cfg *config.Config) error {
	var errs []error
	add := func(name string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	add("audio", c.audio.Reload(cfg))
	add("sip", c.stack.Reload(cfg))
	add("park", c.park.Reload(cfg))
	add("relays", c.bank.Reload(cfg))
	add("zones", c.gw.Reload(cfg))
	add("announcer", c.ann.Reload(cfg))
	add("external", c.ext.Reload(cfg))
	add("pages", c.live.Reload(cfg))
	add("phone_pages", c.phone.Reload(cfg))
	c.cfg.Store(cfg)
	return errors.Join(errs...)
}

func (c *core) slots() []api.Slot {
	var out []api.Slot
	for _, s := range c.park.Slots() {
		row := api.Slot{Slot: s.Slot, Lot: s.Lot, Label: s.Label, State: s.State, Caller: s.Caller, Parker: s.Parker}
		if !s.Since.IsZero() {
			t := s.Since
			row.Since = &t
		}
		out = append(out, row)
	}
	return out
}

// registerMetrics adds the appliance's gauges to /metrics (the event
// counters are the app's).
func (c *core) registerMetrics(set *metrics.Set) {
	set.NewGauge("parkpage_parked_calls", func() float64 { return float64(len(c.parkedNow())) })
	set.NewGauge("parkpage_sip_registrations", func() float64 { return float64(len(c.stack.Registrations())) })
	set.NewGauge("parkpage_rtp_legs", func() float64 { return float64(c.park.Media().Legs()) })
	set.NewGauge("parkpage_hold_music_late_ticks", func() float64 { return float64(c.park.Media().Stats().Missed) })
	set.NewGauge("parkpage_hold_music_max_tick_seconds", func() float64 { return c.park.Media().Stats().MaxWork.Seconds() })
	set.NewGauge("parkpage_zones_paging", func() float64 {
		n := 0
		for _, z := range c.gw.Zones() {
			if z.Page != "" {
				n++
			}
		}
		return float64(n)
	})
	set.NewGauge("parkpage_live_pages", func() float64 { return float64(c.live.Active()) })
	set.NewGauge("parkpage_announcements_running", func() float64 { return float64(len(c.ann.Active())) })
	cache := func() announce.CacheStats { ca, _, _ := c.audio.current(); return ca.Stats() }
	set.NewGauge("parkpage_announce_cache_hits", func() float64 { return float64(cache().Hits) })
	set.NewGauge("parkpage_announce_cache_misses", func() float64 { return float64(cache().Misses) })
	set.NewGauge("parkpage_announce_renders", func() float64 { return float64(cache().Renders) })
}

// parkedNow is the local park board as call.parked events, for the
// announcer to resynchronise after it lost events.
func (c *core) parkedNow() []events.Event {
	var es []events.Event
	for _, s := range c.park.Slots() {
		if s.State == park.StateParked {
			es = append(es, events.Event{Type: events.CallParked, Lot: s.Lot, Slot: s.Slot, Label: s.Label, Caller: s.Caller, Parker: s.Parker, Source: "local"})
		}
	}
	return es
}

func (c *core) zones() []api.Zone {
	var out []api.Zone
	for _, z := range c.gw.Zones() {
		row := api.Zone{Name: z.Name, Description: z.Description, Relays: z.Relays, Paging: z.Page, Priority: z.Priority, Outputs: []api.Output{}}
		for _, o := range z.Outputs {
			row.Outputs = append(row.Outputs, api.Output{Type: o.Type, Address: o.Address, Codec: o.Codec, Channel: o.Channel})
		}
		out = append(out, row)
	}
	return out
}

// announce serves POST /api/v1/announcements: a text, or a slot's own
// announcement, to named zones (a slot's zones when none are named).
func (c *core) announce(ctx context.Context, req api.AnnounceRequest) (string, error) {
	cfg := c.cfg.Load()
	prio := gateway.PriorityTest
	if req.Priority != "" {
		p, err := gateway.ParsePriority(req.Priority)
		if err != nil {
			return "", &api.FieldError{Field: "priority", Msg: err.Error()}
		}
		prio = p
	}
	for _, z := range req.Zones {
		if cfg.Zones[z] == nil {
			return "", &api.FieldError{Field: "zones", Msg: fmt.Sprintf("no zone %q (zones: %s)", z, strings.Join(zoneNames(cfg), ", "))}
		}
	}
	var specs []announcer.Spec
	if req.Slot != "" {
		rule, ok := announcer.RuleFor(cfg, req.Slot)
		if !ok {
			return "", &api.FieldError{Field: "slot", Msg: fmt.Sprintf("%q is not a configured park slot", req.Slot)}
		}
		var zones []string
		if len(req.Zones) > 0 {
			zones = req.Zones
		}
		if zones == nil && len(rule.Zones) == 0 {
			return "", &api.FieldError{Field: "zones", Msg: fmt.Sprintf("slot %s announces to no zone; name zones", req.Slot)}
		}
		f := announce.Fields{}
		if st, ok := c.park.Park().Slot(req.Slot); ok {
			f.Caller, f.Parker = announcer.PartyName(st.Caller), announcer.PartyName(st.Parker)
		}
		var err error
		if specs, err = announcer.Compose(cfg, rule, f, zones); err != nil {
			return "", err
		}
	} else {
		specs = []announcer.Spec{{Zones: req.Zones, Text: req.Text, Request: announce.Request{Text: req.Text, Voice: cfg.Announce.Voice, Chime: cfg.Announce.Chime, Repeat: cfg.Announce.Repeat}}}
	}
	var ids []string
	var hs []*gateway.Handle
	for _, s := range specs {
		if req.Voice != "" {
			s.Request.Voice = req.Voice
		}
		if req.Chime != nil {
			s.Request.Chime = *req.Chime
		}
		if _, err := c.audio.Resolve(s.Request); err != nil {
			return "", &api.FieldError{Field: "text", Msg: err.Error()}
		}
		// The page outlives the HTTP request unless the caller waits for it.
		pctx := context.WithoutCancel(ctx)
		h, err := c.ann.Play(pctx, s, prio, nil)
		if err != nil {
			return "", err
		}
		ids = append(ids, h.ID())
		hs = append(hs, h)
	}
	if req.Wait {
		for _, h := range hs {
			if _, err := h.Wait(ctx); err != nil {
				return strings.Join(ids, ","), err
			}
		}
	}
	return strings.Join(ids, ","), nil
}

// parkEvent serves the webhook: another system's park, announced like ours.
func (c *core) parkEvent(ctx context.Context, req api.ParkEventRequest) error {
	kind := pbxevents.Kind(req.Event)
	cfg := c.cfg.Load()
	local := pbxevents.NewSlotMapper(cfg.External.SlotMap).Local(req.Slot)
	c.bus.Publish(pbxevents.ParkEvent{Kind: kind, Slot: local, ExternalSlot: req.Slot, Caller: req.Caller, Parker: req.Parker,
		Source: pbxevents.SourceWebhook, Time: time.Now()}.BusEvent())
	return nil
}

func zoneNames(cfg *config.Config) []string {
	var names []string
	for n := range cfg.Zones {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// audioHolder renders announcements with the config's voice and levels; a
// reload that changes them swaps in a new renderer and cache. It is also
// the park server's speaker for its spoken prompts.
type audioHolder struct {
	mu    sync.Mutex
	ann   config.Announce
	cache *announce.Cache
	rend  *announce.Renderer
	tts   *tts.Engine
}

func newAudioHolder(cfg *config.Config) (*audioHolder, error) {
	h := &audioHolder{}
	return h, h.Reload(cfg)
}

func (h *audioHolder) Reload(cfg *config.Config) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cache != nil && reflect.DeepEqual(h.ann, cfg.Announce) {
		return nil
	}
	a := cfg.Announce
	engine, err := tts.New(a.Voice)
	if err != nil {
		return fmt.Errorf("announce.voice: %w", err)
	}
	r, err := announce.NewRenderer(announce.Config{Voice: a.Voice, Chime: a.Chime, TargetDBFS: a.Loudness, CeilingDBFS: a.Peak, LeadIn: a.LeadIn.D()})
	if err != nil {
		return err
	}
	h.ann, h.rend, h.tts, h.cache = a, r, engine, announce.NewCache(r, 64)
	return nil
}

func (h *audioHolder) current() (*announce.Cache, *announce.Renderer, *tts.Engine) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cache, h.rend, h.tts
}

func (h *audioHolder) Get(ctx context.Context, req announce.Request) (*announce.Rendered, error) {
	c, _, _ := h.current()
	return c.Get(ctx, req)
}

func (h *audioHolder) Prepare(ctx context.Context, req announce.Request, codecs ...codec.Name) (*announce.Rendered, error) {
	c, _, _ := h.current()
	return c.Prepare(ctx, req, codecs...)
}

func (h *audioHolder) Resolve(req announce.Request) (announce.Request, error) {
	_, r, _ := h.current()
	return r.Resolve(req)
}

// Synthesize speaks the park server's prompts ("seven oh four").
func (h *audioHolder) Synthesize(ctx context.Context, text string) ([]int16, error) {
	_, _, e := h.current()
	return e.Synthesize(ctx, text)
}

// bankHolder is the relay bank. A reload applies the new relays in place
// (relays.Bank.Reload): removed and rewired relays go off at once, relays a
// playing page holds stay on until it ends.
type bankHolder struct {
	mu      sync.Mutex
	bank    *relays.Bank
	resolve relays.Resolver
}

func newBankHolder(cfg *config.Config, resolve relays.Resolver, bus *events.Bus, log *slog.Logger) (*bankHolder, error) {
	b, err := relays.New(cfg, resolve, relays.Options{Events: bus, Logger: log})
	if err != nil {
		return nil, err
	}
	return &bankHolder{bank: b, resolve: resolve}, nil
}

func (h *bankHolder) Reload(cfg *config.Config) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bank == nil {
		return relays.ErrClosed
	}
	return h.bank.Reload(cfg, h.resolve)
}

func (h *bankHolder) Acquire(ctx context.Context, zones []string) (*relays.Lease, error) {
	h.mu.Lock()
	b := h.bank
	h.mu.Unlock()
	if b == nil {
		return nil, relays.ErrClosed
	}
	return b.Acquire(ctx, zones)
}

func (h *bankHolder) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bank == nil {
		return nil
	}
	err := h.bank.Close()
	h.bank = nil
	return err
}

// external runs the park event sources of another PBX (AMI, BLF watcher)
// for the config in force, restarting them when their config changes.
type external struct {
	log *slog.Logger
	bus *events.Bus

	mu      sync.Mutex
	ctx     context.Context // Run's
	pending *config.Config  // the config to start with
	cur     config.External
	cancel  context.CancelFunc
	done    chan struct{}
	reload  chan struct{}
}

func (e *external) Run(ctx context.Context) error {
	e.mu.Lock()
	e.ctx = ctx
	cfg := e.pending
	e.mu.Unlock()
	if err := e.Reload(cfg); err != nil {
		e.log.Error("park events from the PBX", "err", err)
	}
	<-ctx.Done()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopLocked()
	return nil
}

func (e *external) stopLocked() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel, e.done = nil, nil
	}
}

// Reload (re)starts the sources if their config changed.
func (e *external) Reload(cfg *config.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending = cfg
	if e.ctx == nil || e.ctx.Err() != nil {
		return nil
	}
	if e.cancel != nil && reflect.DeepEqual(e.cur, cfg.External) {
		return nil
	}
	e.stopLocked()
	e.cur = cfg.External
	x := cfg.External
	if x.AMI == nil && x.BLF == nil {
		e.cancel, e.done = func() {}, closedChan()
		return nil
	}
	mapper := pbxevents.NewSlotMapper(x.SlotMap)
	sink := func(ev pbxevents.ParkEvent) { e.bus.Publish(ev.BusEvent()) }
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	var errs []error
	if x.AMI != nil {
		c, err := ami.New(*x.AMI, ami.Options{Sink: sink, Mapper: mapper, Logger: e.log})
		if err != nil {
			errs = append(errs, fmt.Errorf("ami: %w", err))
		} else {
			wg.Go(func() { c.Run(ctx) })
		}
	}
	if x.BLF != nil {
		if err := e.startBLF(ctx, &wg, *x.BLF, sink, mapper); err != nil {
			errs = append(errs, fmt.Errorf("blf: %w", err))
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	e.cancel, e.done = cancel, done
	return errors.Join(errs...)
}

func (e *external) startBLF(ctx context.Context, wg *sync.WaitGroup, cfg config.BLFWatch, sink pbxevents.Sink, mapper *pbxevents.SlotMapper) error {
	user := cfg.Username
	if user == "" {
		user = "parkpage"
	}
	ep, err := blfwatch.Listen(cfg.Listen, user, e.log)
	if err != nil {
		return err
	}
	w, err := blfwatch.New(cfg, blfwatch.Options{Client: ep.Client, Contact: ep.Contact, Sink: sink, Mapper: mapper, Logger: e.log})
	if err != nil {
		ep.Close()
		return err
	}
	ep.OnNotify(w.OnNotify)
	wg.Go(func() {
		defer ep.Close()
		w.Run(ctx)
	})
	return nil
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
