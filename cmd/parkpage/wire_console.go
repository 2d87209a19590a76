package main

import (
	"bufio"
	"bytes"
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/app"
	"github.com/parkpage/parkpage/internal/authguard"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/console"
	"github.com/parkpage/parkpage/internal/history"
	"github.com/parkpage/parkpage/internal/logring"
	"github.com/parkpage/parkpage/internal/opstatus"
	"github.com/parkpage/parkpage/internal/provision"
	"github.com/parkpage/parkpage/park"
	"github.com/parkpage/parkpage/park/feedback"
)

// opsPart runs what the console's Report, Phones and Status pages read:
// the park history, the output/relay tracker and the parker feedback
// (SIP MESSAGE "Parked at 704").
type opsPart struct {
	a        *app.App
	c        *core
	hist     *history.Store
	track    *opstatus.Tracker
	feedback *feedback.Notifier
}

// wireOps opens the park history and the phone registry in the state
// directory and gives the console what its pages need.
func (c *core) wireOps(a *app.App) error {
	cfg := a.Config()
	// A state directory that cannot be used is reported by the app's
	// start-up check in one clear line; until then, keep going in memory.
	hist, err := history.Open(cfg.StateDir, history.Options{Logger: c.log})
	if err != nil {
		c.log.Warn("park history: starting without the saved history", "error", err)
		if hist, err = history.Open("", history.Options{Logger: c.log}); err != nil {
			return err
		}
	}
	reg, err := provision.OpenRegistry(cfg.StateDir)
	if err != nil {
		c.log.Warn("phones: starting without the saved phone list", "error", err)
		if reg, err = provision.OpenRegistry(""); err != nil {
			return err
		}
	}
	p := &opsPart{a: a, c: c, hist: hist}
	p.track = opstatus.New(func(zone string) []string { return outputNames(a.Config(), zone) })
	p.feedback = feedback.New(feedback.Options{Stack: c.stack, Bus: c.bus, Logger: c.log, Enabled: func() bool { return true }})
	env := a.ConsoleEnv()
	env.Provide(console.HistoryKey, hist)
	env.Provide(console.LayoutKey, func() history.Layout { return history.LayoutOf(a.Config()) })
	env.Provide(console.ConfigKey, a.Config)
	env.Provide(console.PhonesKey, reg)
	env.Provide(console.ProvisionKey, &provision.Handler{Config: a.Config, Registry: reg, Logger: c.log,
		Guard: authguard.New("provision", authguard.DefaultLimits, authguard.Options{Metrics: a.Metrics(), Logger: c.log})})
	env.Provide(console.StatusKey, p.sources())
	a.AddPart(p)
	return nil
}

func outputNames(cfg *config.Config, zone string) []string {
	z := cfg.Zones[zone]
	if z == nil {
		return nil
	}
	var out []string
	for i := range z.Outputs {
		out = append(out, output.Name(zone, i))
	}
	return out
}

func (p *opsPart) Name() string                    { return "console-data" }
func (p *opsPart) Start(context.Context) error     { return nil }
func (p *opsPart) Reload(cfg *config.Config) error { return nil }

// Run follows the bus until ctx ends. Parks the history has open whose
// slot is empty now were lost by a restart.
func (p *opsPart) Run(ctx context.Context) error {
	p.hist.Reconcile(func(slot string) bool {
		st, ok := p.c.park.Park().Slot(slot)
		return ok && st.State != park.StateFree
	})
	done := make(chan struct{}, 3)
	go func() { p.hist.Run(ctx, p.c.bus); done <- struct{}{} }()
	go func() { p.track.Run(ctx, p.c.bus); done <- struct{}{} }()
	go func() { p.feedback.Run(ctx); done <- struct{}{} }()
	<-ctx.Done()
	for range 3 {
		<-done
	}
	return nil
}

// sources are the Status page's readings.
func (p *opsPart) sources() *console.StatusSources {
	c, a := p.c, p.a
	return &console.StatusSources{
		Registrations: func() []console.Registration {
			var out []console.Registration
			for _, b := range c.stack.Registrations() {
				out = append(out, console.Registration{User: b.User, Contact: b.Contact, Source: b.Source, Transport: b.Transport, Expires: b.Expires, Updated: b.Updated})
			}
			return out
		},
		Watchers: func() []console.Watcher {
			var out []console.Watcher
			for _, w := range c.stack.Watchers() {
				out = append(out, console.Watcher{Ext: w.Ext, Subscriber: w.Subscriber, User: w.User, Source: w.Source, Expires: w.Expires})
			}
			return out
		},
		Outputs: func() []console.OutputStatus {
			cfg := a.Config()
			var names []string
			var rows []console.OutputStatus
			for _, z := range sortedKeys(cfg.Zones) {
				for i, o := range cfg.Zones[z].Outputs {
					names = append(names, output.Name(z, i))
					rows = append(rows, console.OutputStatus{Zone: z, Type: o.Type, Address: outputAddress(o)})
				}
			}
			for i, o := range p.track.Outputs(names) {
				rows[i].Output = o
			}
			return rows
		},
		Relays: func() []console.RelayStatus {
			var out []console.RelayStatus
			for _, r := range c.bank.States() {
				out = append(out, console.RelayStatus{Name: r.Name, Pin: r.Pin, Role: r.Role, On: r.On, Holding: r.Holding, Switched: p.track.RelaySwitched(r.Name)})
			}
			return out
		},
		Pacer: func() map[string]float64 { return metricsWithPrefix(a, "parkpage_pacer_") },
		Logs:  func(n int) []logring.Entry { return a.LogRing().Last(n) },
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// metricsWithPrefix reads the app's metrics whose names start with
// prefix (unlabelled series only), as /metrics shows them.
func metricsWithPrefix(a *app.App, prefix string) map[string]float64 {
	var b bytes.Buffer
	a.Metrics().WritePrometheus(&b)
	out := map[string]float64{}
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out
}
