// Package parksip connects the park logic (package park) to SIP and RTP:
// it answers park calls (blind transfer with Referred-By or a configured
// header, attended transfer completed with Replaces, a consultation call
// to an empty slot), plays hold music, bridges pickups, places ring-back
// and fallback calls with a whisper to whoever answers, feeds the BLF
// notifier, and cleans up parked legs whose RTP stops or whose RFC 4028
// session timer lapses.
//
// Media is bridged through parkpage rather than re-INVITEd end to end;
// see package media for why.
package parksip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/park"
)

// Speaker turns text into 16 kHz mono PCM (tts.Engine satisfies it).
type Speaker interface {
	Synthesize(ctx context.Context, text string) ([]int16, error)
}

// Option tunes a Server.
type Option func(*options)

type options struct {
	media      *media.Engine
	pacer      *pacer.Pacer
	clock      park.Clock
	housekeep  time.Duration
	minSE      time.Duration
	answerWait time.Duration
	normalPrio bool
}

// WithMedia makes the server use an existing media engine (shared with
// other SIP users such as the SIP amplifier output); its owner runs it.
// Without it the server creates and runs its own from sip.rtp_ports.
func WithMedia(e *media.Engine) Option { return func(o *options) { o.media = e } }

// WithPacer makes the server's own media engine send through p, the
// appliance's one sending loop (shared with the multicast pages); p's
// owner runs it. Without it the engine runs a pacer of its own.
func WithPacer(p *pacer.Pacer) Option { return func(o *options) { o.pacer = p } }

// WithNormalPriority keeps the hold-music pacer thread at normal
// scheduling priority. By default it asks for SCHED_FIFO (granted to root
// or with CAP_SYS_NICE, e.g. the systemd unit's AmbientCapabilities) and
// carries on at normal priority, a little less even, when refused. A
// shared pacer (WithPacer) has its own setting.
func WithNormalPriority() Option { return func(o *options) { o.normalPrio = true } }

// WithClock injects the park timers' clock (tests).
func WithClock(c park.Clock) Option { return func(o *options) { o.clock = c } }

// WithHousekeeping sets how often parked legs are checked for dead RTP
// and lapsed session timers (default 1s), and the smallest session
// interval accepted (Min-SE, default 90s as RFC 4028 recommends).
func WithHousekeeping(every, minSE time.Duration) Option {
	return func(o *options) { o.housekeep, o.minSE = every, minSE }
}

