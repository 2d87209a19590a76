package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/announcer"
	"github.com/parkpage/parkpage/gateway/labelrec"
	"github.com/parkpage/parkpage/gateway/livepage"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/output/lineout"
	"github.com/parkpage/parkpage/gateway/output/sipamp"
	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/gateway/pbxevents/ami"
	"github.com/parkpage/parkpage/gateway/pbxevents/blfwatch"
	"github.com/parkpage/parkpage/gateway/phonepage"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/app"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/console"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/labels"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
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
	// SetMixer unmutes a line-out card's playback path at 0 dB before
	// each page (run -set-mixer; the appliance, which has no alsactl).
	SetMixer bool
	// RelaySentinel, if set, is where the relays' lines and this pid are
	// written for a crash watcher (run -relay-sentinel; on the image
	// parkpage-guard drives them off the moment parkpage dies).
	RelaySentinel string
	// PolycomTiming shortens the Polycom session cadence in tests.
	PolycomTiming polycom.Timing
}

// wire connects the parts of the appliance to the app.
func wire(a *app.App, opt wireOptions) error {
	_, err := wireWith(a, opt)
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
	media *media.Engine
	park  *parksip.Server
	pacer *multicast.Pacer
	gw    *gateway.Gateway
	bank  *relays.Bank
	audio *announce.Service
	ann   *announcer.Announcer
	ext   *pbxevents.Sources
	live  *livepage.Server
	phone *phonepage.Receiver
	recs  *labels.Store
	rec   *labelrec.Server
}

