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
	"github.com/parkpage/parkpage/internal/journal"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/park"
)

// Speaker turns text into 16 kHz mono PCM (tts.Engine satisfies it).
type Speaker interface {
	Synthesize(ctx context.Context, text string) ([]int16, error)
}

// Options are a Server's collaborators and tuning.
type Options struct {
	// Stack is the appliance's SIP stack; required. New binds its
	// listeners.
	Stack *sipstack.Stack
	// Bus receives the park events; required.
	Bus *events.Bus
	// Speaker speaks slot numbers to parkers and callers; nil: no prompts.
	Speaker Speaker
	// Logger; nil: discard.
	Logger *slog.Logger
	// Media is the RTP engine shared with the appliance's other SIP users
	// (SIP amplifier outputs, live pages); its owner runs it. nil: the
	// server creates one from MediaConfig and runs it itself.
	Media *media.Engine
	// Pacer is the appliance's one sending loop, for an engine the server
	// creates (Media nil); its owner runs it. nil: the engine runs a pacer
	// of its own.
	Pacer *pacer.Pacer
	// NormalPriority keeps the hold-music pacer thread of an engine the
	// server creates at normal scheduling priority. By default it asks for
	// SCHED_FIFO (granted to root or with CAP_SYS_NICE, e.g. the systemd
	// unit's AmbientCapabilities) and carries on at normal priority, a
	// little less even, when refused.
	NormalPriority bool
	// Clock drives the park timers; nil: the system clock (tests inject one).
	Clock park.Clock
	// Housekeep is how often parked legs are checked for dead RTP and
	// lapsed session timers, default 1s; MinSE the smallest session
	// interval accepted (Min-SE), default 90s as RFC 4028 recommends.
	Housekeep, MinSE time.Duration

	// Journal is the call journal's file (state_dir/calls.journal): every
	// parked call is written there at each transition, taken over from it
	// on start, and left parked (no BYE) when the server stops. Empty: no
	// journal, and stopping hangs up every parked call.
	Journal string

	// pickupAnswered, set only by tests, runs once a retriever's 200 OK
	// has been acknowledged; an error fails the pickup as if the answer
	// had not completed.
	pickupAnswered func(*sipstack.IncomingCall) error
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
	opt   Options

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
	// lotBusy indexes slotView's occupied slots by lot, so a lot's BLF
	// is built from its own calls, not by scanning every slot (a restart
	// that resumes 1,000 calls would otherwise scan 1,000 slots for each).
	lotBusy map[string]map[string]park.SlotState

	// The call journal (journal.go); jr nil without one. jmu orders the
	// writes; jkeys maps calls to their records.
	jr      *journal.Journal
	jmu     sync.Mutex
	jkeys   map[park.CallID]string
	jclosed bool
	jalive  time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// wgMu guards adding to wg against shutdown's Wait (see goTracked).
	wgMu     sync.Mutex
	stopping bool
}

// New builds the park server for cfg (it reads the park, sip and users
// sections) on o.Stack. It binds the stack's listeners (to learn the local
// address for RTP) if not already bound.
func New(cfg *config.Config, o Options) (*Server, error) {
	if o.Stack == nil || o.Bus == nil {
		return nil, errors.New("park server: Stack and Bus are required")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.Housekeep <= 0 {
		o.Housekeep = time.Second
	}
	if o.MinSE <= 0 {
		o.MinSE = 90 * time.Second
	}
	stack, bus, speaker := o.Stack, o.Bus, o.Speaker
	if err := stack.Listen(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{stack: stack, bus: bus, speak: speaker, log: logger.With("component", "park"), opt: o,
		calls: map[park.CallID]*parked{}, consults: map[string]*consult{}, rings: map[uint64]context.CancelFunc{}, ringCancelled: map[uint64]time.Time{},
		exts: map[string]bool{}, retrievedAt: map[string]time.Time{}, prompts: map[string][]int16{}, slotView: map[string]park.SlotState{}, lotBusy: map[string]map[string]park.SlotState{},
		jkeys: map[park.CallID]string{}, ctx: ctx, cancel: cancel}
	s.cfg.Store(cfg)
	s.media = o.Media
	if s.media == nil {
		mc := MediaConfig(cfg, stack)
		mc.Realtime = !o.NormalPriority
		mc.Pacer = o.Pacer
		e, err := media.NewEngine(mc, logger.With("component", "media"))
		if err != nil {
			cancel()
			return nil, err
		}
		s.media, s.owned = e, true
	}
	ps, err := park.New(cfg, park.Options{Clock: o.Clock, Bus: bus, Actions: s, Logger: s.log, Observer: s.observe, Changed: s.journalCall})
	if err != nil {
		cancel()
		return nil, err
	}
	s.park = ps
	s.syncExtensions()
	if o.Journal != "" {
		s.openJournal(o.Journal)
	}
	return s, nil
}

// Park returns the park logic (board, policy).
func (s *Server) Park() *park.Server { return s.park }

// MediaConfig is the RTP engine's config for the SIP stack: bound where
// SIP listens (every address when a listener is on the unspecified
// address), advertising the stack's local IP, on sip.rtp_ports, with
// park.music on hold. The appliance builds one engine from it and hands it
// to every SIP user (Options.Media here, the SIP amplifier output, live pages).
func MediaConfig(cfg *config.Config, stack *sipstack.Stack) media.Config {
	ip := stack.LocalIP()
	bind := ip
	for _, l := range cfg.SIP.Listen {
		if ap, err := netip.ParseAddrPort(l.Address); err == nil && ap.Addr().IsUnspecified() {
			bind = netip.IPv4Unspecified()
		}
	}
	return media.Config{IP: bind, Advertise: ip, PortMin: cfg.SIP.RTPPorts.First, PortMax: cfg.SIP.RTPPorts.Last,
		Music: cfg.Park.Music, Realtime: true}
}

// Slots is the park board for the API.
func (s *Server) Slots() []park.SlotState { return s.park.Slots() }

// Run runs the media pacer (when the server owns the engine) and the
// housekeeping of parked legs until ctx ends, then hangs up every call
// it holds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	if s.owned {
		s.goTracked(func() {
			if err := s.media.Run(s.ctx); err != nil {
				errc <- err
			}
		})
	}
	t := time.NewTicker(s.opt.Housekeep)
	defer t.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case now := <-t.C:
			s.housekeep()
			s.journalAlive(now)
		}
	}
	s.shutdown()
	return err
}

// shutdown hangs up everything and stops the goroutines.
func (s *Server) shutdown() {
	if s.jr != nil {
		s.detachAll()
	}
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
	s.wgMu.Lock()
	s.stopping = true
	s.wgMu.Unlock()
	s.wg.Wait()
}

// goTracked runs f on a goroutine that shutdown waits for. Once shutdown
// has begun waiting, f runs on the caller's goroutine instead: a
// WaitGroup must not grow while it is being waited for (a BYE arriving
// during shutdown tears its call down then).
func (s *Server) goTracked(f func()) {
	s.wgMu.Lock()
	if s.stopping {
		s.wgMu.Unlock()
		f()
		return
	}
	s.wg.Add(1)
	s.wgMu.Unlock()
	go func() {
		defer s.wg.Done()
		f()
	}()
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
	case errors.Is(err, park.ErrDraining):
		return "parking is closed"
	}
	return ""
}

func reasonOf(err error) string { return fmt.Sprint(err) }