// Server is the park server's SIP side.
type Server struct {
	cfg   atomic.Pointer[config.Config]
	stack *sipstack.Stack
	bus   *events.Bus
	park  *park.Server
	media *media.Engine
	owned bool // we run the media engine
	speak Speaker
	log   *slog.Logger
	opt   options

	mu       sync.Mutex
	calls    map[park.CallID]*parked
	consults map[string]*consult // consult dialog key -> consult leg
	rings    map[uint64]context.CancelFunc
	// ringCancelled holds attempts cancelled before their Ring ran.
	ringCancelled map[uint64]time.Time
	exts          map[string]bool // extensions we handle
	// retrievedAt is when each slot was last emptied by a pickup.
	retrievedAt map[string]time.Time
	prompts     map[string][]int16
	promptMu    sync.Mutex

	blfMu    sync.Mutex
	slotView map[string]park.SlotState

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the park server on a SIP stack. It binds the stack's
// listeners (to learn the local address for RTP) if not already bound.
// speaker may be nil (no spoken prompts).
func New(cfg *config.Config, stack *sipstack.Stack, bus *events.Bus, speaker Speaker, logger *slog.Logger, opts ...Option) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{housekeep: time.Second, minSE: 90 * time.Second, answerWait: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if err := stack.Listen(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{stack: stack, bus: bus, speak: speaker, log: logger.With("component", "park"), opt: o,
		calls: map[park.CallID]*parked{}, consults: map[string]*consult{}, rings: map[uint64]context.CancelFunc{}, ringCancelled: map[uint64]time.Time{},
		exts: map[string]bool{}, retrievedAt: map[string]time.Time{}, prompts: map[string][]int16{}, slotView: map[string]park.SlotState{},
		ctx: ctx, cancel: cancel}
	s.cfg.Store(cfg)
	s.media = o.media
	if s.media == nil {
		ip := stack.LocalIP()
		bind := ip
		for _, l := range cfg.SIP.Listen {
			if ap, err := netip.ParseAddrPort(l.Address); err == nil && ap.Addr().IsUnspecified() {
				bind = netip.IPv4Unspecified()
			}
		}
		e, err := media.NewEngine(media.Config{IP: bind, Advertise: ip, PortMin: cfg.SIP.RTPPorts.First, PortMax: cfg.SIP.RTPPorts.Last,
			Music: cfg.Park.Music, Pacer: o.pacer, Realtime: !o.normalPrio}, logger.With("component", "media"))
		if err != nil {
			cancel()
			return nil, err
		}
		s.media, s.owned = e, true
	}
	ps, err := park.New(cfg, park.Options{Clock: o.clock, Bus: bus, Actions: s, Logger: s.log, Observer: s.observe})
	if err != nil {
		cancel()
		return nil, err
	}
	s.park = ps
	s.syncExtensions()
	return s, nil
}

// Park returns the park logic (board, policy).
func (s *Server) Park() *park.Server { return s.park }

// Media returns the media engine in use.
func (s *Server) Media() *media.Engine { return s.media }

// Slots is the park board for the API.
func (s *Server) Slots() []park.SlotState { return s.park.Slots() }

// Run runs the media pacer (when the server owns the engine) and the
// housekeeping of parked legs until ctx ends, then hangs up every call
// it holds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	if s.owned {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.media.Run(s.ctx); err != nil {
				errc <- err
			}
		}()
	}
	t := time.NewTicker(s.opt.housekeep)
	defer t.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case <-t.C:
			s.housekeep()
		}
	}
	s.shutdown()
	return err
}

// shutdown hangs up everything and stops the goroutines.
func (s *Server) shutdown() {
	s.mu.Lock()
	var ps []*parked
	for _, p := range s.calls {
		ps = append(ps, p)
	}
	var cs []*consult
	for _, c := range s.consults {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.hangup(ctx, "shutdown") }()
	}
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.dlg.Hangup(ctx); c.leg.Close() }()
	}
	wg.Wait()
	s.cancel()
	s.wg.Wait()
}

// Reload applies a new config: slots and lots (parked calls stay), the
// extensions routed here and their BLF presences, and the hold music.
func (s *Server) Reload(cfg *config.Config) error {
	old := s.cfg.Load()
	if err := s.park.Reload(cfg); err != nil {
		return err
	}
	s.cfg.Store(cfg)
	if cfg.Park.Music != old.Park.Music {
		if err := s.media.Music().Load(cfg.Park.Music); err != nil {
			s.log.Error("hold music not changed", "error", err)
		}
	}
	s.syncExtensions()
	return nil
}

// syncExtensions routes the current lots and slots here and keeps a BLF
// presence for each.
func (s *Server) syncExtensions() {
	lots, slots := s.park.Extensions()
	want := map[string]bool{}
	for _, e := range append(lots, slots...) {
		want[e] = true
	}
	s.mu.Lock()
	var add, remove []string
	for e := range want {
		if !s.exts[e] {
			add = append(add, e)
		}
	}
	for e := range s.exts {
		if !want[e] {
			remove = append(remove, e)
		}
	}
	s.exts = want
	s.mu.Unlock()
	for _, e := range remove {
		s.stack.Unhandle(e)
		s.stack.RemovePresence(e)
	}
	for _, e := range add {
		s.stack.Handle(e, s.onInvite)
		s.stack.Presence(e)
	}
	for _, st := range s.park.Slots() {
		s.observe(st)
	}
}

// errPrompt maps refusals to what an attended parker hears.
func errPrompt(err error) string {
	switch {
	case errors.Is(err, park.ErrNoSlot):
		return "no park slots are free"
	case errors.Is(err, park.ErrPrivate):
		return "this call cannot be parked"
	case errors.Is(err, park.ErrTaken):
		return "that park slot is taken"
	}
	return ""
}

func reasonOf(err error) string { return fmt.Sprint(err) }
