// Package app is the appliance's host process: it loads the config (and
// reloads it on request, keeping the running one when the new one is
// invalid), sets up logging, the event bus and the metrics set, serves the
// admin API, and runs the Parts it is given (Start, Run, Reload), stopping
// them when its context ends. It knows none of the parts: cmd/parkpage
// builds the SIP stack, park server, gateway and the rest, adds them as a
// Part and installs the API's Hooks.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/errgroup"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/console"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/logring"
)

// Options configure an App.
type Options struct {
	// ConfigPath is the config file; empty means the embedded default.
	ConfigPath string
	// SaveConfigTo, when set, is where the setup console's saves go while
	// ConfigPath is a generated file (the appliance's config with the
	// setup page's credential folded in, on tmpfs): the save is written
	// there and the appliance runs from it from then on, so it survives a
	// reboot.
	SaveConfigTo string
	// StateDir overrides state_dir from the config when set.
	StateDir string
	// LogFormat overrides log.format when set ("text" or "json").
	LogFormat string
	// HTTPListen overrides http.listen when set.
	HTTPListen string
	// Version is reported by the API.
	Version string
	// LogOutput receives logs (default stderr).
	LogOutput io.Writer
	// Ready, if set, is called once every listener is open.
	Ready func(a *App)
	// Routes are extra admin API routes ("METHOD /path" to handler), behind
	// the API's authentication (the appliance's update API).
	Routes map[string]http.Handler
}

// App is a running appliance.
type App struct {
	opts    Options
	log     *slog.Logger
	level   *slog.LevelVar
	bus     *events.Bus
	metrics *metrics.Set
	started time.Time

	mu       sync.RWMutex
	cfg      *config.Config
	warnings []config.Problem
	loadedAt time.Time

	httpAddr net.Addr
	api      *api.Server // set by Run; Reload applies credential changes to it
	parts    []Part

	// Hooks the wiring in cmd sets for the API; nil means not available.
	slots     func() []api.Slot
	zones     func() []api.Zone
	announce  func(context.Context, api.AnnounceRequest) (string, error)
	parkEvent func(context.Context, api.ParkEventRequest) error
	labels    api.LabelStore

	setup  SetupHooks // the setup console's (setup.go)
	saveMu sync.Mutex // one config save at a time

	// ring keeps the last log records for the console's Status page.
	ring *logring.Ring

	// console is the web console's environment: parts Provide it their
	// services before Run (ConsoleEnv).
	console *console.Env
	drainer api.Drainer
}

// LogRing holds the most recent log records (info and above).
func (a *App) LogRing() *logring.Ring { return a.ring }

// ConsoleEnv is the web console's environment; the wiring gives the
// console's pages what they need with its Provide before Run.
func (a *App) ConsoleEnv() *console.Env { return a.console }

// Hooks connect API calls to the parts that answer them.
type Hooks struct {
	Slots     func() []api.Slot
	Zones     func() []api.Zone
	Announce  func(context.Context, api.AnnounceRequest) (string, error)
	ParkEvent func(context.Context, api.ParkEventRequest) error
	// Labels are the recorded slot labels (nil: not available).
	Labels api.LabelStore
	// Drainer drains the park (parkpage drain); nil: not available.
	Drainer api.Drainer
}

// SetHooks installs the API hooks; call before Run.
func (a *App) SetHooks(h Hooks) {
	a.slots, a.zones, a.announce, a.parkEvent = h.Slots, h.Zones, h.Announce, h.ParkEvent
	a.labels = h.Labels
	a.drainer = h.Drainer
}

// Part is a long-running component the app starts, reloads and stops.
type Part interface {
	// Name is used in logs and errors.
	Name() string
	// Start opens the part's sockets and devices; a failure stops start-up
	// with one clear line.
	Start(ctx context.Context) error
	// Run serves until ctx ends, then releases everything.
	Run(ctx context.Context) error
	// Reload applies a validated new config without dropping calls or pages.
	Reload(cfg *config.Config) error
}

