package relays

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
)

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

type rig struct {
	t     *testing.T
	clock *clocktest.Clock
	pins  map[string]*gpiotest.Pin
	bank  *Bank
	sub   *events.Subscription
}

func relayCfg(pin, role string, activeLow bool, lead, hold time.Duration) *config.Relay {
	return &config.Relay{Pin: pin, Role: role, ActiveLow: activeLow, Lead: config.Duration(lead), Hold: config.Duration(hold)}
}

// testConfig: "amp" (page active, lead 500ms, hold 1s), "z1" and "z2"
// (zone select, lead 300ms, hold 600ms), "bell" (active-low zone relay,
// lead 100ms, hold 0). Zone office uses z1, yard z1+z2+bell, lobby nothing.
func testConfig() *config.Config {
	return &config.Config{
		Relays: map[string]*config.Relay{
			"amp":  relayCfg("GPIO5", config.RolePageActive, false, 500*time.Millisecond, time.Second),
			"z1":   relayCfg("GPIO17", config.RoleZone, false, 300*time.Millisecond, 600*time.Millisecond),
			"z2":   relayCfg("GPIO27", config.RoleZone, false, 300*time.Millisecond, 600*time.Millisecond),
			"bell": relayCfg("GPIO22", config.RoleZone, true, 100*time.Millisecond, 0),
		},
		Zones: map[string]*config.Zone{
			"office": {Relays: []string{"z1"}},
			"yard":   {Relays: []string{"z1", "z2", "bell"}},
			"lobby":  {},
		},
	}
}

func newRig(t *testing.T, cfg *config.Config, initial gpio.Level) *rig {
	t.Helper()
	r := &rig{t: t, clock: newFakeClock(), pins: map[string]*gpiotest.Pin{}}
	for _, rc := range cfg.Relays {
		r.pins[rc.Pin] = &gpiotest.Pin{N: rc.Pin, L: initial}
	}
	bus := events.New()
	r.sub = bus.Subscribe(256)
	b, err := New(ConfigOf(cfg), Options{Resolve: r.resolve, Clock: r.clock, Events: bus})
	if err != nil {
		t.Fatal(err)
	}
	r.bank = b
	t.Cleanup(func() { _ = b.Close(); r.sub.Close() })
	return r
}

func (r *rig) resolve(name string) (gpio.PinOut, error) {
	p, ok := r.pins[name]
	if !ok {
		return nil, fmt.Errorf("no pin %s", name)
	}
	return p, nil
}

func (r *rig) level(pin string) gpio.Level {
	p := r.pins[pin]
	p.Lock()
	defer p.Unlock()
	return p.L
}

// expect checks every pin's level: pins listed in on must be energised
// (low for the active-low GPIO22), all others de-energised.
func (r *rig) expect(on ...string) {
	r.t.Helper()
	for pin := range r.pins {
		want := slices.Contains(on, pin)
		lvl := r.level(pin)
		energised := lvl == gpio.High
		if pin == "GPIO22" {
			energised = lvl == gpio.Low
		}
		if energised != want {
			r.t.Errorf("at %s pin %s: energised=%v, want %v", r.clock.Now().Format("05.000"), pin, energised, want)
		}
	}
}

// acquire starts Acquire in a goroutine and returns its result channel.
func (r *rig) acquire(ctx context.Context, zones ...string) chan acq {
	ch := make(chan acq, 1)
	go func() {
		l, err := r.bank.Acquire(ctx, zones)
		ch <- acq{l, err}
	}()
	return ch
}

type acq struct {
	l   *Lease
	err error
}

func notYet(t *testing.T, ch chan acq) {
	t.Helper()
	select {
	case a := <-ch:
		t.Fatalf("Acquire returned before the lead time: %+v", a)
	default:
	}
}

func done(t *testing.T, ch chan acq) acq {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire did not return after the lead time")
		return acq{}
	}
}

func (r *rig) events() []string {
	var out []string
	for {
		select {
		case e := <-r.sub.C():
			out = append(out, fmt.Sprintf("%s %s", e.Type, e.Relay))
		default:
			return out
		}
	}
}

func TestSafeStateAtStart(t *testing.T) {
	for _, initial := range []gpio.Level{gpio.High, gpio.Low} {
		t.Run(initial.String(), func(t *testing.T) {
			r := newRig(t, testConfig(), initial)
			r.expect() // every pin off, whatever level it had
			if ev := r.events(); len(ev) != 0 {
				t.Errorf("start published %v", ev)
			}
			if got := r.level("GPIO22"); got != gpio.High {
				t.Errorf("active-low pin at %v, want High (off)", got)
			}
		})
	}
}