func wireWith(a *app.App, opt wireOptions) (_ *core, err error) {
	cfg, log, bus := a.Config(), a.Logger(), a.Bus()
	c := &core{log: log, bus: bus, opt: opt}
	// Parts below read what they saved in the state directory (call
	// journal, BLF subscriptions, labels): one clear error if it is unusable.
	if err := a.CheckStateDir(); err != nil {
		return nil, err
	}
	var closers []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(closers) {
				f()
			}
		}
	}()

	// Relays first: New drives every relay off, and after a crash (the
	// supervisor restarting us) that is what must happen soonest; the
	// rest of the wiring takes seconds on a slow box.
	if c.bank, err = relays.New(relays.ConfigOf(cfg), relays.Options{Resolve: opt.Relays, Events: bus, Logger: log}); err != nil {
		return nil, fmt.Errorf("relays: %w", err)
	}
	closers = append(closers, func() { c.bank.Close() })
	c.writeRelaySentinel(cfg)

	if c.audio, err = announce.NewService(cfg.Announce); err != nil {
		return nil, err
	}
	for voice, texts := range announcer.Phrases(cfg) {
		if missing := c.audio.MissingPrompts(voice, texts...); len(missing) > 0 {
			log.Warn("voice prompts: no recording for these words, the fallback TTS voice speaks them", "words", strings.Join(missing, " "), "fallback", cfg.Announce.PromptFallback)
		}
	}
	if c.stack, err = sipstack.New(cfg, log); err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	closers = append(closers, func() { c.stack.Close() })
	if err = c.stack.Listen(); err != nil {
		return nil, err // sipstack says which address and what to do
	}
	// One sending loop for every stream: hold music, call legs, pages.
	c.pacer = multicast.NewPacer(log)
	c.pacer.RegisterMetrics(a.Metrics())
	// One RTP engine for every SIP user: parked calls and hold music, SIP
	// amplifiers, live pages; it sends through the pacer.
	rtp := parksip.MediaConfig(cfg, c.stack)
	rtp.Pacer = c.pacer
	if c.media, err = media.NewEngine(rtp, log.With("component", "media")); err != nil {
		return nil, fmt.Errorf("rtp: %w", err)
	}
	if c.park, err = parksip.New(cfg, parksip.Options{Stack: c.stack, Bus: bus, Speaker: c.audio, Logger: log, Media: c.media,
		Journal: filepath.Join(cfg.StateDir, "calls.journal")}); err != nil {
		return nil, err // sipstack says which address and what to do
	}
	// After the park server: its slots (resumed ones too) are the state
	// resumed BLF subscribers are told at once.
	if _, err := c.stack.KeepSubscriptions(filepath.Join(cfg.StateDir, "blf-subscriptions.json")); err != nil {
		return nil, err
	}
	var mixer func(string) ([]lineout.MixerChange, error)
	if opt.SetMixer && opt.LineOut == nil {
		mixer = lineout.SetPlaybackPath
	}
	mc := multicast.NewOutputs(multicast.OutputsOptions{Pacer: c.pacer, PolycomTiming: opt.PolycomTiming, Logger: log})
	kinds := output.Kinds{
		config.OutputPolycom: mc.Polycom,
		config.OutputRTP:     mc.RTP,
		config.OutputSIP:     sipamp.Factory(sipamp.Options{SIP: c.stack, Media: c.media, Logger: log}),
		config.OutputLineOut: lineout.Factory(lineout.Options{Logger: log, Open: opt.LineOut, Mixer: mixer}),
	}
	if c.gw, err = gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Relays: gateway.LeaseRelays(c.bank.Acquire), Events: bus, Logger: log}); err != nil {
		return nil, fmt.Errorf("zones: %w", err)
	}
	closers = append(closers, func() { c.gw.Close() })
	// Labels recorded from phones live in the state directory (read at
	// start; the directory is made on the first recording).
	if c.recs, err = labels.Open(filepath.Join(cfg.StateDir, "labels"), log); err != nil {
		return nil, err
	}
	if c.ann, err = announcer.New(cfg, announcer.Options{Pager: c.gw, Audio: c.audio, Bus: bus, Logger: log,
		Parked: c.parkedNow, SlotParties: c.slotParties, Recordings: c.recs, ReleaseMemory: c.audio.ReleaseMemory}); err != nil {
		return nil, err
	}
	if c.rec, err = labelrec.New(cfg, labelrec.Options{SIP: c.stack, Media: c.media, Store: c.recs, Speaker: c.audio, Logger: log, Metrics: a.Metrics()}); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if c.live, err = livepage.New(cfg, livepage.Options{SIP: c.stack, Media: c.media, Pager: c.gw, Logger: log}); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	if c.phone, err = phonepage.New(cfg.PhonePages, phonepage.Options{Pager: c.gw, Own: mc.OwnSource, Logger: log}); err != nil {
		return nil, fmt.Errorf("phone_pages: %w", err)
	}
	// Config validation has checked external.*; a source that still fails
	// to start is logged by Run.
	if c.ext, err = pbxevents.NewSources(cfg.External, pbxevents.SourcesOptions{Bus: bus, AMI: ami.Source, BLF: blfwatch.Source(c.stack), Logger: log}); err != nil {
		return nil, err
	}

	// The console's history, phones and status pages, and the parker
	// feedback (wire_console.go).
	if err = c.wireOps(a); err != nil {
		return nil, err
	}
	c.registerMetrics(a.Metrics(), cfg)
	a.AddPart(c)
	registerDrainMetrics(a.Metrics(), c.park)
	a.SetHooks(app.Hooks{Slots: c.slots, Zones: c.zones, Announce: c.ann.Announce, ParkEvent: c.ext.Webhook,
		Labels:  labelsAPI{c.recs, func() float64 { return a.Config().Announce.Loudness }},
		Drainer: parkDrainer{c.park}})
	a.SetSetupHooks(c.setupHooks(a)) // wire_setup.go
	// The console's front desk acts on parked calls through the park server.
	a.ConsoleEnv().Provide(console.DeskKey, console.Desk(c.park))
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
	if err := c.rec.Start(ctx); err != nil {
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
	stopMedia, mediaDone := start(runner{"rtp", c.media.Run}, errc)
	stopPark, parkDone := start(runner{"park", c.park.Run}, errc)
	stopPacer, pacerDone := start(runner{"pacer", c.pacer.Run}, errc)
	stopAnn, annDone := start(runner{"announcer", c.ann.Run}, errc)
	stopExt, extDone := start(runner{"external", c.ext.Run}, errc)
	stopLive, liveDone := start(runner{"pages", c.live.Run}, errc)
	stopPhone, phoneDone := start(runner{"phone_pages", c.phone.Run}, errc)
	stopRec, recDone := start(runner{"labels", c.rec.Run}, errc)

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
	stopRec()
	<-recDone
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
	stopMedia()
	<-mediaDone
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
	add("audio", c.audio.Reload(cfg.Announce))
	add("sip", c.stack.Reload(cfg))
	add("park", c.park.Reload(cfg))
	add("relays", c.bank.Reload(relays.ConfigOf(cfg)))
	c.writeRelaySentinel(cfg)
	add("zones", c.gw.Reload(cfg.Zones))
	add("announcer", c.ann.Reload(cfg))
	add("external", c.ext.Reload(cfg.External))
	add("pages", c.live.Reload(cfg))
	add("phone_pages", c.phone.Reload(cfg.PhonePages))
	add("labels", c.rec.Reload(cfg))
	return errors.Join(errs...)
}

