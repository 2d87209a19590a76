package relays

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/parkpage/parkpage/internal/clock"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
)

// ErrClosed is returned by Acquire on a Bank that has been closed.
var ErrClosed = errors.New("relay bank closed")

// Resolver finds the pin a relay's config names ("GPIO17").
type Resolver func(name string) (gpio.PinOut, error)

// Clock is the time source of a Bank; tests inject clocktest.Clock.
type Clock = clock.Clock

// Timer is a pending AfterFunc call.
type Timer = clock.Timer

// SystemClock is the real clock.
func SystemClock() Clock { return clock.Real() }

// Config is what a Bank reads of the appliance's config: the relays
// section and the zones' relays lists.
type Config struct {
	Relays map[string]*config.Relay
	Zones  map[string]*config.Zone
}

// ConfigOf picks a Bank's Config out of the appliance's config.
func ConfigOf(c *config.Config) Config { return Config{Relays: c.Relays, Zones: c.Zones} }

// Options are a Bank's collaborators.
type Options struct {
	// Resolve finds the relays' pins; default HostResolver() (the board's
	// GPIO). Reload uses it too.
	Resolve Resolver
	// WaitPins is how long New keeps looking for pins it cannot find at
	// first: a GPIO chip may appear after parkpage starts (a USB adapter
	// enumerating late, a chip set up by another service). Default
	// DefaultWaitPins with the host resolver, none with an injected one;
	// negative: none.
	WaitPins time.Duration
	Clock    Clock        // default SystemClock()
	Events   *events.Bus  // receives RelayOn and RelayOff; nil: none
	Logger   *slog.Logger // default: discard
}

// Bank drives the relays of one config. It is safe for concurrent use.
type Bank struct {
	clock   Clock
	resolve Resolver
	bus     *events.Bus
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close: wakes Acquire calls waiting out a lead
	all    []*relay      // page-active relays first, then zone relays; by name within a role
	active []*relay      // page-active relays
	zones  map[string][]*relay
}

type relay struct {
	name       string
	pinName    string
	pin        gpio.PinOut
	role       string
	on, off    gpio.Level
	lead, hold time.Duration

	// Under Bank.mu.
	refs    int       // leases holding the relay
	isOn    bool      // last level driven was on
	onAt    time.Time // when it was switched on
	pending Timer     // hold timer that will switch it off
	gen     uint64    // bumped when a pending off is cancelled
	gone    bool      // dropped by Reload: leases still holding it leave it alone
}