// New loads the config and prepares the app. It returns config problems
// as a *config.Error.
func New(opts Options) (*App, error) {
	a := &App{opts: opts, bus: events.New(), metrics: metrics.NewSet(), started: time.Now(), level: new(slog.LevelVar)}
	a.console = &console.Env{}
	cfg, warns, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	if opts.LogOutput == nil {
		opts.LogOutput = os.Stderr
		a.opts.LogOutput = os.Stderr
	}
	// The console's Status page shows the last log records (logring).
	a.ring = logring.New(300, slog.LevelInfo)
	a.log = slog.New(a.ring.Handler(newLogger(a.opts.LogOutput, cfg.Log.Format, a.level).Handler()))
	a.level.Set(parseLevel(cfg.Log.Level))
	a.cfg, a.warnings, a.loadedAt = cfg, warns, time.Now()
	for _, w := range warns {
		a.log.Warn("config", "problem", w.String())
	}
	// At 0 from the start: alerting rules need the series before the
	// first loss (output failures: per output, see cmd's wiring).
	a.metrics.GetOrCreateCounter(`parkpage_events_lost_total`)
	return a, nil
}

func (a *App) loadConfig() (*config.Config, []config.Problem, error) {
	var (
		cfg   *config.Config
		warns []config.Problem
		err   error
	)
	a.mu.RLock()
	path := a.opts.ConfigPath
	a.mu.RUnlock()
	if path == "" {
		cfg, err = config.LoadDefault()
		// A config the setup console saved over the embedded default
		// (setup.go) is used from then on.
		if err == nil {
			dir := cfg.StateDir
			if a.opts.StateDir != "" {
				dir = a.opts.StateDir
			}
			if p := savedConfigPath(dir); fileExists(p) {
				a.mu.Lock()
				a.opts.ConfigPath = p
				a.mu.Unlock()
				cfg, warns, err = config.Load(p)
			}
		}
	} else {
		cfg, warns, err = config.Load(path)
	}
	if err != nil {
		return nil, nil, err
	}
	if a.opts.StateDir != "" {
		cfg.StateDir = a.opts.StateDir
	}
	if a.opts.LogFormat != "" {
		cfg.Log.Format = a.opts.LogFormat
	}
	if a.opts.HTTPListen != "" {
		cfg.HTTP.Listen = a.opts.HTTPListen
	}
	return cfg, warns, nil
}

func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s))
	return l
}

// Config returns the config in force.
func (a *App) Config() *config.Config {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.cfg
}

// Bus is the app's event bus.
func (a *App) Bus() *events.Bus { return a.bus }

// Metrics is the set served on /metrics; parts register their gauges in it.
func (a *App) Metrics() *metrics.Set { return a.metrics }

// Logger is the app's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// HTTPAddr is the admin API's bound address (after Ready).
func (a *App) HTTPAddr() net.Addr {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.httpAddr
}

// AddPart registers a component; call before Run.
func (a *App) AddPart(p Part) { a.parts = append(a.parts, p) }

// Run starts everything, serves until ctx ends, then stops within a
// bounded time.
func (a *App) Run(ctx context.Context) error {
	cfg := a.Config()
	if err := checkStateDir(cfg.StateDir); err != nil {
		return err
	}
	srv := api.New(apiConfig(cfg), backend{a}, a.bus, a.metrics, a.log)
	// The web console: its pages and routes, served behind the API's login.
	a.console.Backend, a.console.Bus, a.console.Auth, a.console.Log = backend{a}, a.bus, srv, a.log
	con, err := console.New(a.console)
	if err != nil {
		return err
	}
	con.Mount(srv)
	for pattern, h := range a.opts.Routes {
		srv.Handle(pattern, h)
	}
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.httpAddr, a.api = ln.Addr(), srv
	a.mu.Unlock()
	a.log.Debug("admin API listening", "addr", ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	for _, p := range a.parts {
		began := time.Now()
		if err := p.Start(gctx); err != nil {
			ln.Close()
			return fmt.Errorf("%s: %w", p.Name(), err)
		}
		a.log.Info("started", "part", p.Name(), "took", time.Since(began).Round(time.Millisecond))
	}
	g.Go(func() error { return srv.Serve(gctx, ln) })
	g.Go(func() error { a.countEvents(gctx); return nil })
	for _, p := range a.parts {
		g.Go(func() error {
			if err := p.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", p.Name(), err)
			}
			return nil
		})
	}
	a.log.Info("parkpage running", "version", a.opts.Version, "config", cfg.Source,
		"http", "http://"+ln.Addr().String()+"/", "state_dir", cfg.StateDir)
	if a.opts.Ready != nil {
		a.opts.Ready(a)
	}
	err = g.Wait()
	a.log.Info("parkpage stopped")
	return err
}

