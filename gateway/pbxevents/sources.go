package pbxevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
)

// Source is one started park event source (an AMI connection, a BLF
// watcher): Run reports park events to the Sink it was made with until
// ctx ends.
type Source interface {
	Run(ctx context.Context) error
}

// SourcesOptions are the collaborators of Sources. The kinds of source are
// supplied by the wiring (this package imports none of them): AMI is
// ami.Source, BLF blfwatch.Source.
type SourcesOptions struct {
	// Bus receives the park events as call.* events; required.
	Bus *events.Bus
	// AMI makes the source for external.ami; nil: configuring it is an
	// error.
	AMI func(cfg config.AMI, sink Sink, mapper *SlotMapper, log *slog.Logger) (Source, error)
	// BLF makes the source for external.blf; nil: configuring it is an
	// error.
	BLF func(cfg config.BLFWatch, sink Sink, mapper *SlotMapper, log *slog.Logger) (Source, error)
	// Logger; nil: discard.
	Logger *slog.Logger
	// Now stamps webhook events; nil: time.Now.
	Now func() time.Time
}

// Sources runs the park event sources of another PBX (config section
// external: AMI, BLF watcher) and takes its webhook, publishing what they
// report on the bus. Run starts the sources; Reload restarts them when
// their config changed.
type Sources struct {
	opts SourcesOptions
	log  *slog.Logger

	mu      sync.Mutex
	ctx     context.Context // Run's
	pending config.External // the config to start with
	cur     config.External
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
	mapper  *SlotMapper // for the webhook, of pending
}

// NewSources returns the sources for config section external; Run starts
// them.
func NewSources(cfg config.External, opts SourcesOptions) (*Sources, error) {
	if opts.Bus == nil {
		return nil, errors.New("pbxevents: no bus")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sources{opts: opts, log: opts.Logger, pending: cfg, mapper: NewSlotMapper(cfg.SlotMap)}, nil
}

// Run starts the configured sources and runs them until ctx ends. A source
// that fails to start is logged; Run goes on
// with the others.
func (s *Sources) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	cfg := s.pending
	s.mu.Unlock()
	if err := s.Reload(cfg); err != nil {
		s.log.Error("park events from the PBX", "err", err)
	}
	<-ctx.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	return nil
}

func (s *Sources) stopLocked() {
	if s.running {
		s.cancel()
		<-s.done
		s.running, s.cancel, s.done = false, nil, nil
	}
}

// Reload (re)starts the sources if config section external changed.
func (s *Sources) Reload(cfg config.External) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = cfg
	s.mapper = NewSlotMapper(cfg.SlotMap)
	if s.ctx == nil || s.ctx.Err() != nil {
		return nil
	}
	if s.running && reflect.DeepEqual(s.cur, cfg) {
		return nil
	}
	s.stopLocked()
	s.cur = cfg
	mapper := NewSlotMapper(cfg.SlotMap)
	sink := func(ev ParkEvent) { s.opts.Bus.Publish(ev.BusEvent()) }
	ctx, cancel := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	var errs []error
	start := func(name string, mk func() (Source, error)) {
		if mk == nil {
			errs = append(errs, fmt.Errorf("%s: not available in this build", name))
			return
		}
		src, err := mk()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		wg.Go(func() { src.Run(ctx) })
	}
	if cfg.AMI != nil {
		var mk func() (Source, error)
		if s.opts.AMI != nil {
			mk = func() (Source, error) { return s.opts.AMI(*cfg.AMI, sink, mapper, s.log) }
		}
		start("ami", mk)
	}
	if cfg.BLF != nil {
		var mk func() (Source, error)
		if s.opts.BLF != nil {
			mk = func() (Source, error) { return s.opts.BLF(*cfg.BLF, sink, mapper, s.log) }
		}
		start("blf", mk)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	s.running, s.cancel, s.done = true, cancel, done
	return errors.Join(errs...)
}

// Webhook takes POST /api/v1/park-events: another system's park, mapped
// by external.slot_map and announced like ours.
func (s *Sources) Webhook(_ context.Context, req api.ParkEventRequest) error {
	s.mu.Lock()
	mapper := s.mapper
	s.mu.Unlock()
	s.opts.Bus.Publish(ParkEvent{Kind: Kind(req.Event), Slot: mapper.Local(req.Slot), ExternalSlot: req.Slot,
		Caller: req.Caller, Parker: req.Parker, Source: SourceWebhook, Time: s.opts.Now()}.BusEvent())
	return nil
}