// New resolves every configured relay's pin and drives it off (the safe
// state) before returning, whatever happened before: a previous Bank, a
// crashed process, the board's power-on level. On error every pin that
// could be resolved has still been driven off.
func New(cfg Config, o Options) (*Bank, error) {
	resolve, wait := o.Resolve, o.WaitPins
	if resolve == nil {
		resolve = HostResolver()
		if wait == 0 {
			wait = DefaultWaitPins
		}
	}
	b := &Bank{
		resolve: resolve,
		clock:   o.Clock,
		bus:     o.Events,
		log:     o.Logger,
		done:    make(chan struct{}),
		zones:   map[string][]*relay{},
	}
	if b.clock == nil {
		b.clock = SystemClock()
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	byName := map[string]*relay{}
	pins, errs := resolvePins(resolve, cfg)
	if len(errs) > 0 && wait > 0 {
		pins, errs = b.waitPins(resolve, cfg, pins, errs, wait)
	}
	for _, name := range sortedRelayNames(cfg) {
		pin, ok := pins[name]
		if !ok {
			continue
		}
		rc := cfg.Relays[name]
		r := newRelay(name, rc, pin)
		if err := r.driveOff(); err != nil {
			errs = append(errs, err)
		}
		byName[name] = r
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	b.index(cfg, byName)
	return b, nil
}

// DefaultWaitPins is how long New waits for the board's missing pins.
const DefaultWaitPins = 15 * time.Second

// waitPins drives off the pins found so far (the safe state does not wait
// for the others), then keeps resolving the missing ones until they are
// all found or wait has passed.
func (b *Bank) waitPins(resolve Resolver, cfg Config, pins map[string]gpio.PinOut, errs []error, wait time.Duration) (map[string]gpio.PinOut, []error) {
	for name, pin := range pins {
		newRelay(name, cfg.Relays[name], pin).driveOff()
	}
	b.log.Warn("relays: waiting for GPIO pins", "wait", wait, "err", errors.Join(errs...))
	start := time.Now()
	for time.Since(start) < wait {
		time.Sleep(pinPoll)
		errs = nil
		for _, name := range sortedRelayNames(cfg) {
			if _, ok := pins[name]; ok {
				continue
			}
			pin, err := resolvePin(resolve, name, cfg.Relays[name])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			pins[name] = pin
			b.log.Info("relays: pin appeared", "relay", name, "pin", cfg.Relays[name].Pin, "after", time.Since(start).Round(time.Millisecond))
		}
		if len(errs) == 0 {
			break
		}
	}
	return pins, errs
}

// pinPoll is how often waitPins looks again.
const pinPoll = 100 * time.Millisecond

// driveOff drives the relay's pin to its off level (the safe state).
func (r *relay) driveOff() error {
	if err := r.pin.Out(r.off); err != nil {
		return fmt.Errorf("relay %q: drive %s off: %w", r.name, r.pinName, err)
	}
	return nil
}

// resolvePins resolves every configured relay's pin, by relay name; errs
// has one error for each pin that cannot be found.
func resolvePins(resolve Resolver, cfg Config) (pins map[string]gpio.PinOut, errs []error) {
	pins = map[string]gpio.PinOut{}
	for _, name := range sortedRelayNames(cfg) {
		pin, err := resolvePin(resolve, name, cfg.Relays[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pins[name] = pin
	}
	return pins, errs
}

func newRelay(name string, rc *config.Relay, pin gpio.PinOut) *relay {
	r := &relay{
		name: name, pinName: rc.Pin, pin: pin, role: rc.Role,
		on: gpio.High, off: gpio.Low,
		lead: rc.Lead.D(), hold: rc.Hold.D(),
	}
	if rc.ActiveLow {
		r.on, r.off = gpio.Low, gpio.High
	}
	return r
}

// index sets the Bank's lists from the relays of cfg (byName). Called
// with b.mu held, or before the Bank is shared.
func (b *Bank) index(cfg Config, byName map[string]*relay) {
	b.all, b.active, b.zones = nil, nil, map[string][]*relay{}
	for _, name := range sortedRelayNames(cfg) {
		r, ok := byName[name]
		if !ok {
			continue
		}
		b.all = append(b.all, r)
		if r.role == config.RolePageActive {
			b.active = append(b.active, r)
		}
	}
	for zn, z := range cfg.Zones {
		if z == nil {
			continue
		}
		for _, rn := range z.Relays {
			if r, ok := byName[rn]; ok && !slices.Contains(b.zones[zn], r) {
				b.zones[zn] = append(b.zones[zn], r)
			}
		}
	}
}

// resolvePin finds a relay's pin; a resolver answering nil means no such pin.
func resolvePin(resolve Resolver, name string, rc *config.Relay) (gpio.PinOut, error) {
	pin, err := resolve(rc.Pin)
	if err == nil && pin == nil {
		err = errors.New("no such pin")
	}
	if err != nil {
		return nil, fmt.Errorf("relay %q: pin %s: %w", name, rc.Pin, err)
	}
	return pin, nil
}

// Reload applies the relays of a new config to the Bank in place, so the
// gateway's Relays adapter (LeaseRelays(bank.Acquire)) stays valid across
// a config reload. A relay whose pin and polarity are unchanged keeps its
// state: a page playing through the reload keeps its amplifier and zone
// relays on, and its lease releases them as before (with the new hold
// times). Every relay that is removed, rewired (another pin or polarity)
// or new is driven off at once: the safe state for everything the pages
// in progress did not switch on themselves. Pages acquired after Reload
// use the new zone mapping. On error (a pin that cannot be found) the Bank
// is left as it was.
func (b *Bank) Reload(cfg Config) error {
	pins, errs := resolvePins(b.resolve, cfg)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	old := map[string]*relay{}
	for _, r := range b.all {
		old[r.name] = r
	}
	byName := map[string]*relay{}
	var fresh []*relay
	for _, name := range sortedRelayNames(cfg) {
		rc := cfg.Relays[name]
		if r := old[name]; r != nil && r.pinName == rc.Pin && (r.on == gpio.Low) == rc.ActiveLow {
			r.role, r.lead, r.hold = rc.Role, rc.Lead.D(), rc.Hold.D()
			byName[name] = r
			delete(old, name)
			continue
		}
		r := newRelay(name, rc, pins[name])
		byName[name] = r
		fresh = append(fresh, r)
	}
	// Removed and rewired relays first, so a pin that moved to another
	// relay (or polarity) ends at the new relay's off level.
	now := b.clock.Now()
	for i := len(b.all) - 1; i >= 0; i-- {
		r := b.all[i]
		if old[r.name] != r {
			continue
		}
		if r.pending != nil {
			r.pending.Stop()
			r.pending = nil
		}
		r.gen++
		if r.isOn {
			b.switchLocked(r, false, now, nil, "reload")
		}
		r.gone = true
	}
	for _, r := range fresh {
		if err := r.driveOff(); err != nil {
			errs = append(errs, err)
		}
	}
	b.index(cfg, byName)
	b.log.Info("relays reloaded", "relays", len(b.all), "kept", len(b.all)-len(fresh), "new", len(fresh))
	return errors.Join(errs...)
}

// sortedRelayNames lists page-active relays first, then the others, each
// group by name: the order relays switch on in.
func sortedRelayNames(cfg Config) []string {
	names := make([]string, 0, len(cfg.Relays))
	for n, r := range cfg.Relays {
		if r != nil {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		pa, pb := cfg.Relays[a].Role == config.RolePageActive, cfg.Relays[b].Role == config.RolePageActive
		if pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return names
}

// Lease is one page's hold on its relays. Release it when the page's audio
// has ended.
type Lease struct {
	b      *Bank
	zones  []string
	relays []*relay
	once   sync.Once
}

// Acquire switches on the page-active relays and the relays of zones (in
// that order), then waits until every one of them has been on for its
// lead time, so the caller can start audio when it returns. Relays already
// on (held by another page, or in their hold time) count from when they
// were switched on, and a new page cancels a pending hold. Zones without
// relays add nothing; with no relays at all Acquire returns at once.
//
// If ctx ends or the Bank is closed during the lead time, the relays are
// released and ctx.Err() or ErrClosed is returned. A pin that fails to
// switch is logged; the page goes on without it.
func (b *Bank) Acquire(ctx context.Context, zones []string) (*Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	l := &Lease{b: b, zones: slices.Clone(zones)}
	l.relays = append(l.relays, b.active...)
	for _, z := range zones {
		rs, ok := b.zones[z]
		if !ok {
			continue // a zone without relays
		}
		for _, r := range rs {
			if !slices.Contains(l.relays, r) {
				l.relays = append(l.relays, r)
			}
		}
	}
	now := b.clock.Now()
	var wait time.Duration
	for _, r := range l.relays {
		r.refs++
		if r.pending != nil {
			r.pending.Stop()
			r.pending = nil
			r.gen++ // a hold timer already firing must not switch it off
		}
		if !r.isOn {
			b.switchLocked(r, true, now, l.zones, "")
		}
		if d := r.onAt.Add(r.lead).Sub(now); d > wait {
			wait = d
		}
	}
	b.mu.Unlock()
	if wait <= 0 {
		return l, nil
	}
	lead := make(chan struct{})
	t := b.clock.AfterFunc(wait, func() { close(lead) })
	select {
	case <-lead:
		return l, nil
	case <-ctx.Done():
		t.Stop()
		l.Release()
		return nil, ctx.Err()
	case <-b.done:
		t.Stop()
		return nil, ErrClosed
	}
}

// Release ends the lease: every relay that no other page holds switches
// off once its hold time has passed. It returns at once and is safe to
// call more than once.
func (l *Lease) Release() {
	l.once.Do(func() { l.b.release(l) })
}

func (b *Bank) release(l *Lease) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return // Close has switched everything off
	}
	// Zone relays first, page-active last: with equal holds they open in
	// the order installers expect (zones, then amplifier/BGM mute).
	for i := len(l.relays) - 1; i >= 0; i-- {
		r := l.relays[i]
		r.refs--
		if r.refs > 0 || r.gone {
			continue
		}
		if r.hold <= 0 {
			b.switchLocked(r, false, b.clock.Now(), l.zones, "released")
			continue
		}
		gen := r.gen
		zones := l.zones
		r.pending = b.clock.AfterFunc(r.hold, func() { b.holdEnded(r, gen, zones) })
	}
}

func (b *Bank) holdEnded(r *relay, gen uint64, zones []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || r.gone || r.gen != gen || r.refs > 0 || !r.isOn {
		return
	}
	r.pending = nil
	b.switchLocked(r, false, b.clock.Now(), zones, "hold ended")
}

// switchLocked drives r on or off and publishes the change. A pin error is
// logged, and the relay's state still follows the request so that the
// reference counts stay right and a later switch retries the pin.
func (b *Bank) switchLocked(r *relay, on bool, now time.Time, zones []string, reason string) {
	lvl, typ, word := r.off, events.RelayOff, "off"
	if on {
		lvl, typ, word = r.on, events.RelayOn, "on"
	}
	if err := r.pin.Out(lvl); err != nil {
		b.log.Error("relay switch failed", "relay", r.name, "pin", r.pinName, "to", word, "err", err)
		reason = "pin error: " + err.Error()
	} else {
		b.log.Debug("relay "+word, "relay", r.name, "pin", r.pinName)
	}
	r.isOn = on
	if on {
		r.onAt = now
	}
	if b.bus != nil {
		b.bus.Publish(events.Event{Type: typ, Relay: r.name, Zones: zones, Reason: reason})
	}
}

// Close cancels pending holds, drives every relay off and makes further
// Acquire calls fail with ErrClosed; leases still held are ended. It
// returns the pins' errors, and is safe to call more than once.
func (b *Bank) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.done)
	var errs []error
	// Zones first, page-active last, as at the end of a page.
	for i := len(b.all) - 1; i >= 0; i-- {
		r := b.all[i]
		if r.pending != nil {
			r.pending.Stop()
			r.pending = nil
		}
		r.gen++
		r.refs = 0
		wasOn := r.isOn
		if err := r.driveOff(); err != nil {
			errs = append(errs, err)
		}
		r.isOn = false
		if wasOn && b.bus != nil {
			b.bus.Publish(events.Event{Type: events.RelayOff, Relay: r.name, Reason: "closed"})
		}
	}
	return errors.Join(errs...)
}

// State is one relay as the admin API shows it.
type State struct {
	Name string `json:"name"`
	Pin  string `json:"pin"`
	Role string `json:"role"`
	On   bool   `json:"on"`
	// Pages is how many pages hold the relay now (0 while in its hold time).
	Pages int `json:"pages"`
	// Holding reports a pending switch-off (hold time running).
	Holding bool `json:"holding"`
}

// States returns every relay's state, page-active relays first.
func (b *Bank) States() []State {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]State, 0, len(b.all))
	for _, r := range b.all {
		out = append(out, State{Name: r.name, Pin: r.pinName, Role: r.role, On: r.isOn, Pages: r.refs, Holding: r.pending != nil})
	}
	return out
}

// AllOff drives every relay in cfg to its off level. It is what
// `parkpage relays-off` runs: for an installer, or for a service manager
// after the main process has exited. Every relay is tried; the errors are
// joined.
func AllOff(cfg Config, resolve Resolver) error {
	pins, errs := resolvePins(resolve, cfg)
	for _, name := range sortedRelayNames(cfg) {
		if pin, ok := pins[name]; ok {
			if err := newRelay(name, cfg.Relays[name], pin).driveOff(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