func (c *core) slots() []api.Slot {
	var out []api.Slot
	for _, s := range c.park.Slots() {
		row := api.Slot{Slot: s.Slot, Lot: s.Lot, Label: s.Label, State: s.State, Caller: s.Caller, Parker: s.Parker,
			Timeout: s.Timeout.Seconds(), Returned: s.Returned, RingTarget: s.RingTarget}
		if !s.Since.IsZero() {
			t := s.Since
			row.Since = &t
		}
		if !s.ParkedAt.IsZero() {
			t := s.ParkedAt
			row.ParkedAt = &t
		}
		out = append(out, row)
	}
	return out
}

// registerMetrics adds the appliance's gauges to /metrics (the event
// counters are the app's).
func (c *core) registerMetrics(set *metrics.Set, cfg *config.Config) {
	c.stack.UseMetrics(set) // SIP failed logins and lockouts
	// Every output's failure counter at 0 from the start (the app counts them).
	for zone, z := range cfg.Zones {
		for i := range z.Outputs {
			set.GetOrCreateCounter(fmt.Sprintf(`parkpage_output_failures_total{output=%q}`, output.Name(zone, i)))
		}
	}
	set.NewGauge("parkpage_parked_calls", func() float64 { return float64(len(c.parkedNow())) })
	set.NewGauge("parkpage_sip_registrations", func() float64 { return float64(len(c.stack.Registrations())) })
	set.NewGauge("parkpage_rtp_legs", func() float64 { return float64(c.media.Legs()) })
	set.NewGauge("parkpage_hold_music_late_ticks", func() float64 { return float64(c.media.Stats().Missed) })
	set.NewGauge("parkpage_hold_music_max_tick_seconds", func() float64 { return c.media.Stats().MaxWork.Seconds() })
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
	cache := c.audio.Stats
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

// slotParties is the caller and parker in a local slot, for announcing a
// slot on request.
func (c *core) slotParties(slot string) (caller, parker string, ok bool) {
	st, ok := c.park.Park().Slot(slot)
	return st.Caller, st.Parker, ok
}

// writeRelaySentinel tells the crash watcher which lines to drive off if
// this process dies (opt.RelaySentinel); a failure costs only that.
func (c *core) writeRelaySentinel(cfg *config.Config) {
	if c.opt.RelaySentinel == "" {
		return
	}
	os.MkdirAll(filepath.Dir(c.opt.RelaySentinel), 0o755)
	if err := relays.WriteSentinel(c.opt.RelaySentinel, relays.SentinelOf(relays.ConfigOf(cfg), os.Getpid())); err != nil {
		c.log.Warn("relays: crash watcher not told", "err", err)
	}
}