func TestLeadAndHold(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	ch := r.acquire(context.Background(), "office")
	r.clock.WaitTimer(t, 5*time.Second)
	r.expect("GPIO5", "GPIO17") // switched on at once: amp, then zone
	if got, want := r.events(), []string{"relay.on amp", "relay.on z1"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	r.clock.Advance(499 * time.Millisecond)
	notYet(t, ch) // the amp's 500ms lead is the longest
	r.clock.Advance(time.Millisecond)
	a := done(t, ch)
	if a.err != nil {
		t.Fatal(a.err)
	}

	r.clock.Advance(10 * time.Second) // the page plays
	r.expect("GPIO5", "GPIO17")
	a.l.Release()
	a.l.Release() // idempotent
	r.expect("GPIO5", "GPIO17")
	r.clock.Advance(599 * time.Millisecond)
	r.expect("GPIO5", "GPIO17")
	r.clock.Advance(time.Millisecond) // zone hold 600ms
	r.expect("GPIO5")
	r.clock.Advance(399 * time.Millisecond)
	r.expect("GPIO5")
	r.clock.Advance(time.Millisecond) // amp hold 1s
	r.expect()
	if got, want := r.events(), []string{"relay.off z1", "relay.off amp"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if n := r.clock.Pending(); n != 0 {
		t.Errorf("%d timers left", n)
	}
}

func TestActiveLowAndZeroHold(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	ch := r.acquire(context.Background(), "yard")
	r.clock.WaitTimer(t, 5*time.Second)
	if r.level("GPIO22") != gpio.Low {
		t.Error("active-low relay not driven low when on")
	}
	r.expect("GPIO5", "GPIO17", "GPIO27", "GPIO22")
	r.clock.Advance(500 * time.Millisecond)
	a := done(t, ch)
	a.l.Release()
	// bell has no hold: off at once, driven high.
	if r.level("GPIO22") != gpio.High {
		t.Error("active-low relay not driven high when off")
	}
	r.expect("GPIO5", "GPIO17", "GPIO27")
	r.clock.Advance(time.Second)
	r.expect()
}

// Overlapping pages on shared relays: the zone relay stays on until the
// last page's hold ends, and a page that starts during a hold cancels the
// pending off and needs no new lead.
func TestOverlappingPages(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	chA := r.acquire(context.Background(), "office")
	r.clock.WaitTimer(t, 5*time.Second)
	r.clock.Advance(500 * time.Millisecond)
	a := done(t, chA)

	// Page B to yard while A plays: z1 and amp are already on (for longer
	// than their leads), z2 is new and needs its 300ms.
	chB := r.acquire(context.Background(), "yard")
	r.clock.WaitTimer(t, 5*time.Second)
	r.expect("GPIO5", "GPIO17", "GPIO27", "GPIO22")
	r.clock.Advance(299 * time.Millisecond)
	notYet(t, chB)
	r.clock.Advance(time.Millisecond)
	b := done(t, chB)

	a.l.Release() // z1 and amp still held by B
	r.clock.Advance(5 * time.Second)
	r.expect("GPIO5", "GPIO17", "GPIO27", "GPIO22")

	b.l.Release()
	r.expect("GPIO5", "GPIO17", "GPIO27") // bell: no hold
	r.clock.Advance(300 * time.Millisecond)

	// Page C to office during the holds: cancels z1's and amp's pending
	// off, and starts at once because both have been on long enough.
	c, err := r.bank.Acquire(context.Background(), []string{"office"})
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(300 * time.Millisecond) // z2's hold ends, z1's would have
	r.expect("GPIO5", "GPIO17")
	r.clock.Advance(5 * time.Second) // amp's old hold long gone
	r.expect("GPIO5", "GPIO17")
	c.Release()
	r.clock.Advance(600 * time.Millisecond)
	r.expect("GPIO5")
	r.clock.Advance(400 * time.Millisecond)
	r.expect()

	// Each relay switched on exactly once: no chatter during the holds.
	got := r.events()
	count := map[string]int{}
	for _, e := range got {
		count[e]++
	}
	for _, rl := range []string{"amp", "z1", "z2", "bell"} {
		if count["relay.on "+rl] != 1 || count["relay.off "+rl] != 1 {
			t.Errorf("relay %s: events %v", rl, got)
		}
	}
}

// A page that comes back during the hold of a relay it turned on gets a
// fresh lead only for the time that relay has not yet been on.
func TestNewPageDuringLead(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	chA := r.acquire(context.Background(), "office")
	r.clock.WaitTimer(t, 5*time.Second)
	r.clock.Advance(200 * time.Millisecond)
	chB := r.acquire(context.Background(), "office")
	r.clock.WaitTimer(t, 5*time.Second)
	r.clock.Advance(299 * time.Millisecond)
	notYet(t, chA)
	notYet(t, chB)
	r.clock.Advance(time.Millisecond) // 500ms after the amp switched on
	done(t, chA).l.Release()
	done(t, chB).l.Release()
	r.clock.Advance(time.Second)
	r.expect()
}

func TestCancelDuringLead(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	ctx, cancel := context.WithCancel(context.Background())
	ch := r.acquire(ctx, "office")
	r.clock.WaitTimer(t, 5*time.Second)
	cancel()
	a := done(t, ch)
	if !errors.Is(a.err, context.Canceled) || a.l != nil {
		t.Fatalf("got %+v, want context.Canceled", a)
	}
	r.clock.WaitTimer(t, 5*time.Second) // hold timers
	r.clock.Advance(time.Second)
	r.expect()
}

func TestNoRelays(t *testing.T) {
	cfg := testConfig()
	delete(cfg.Relays, "amp")
	r := newRig(t, cfg, gpio.Low)
	l, err := r.bank.Acquire(context.Background(), []string{"lobby", "no-such-zone"})
	if err != nil {
		t.Fatal(err)
	}
	r.expect()
	l.Release()
	if n := r.clock.Pending(); n != 0 {
		t.Errorf("%d timers for a page without relays", n)
	}
}

// Close drives everything off at once (pending holds and active pages
// included), and nothing switches afterwards.
func TestSafeStateOnClose(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	ch := r.acquire(context.Background(), "yard")
	r.clock.WaitTimer(t, 5*time.Second)
	r.clock.Advance(500 * time.Millisecond)
	a := done(t, ch)
	// office's relays have been on longer than their leads: no wait.
	late := done(t, r.acquire(context.Background(), "office"))
	if late.err != nil {
		t.Fatal(late.err)
	}
	r.expect("GPIO5", "GPIO17", "GPIO27", "GPIO22")
	if err := r.bank.Close(); err != nil {
		t.Fatal(err)
	}
	r.expect()
	a.l.Release()
	r.clock.Advance(10 * time.Second)
	r.expect()
	if _, err := r.bank.Acquire(context.Background(), []string{"office"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
	if err := r.bank.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	got := r.events()
	offs := 0
	for _, e := range got {
		if e[:9] == "relay.off" {
			offs++
		}
	}
	if offs != 4 {
		t.Errorf("events %v: want 4 relay.off", got)
	}
}

func TestCloseDuringLead(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	ch := r.acquire(context.Background(), "office")
	r.clock.WaitTimer(t, 5*time.Second)
	if err := r.bank.Close(); err != nil {
		t.Fatal(err)
	}
	if a := done(t, ch); !errors.Is(a.err, ErrClosed) {
		t.Errorf("got %v, want ErrClosed", a.err)
	}
	r.expect()
}

// Reload: the old bank is closed, the new one starts from all-off even for
// pins it shares with the old one.
func TestReload(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	ch := r.acquire(context.Background(), "yard")
	r.clock.WaitTimer(t, 5*time.Second)
	r.clock.Advance(time.Second)
	a := done(t, ch)
	if err := r.bank.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Relays["z2"].ActiveLow = true // rewired
	// A pin left energised by someone else is still driven off by New.
	r.pins["GPIO27"].Out(gpio.Low)
	nb, err := New(ConfigOf(cfg), Options{Resolve: r.resolve, Clock: r.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	a.l.Release()
	if r.level("GPIO27") != gpio.High {
		t.Error("rewired active-low z2 not off")
	}
	for _, p := range []string{"GPIO5", "GPIO17"} {
		if r.level(p) != gpio.Low {
			t.Errorf("%s on after reload", p)
		}
	}
}

func TestAllOff(t *testing.T) {
	cfg := testConfig()
	pins := map[string]*gpiotest.Pin{}
	for _, rc := range cfg.Relays {
		lvl := gpio.High
		if rc.ActiveLow {
			lvl = gpio.Low
		}
		pins[rc.Pin] = &gpiotest.Pin{N: rc.Pin, L: lvl} // all energised, as after a crash
	}
	resolve := func(n string) (gpio.PinOut, error) {
		if p, ok := pins[n]; ok {
			return p, nil
		}
		return nil, errors.New("unknown")
	}
	if err := AllOff(ConfigOf(cfg), resolve); err != nil {
		t.Fatal(err)
	}
	for n, p := range pins {
		want := gpio.Low
		if n == "GPIO22" {
			want = gpio.High
		}
		if p.L != want {
			t.Errorf("%s at %v", n, p.L)
		}
	}
	// A missing pin is reported, and the others are still driven off.
	delete(pins, "GPIO17")
	pins["GPIO5"].L = gpio.High
	err := AllOff(ConfigOf(cfg), resolve)
	if err == nil || pins["GPIO5"].L != gpio.Low {
		t.Errorf("AllOff with a missing pin: err=%v, GPIO5=%v", err, pins["GPIO5"].L)
	}
}

func TestNewErrors(t *testing.T) {
	cfg := testConfig()
	pins := map[string]*gpiotest.Pin{}
	for _, rc := range cfg.Relays {
		pins[rc.Pin] = &gpiotest.Pin{N: rc.Pin, L: gpio.High}
	}
	delete(pins, "GPIO27")
	_, err := New(ConfigOf(cfg), Options{Resolve: func(n string) (gpio.PinOut, error) {
		if p, ok := pins[n]; ok {
			return p, nil
		}
		return nil, errors.New("unknown")
	}})
	if err == nil {
		t.Fatal("New with a missing pin succeeded")
	}
	if pins["GPIO5"].L != gpio.Low || pins["GPIO17"].L != gpio.Low {
		t.Error("resolvable pins not driven off when New fails")
	}
}

func TestStatesReport(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	ch := r.acquire(context.Background(), "office")
	r.clock.WaitTimer(t, 5*time.Second)
	r.clock.Advance(500 * time.Millisecond)
	a := done(t, ch)
	a.l.Release()
	st := r.bank.States()
	sort.Slice(st, func(i, j int) bool { return st[i].Name < st[j].Name })
	want := []State{
		{Name: "amp", Pin: "GPIO5", Role: "page_active", On: true, Holding: true},
		{Name: "bell", Pin: "GPIO22", Role: "zone"},
		{Name: "z1", Pin: "GPIO17", Role: "zone", On: true, Holding: true},
		{Name: "z2", Pin: "GPIO27", Role: "zone"},
	}
	if !slices.Equal(st, want) {
		t.Errorf("states %+v\nwant %+v", st, want)
	}
}

// Many pages at once on shared relays, under -race: the reference counts
// come out even and every relay ends off after its hold.
func TestConcurrentPages(t *testing.T) {
	cfg := testConfig()
	for _, rc := range cfg.Relays {
		rc.Lead = 0 // no lead timers, so pages run without the test advancing time
	}
	r := newRig(t, cfg, gpio.Low)
	var wg sync.WaitGroup
	zones := []string{"office", "yard", "lobby"}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				l, err := r.bank.Acquire(context.Background(), []string{zones[(i+j)%3], zones[j%3]})
				if err != nil {
					t.Error(err)
					return
				}
				l.Release()
			}
		}()
	}
	wg.Wait()
	for _, s := range r.bank.States() {
		if s.Pages != 0 {
			t.Errorf("relay %s: %d pages after all released", s.Name, s.Pages)
		}
	}
	r.clock.Advance(time.Second)
	r.expect()
}

// Reload in place: a page playing through the reload keeps the relays
// that did not change (with the new hold times on release); removed and
// rewired relays are driven off at once, new ones start off; later pages
// use the new zone mapping. A config naming a missing pin changes nothing.
func TestReloadInPlace(t *testing.T) {
	r := newRig(t, testConfig(), gpio.Low)
	ch := r.acquire(context.Background(), "yard")
	r.clock.WaitTimer(t, 5*time.Second)
	r.clock.Advance(500 * time.Millisecond)
	a := done(t, ch)
	if a.err != nil {
		t.Fatal(a.err)
	}
	r.expect("GPIO5", "GPIO17", "GPIO27", "GPIO22")
	r.events()

	bad := testConfig()
	bad.Relays["z1"].Pin = "GPIO99"
	before := r.bank.States()
	if err := r.bank.Reload(ConfigOf(bad)); err == nil || !strings.Contains(err.Error(), "GPIO99") {
		t.Errorf("reload with a missing pin: %v", err)
	}
	if after := r.bank.States(); !slices.Equal(before, after) {
		t.Errorf("failed reload changed the bank:\n%+v\n%+v", before, after)
	}

	cfg := testConfig()
	cfg.Relays["amp"].Hold = config.Duration(2 * time.Second) // retimed: kept
	cfg.Relays["z2"].ActiveLow = true                         // rewired: off at once
	delete(cfg.Relays, "bell")                                // removed: off at once
	cfg.Relays["strobe"] = relayCfg("GPIO23", config.RoleZone, false, 0, 0)
	cfg.Zones["yard"].Relays = []string{"z1", "z2", "strobe"}
	r.pins["GPIO23"] = &gpiotest.Pin{N: "GPIO23", L: gpio.High} // left energised by someone
	if err := r.bank.Reload(ConfigOf(cfg)); err != nil {
		t.Fatal(err)
	}
	lv := func() string {
		return fmt.Sprintf("amp %s z1 %s z2 %s bell %s strobe %s", r.level("GPIO5"), r.level("GPIO17"),
			r.level("GPIO27"), r.level("GPIO22"), r.level("GPIO23"))
	}
	// z2 is now active-low: off is High; bell was active-low: off is High.
	if got, want := lv(), "amp High z1 High z2 High bell High strobe Low"; got != want {
		t.Errorf("after reload: %s, want %s", got, want)
	}
	if got, want := r.events(), []string{"relay.off z2", "relay.off bell"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}

	a.l.Release() // the page playing through the reload ends
	r.clock.Advance(600 * time.Millisecond)
	if got, want := lv(), "amp High z1 Low z2 High bell High strobe Low"; got != want {
		t.Errorf("600ms after release: %s, want %s (z1 hold)", got, want)
	}
	r.clock.Advance(1399 * time.Millisecond)
	if r.level("GPIO5") != gpio.High {
		t.Error("amp off before its new 2s hold")
	}
	r.clock.Advance(time.Millisecond)
	if got, want := lv(), "amp Low z1 Low z2 High bell High strobe Low"; got != want {
		t.Errorf("after the holds: %s, want %s", got, want)
	}

	r.clock.Drain() // the hold timers
	ch = r.acquire(context.Background(), "yard")
	r.clock.WaitTimer(t, 5*time.Second)
	if got, want := lv(), "amp High z1 High z2 Low bell High strobe High"; got != want {
		t.Errorf("new page on yard: %s, want %s", got, want)
	}
	r.clock.Advance(500 * time.Millisecond)
	done(t, ch).l.Release()
	if err := r.bank.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := lv(), "amp Low z1 Low z2 High bell High strobe Low"; got != want {
		t.Errorf("after close: %s, want %s", got, want)
	}
}

// A name the kernel gives a line is driven through parkpage's own
// requests (the level is set in the request: no brief "on" for an
// active-low board, as periph's driver would give); only names periph
// alone knows go to periph.
func TestHostResolverPrefersKernelLines(t *testing.T) {
	kernel := map[string]*gpiotest.Pin{"GPIO17": {N: "GPIO17"}, "RELAY0": {N: "RELAY0"}}
	periph := map[string]*gpiotest.Pin{"GPIO17": {N: "GPIO17 (periph)"}, "P1_11": {N: "P1_11"}}
	resolve := hostResolver(func(name string) (*gpiotest.Pin, error) {
		if p := kernel[name]; p != nil {
			return p, nil
		}
		return nil, errors.New("no such line")
	}, func(name string) (gpio.PinOut, error) {
		if p := periph[name]; p != nil {
			return p, nil
		}
		return nil, nil
	})
	for name, want := range map[string]*gpiotest.Pin{"GPIO17": kernel["GPIO17"], "RELAY0": kernel["RELAY0"], "P1_11": periph["P1_11"]} {
		got, err := resolve(name)
		if err != nil || got != gpio.PinOut(want) {
			t.Errorf("%s: got %v (%v), want %s", name, got, err, want.N)
		}
	}
	if _, err := resolve("GPIO99"); err == nil || !strings.Contains(err.Error(), `"GPIO99"`) {
		t.Errorf("unknown pin: %v", err)
	}
}