// apiConfig is the admin API's part of cfg.
func apiConfig(cfg *config.Config) api.Config {
	var trusted []netip.Prefix
	for _, c := range cfg.SIP.Trusted {
		trusted = append(trusted, c.Prefix)
	}
	return api.Config{
		// The LAN of sip.trusted: short lockouts after failed logins.
		Trusted:      trusted,
		Listen:       cfg.HTTP.Listen,
		PasswordHash: cfg.HTTP.PasswordHash,
		BearerTokens: cfg.HTTP.BearerTokens,
		// The webhook's tokens open POST /api/v1/park-events only.
		WebhookTokens: cfg.External.WebhookTokens,
	}
}

// checkStateDir makes sure the state directory exists and is writable.
// CheckStateDir makes sure the state directory in force exists and is
// writable, with the one clear error Run gives: wiring calls it before its
// parts read what they saved there (call journal, subscriptions, labels).
func (a *App) CheckStateDir() error { return checkStateDir(a.Config().StateDir) }

func checkStateDir(dir string) error {
	fail := func(err error) error {
		return fmt.Errorf("state directory %s is not writable (%v): create it for this user or set state_dir (or -state-dir)", dir, unwrapPath(err))
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fail(err)
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Reload re-reads the config file. An invalid file is refused, its
// problems logged, and the running config kept.
func (a *App) Reload() error {
	cfg, warns, err := a.loadConfig()
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				a.log.Error("config reload refused", "problem", p.String())
			}
		} else {
			a.log.Error("config reload refused", "err", err)
		}
		a.bus.Publish(events.Event{Type: events.ConfigRejected, Reason: err.Error()})
		return fmt.Errorf("config reload refused, the running config is kept:\n%w", err)
	}
	old := a.Config()
	for _, w := range warns {
		a.log.Warn("config", "problem", w.String())
	}
	// A file cut short, or the wrong file, is valid YAML with defaults
	// filling in: say loudly what the running config had that it lacks.
	for _, sec := range config.MissingSections(old, cfg) {
		p := config.Problem{File: cfg.Source, Path: sec, Warning: true,
			Message: "the running config has this section and the new file does not: reloading removes it (is the file cut short, or the wrong one?)"}
		a.log.Warn("config reload", "problem", p.String())
		warns = append(warns, p)
	}
	if cfg.StateDir != old.StateDir {
		a.log.Warn("state_dir changes take effect at the next restart")
	}
	a.mu.RLock()
	srv := a.api
	a.mu.RUnlock()
	// The admin API first: a reload that would move it is refused before
	// any part has taken the new config, so nothing is half-applied.
	if srv != nil {
		if err := srv.CheckCredentials(apiConfig(cfg)); err != nil {
			a.log.Error("config reload refused", "problem", err.Error())
			a.bus.Publish(events.Event{Type: events.ConfigRejected, Reason: err.Error()})
			return fmt.Errorf("config reload refused, the running config is kept:\n%w", err)
		}
	}
	var errs []error
	for _, p := range a.parts {
		if err := p.Reload(cfg); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.bus.Publish(events.Event{Type: events.ConfigRejected, Reason: err.Error()})
		return err
	}
	if srv != nil {
		changed, err := srv.SetCredentials(apiConfig(cfg))
		if err != nil { // checked above; the listen address cannot change meanwhile
			return err
		}
		if changed {
			a.log.Info("admin credentials changed: the new ones apply from the next request, the old ones no longer work")
		}
	}
	a.mu.Lock()
	a.cfg, a.warnings, a.loadedAt = cfg, warns, time.Now()
	a.mu.Unlock()
	a.level.Set(parseLevel(cfg.Log.Level))
	a.log.Info("config reloaded", "source", cfg.Source)
	a.bus.Publish(events.Event{Type: events.ConfigReloaded, Reason: cfg.Source})
	return nil
}

// countEvents turns bus events into Prometheus counters.
func (a *App) countEvents(ctx context.Context) {
	sub := a.bus.Subscribe(1024)
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-sub.C():
			if e.Type == events.Lost {
				a.metrics.GetOrCreateCounter(`parkpage_events_lost_total`).Add(int(e.Count))
				continue
			}
			a.metrics.GetOrCreateCounter(fmt.Sprintf(`parkpage_events_total{type=%q}`, e.Type)).Inc()
			if e.Type == events.OutputFailed {
				a.metrics.GetOrCreateCounter(fmt.Sprintf(`parkpage_output_failures_total{output=%q}`, e.Output)).Inc()
			}
		}
	}
}

// StatePath returns a path inside the state directory.
func (a *App) StatePath(name string) string { return filepath.Join(a.Config().StateDir, name) }
