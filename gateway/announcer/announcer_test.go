package announcer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
)

const baseConfig = `
park:
  lots:
    - extension: "700"
      slots: 701-710
      label: Front
      announce:
        zones: [lobby]
  slots:
    "704":
      label: Sales
      announce:
        zones: [sales, warehouse]
        repeat_every: 30s
        repeat_max: 2
    "705":
      announce:
        enabled: false
    "706":
      announce:
        template: "{caller} is waiting on {slot}"
announce:
  chime: none
zones:
  lobby:
    outputs: [{type: rtp, group: 239.0.0.1, port: 5000, codec: pcmu, interface: lo}]
  sales:
    outputs: [{type: rtp, group: 239.0.0.2, port: 5000, codec: g722, interface: lo}]
  warehouse:
    template: "{label} call for the warehouse on {slot}"
    outputs: [{type: polycom, group: 239.0.0.3, port: 5001, codec: pcmu, interface: lo}]
`

func parse(t *testing.T, y string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRuleFor(t *testing.T) {
	cfg := parse(t, baseConfig)
	tests := []struct {
		slot    string
		ok      bool
		enabled bool
		label   string
		zones   []string
		every   time.Duration
		max     int
	}{
		{"701", true, true, "Front", []string{"lobby"}, 0, 3},
		{"704", true, true, "Sales", []string{"sales", "warehouse"}, 30 * time.Second, 2},
		{"705", true, false, "Front", []string{"lobby"}, 0, 3},
		{"711", false, false, "", nil, 0, 0},
		{"abc", false, false, "", nil, 0, 0},
	}
	for _, tc := range tests {
		r, ok := RuleFor(cfg, tc.slot)
		if ok != tc.ok || r.Enabled != tc.enabled || r.Label != tc.label || !slices.Equal(r.Zones, tc.zones) || r.RepeatEvery != tc.every || r.RepeatMax != tc.max {
			t.Errorf("RuleFor(%s) = %+v, %v; want ok=%v enabled=%v label=%q zones=%v every=%v max=%d",
				tc.slot, r, ok, tc.ok, tc.enabled, tc.label, tc.zones, tc.every, tc.max)
		}
	}
}

func TestCompose(t *testing.T) {
	cfg := parse(t, baseConfig)
	r, _ := RuleFor(cfg, "704")
	specs, err := Compose(cfg, r, announce.Fields{Caller: "Alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, s := range specs {
		got = append(got, fmt.Sprintf("%v %q %q", s.Zones, s.Text, s.CallerID))
	}
	want := []string{
		`[sales] "Call for Sales on seven oh four" "704 Sales"`,
		`[warehouse] "Sales call for the warehouse on seven oh four" "704 Sales"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Compose:\n got %q\nwant %q", got, want)
	}
	// A slot template wins over the zones' and names the caller.
	r, _ = RuleFor(cfg, "706")
	specs, _ = Compose(cfg, r, announce.Fields{Caller: "Alice"}, []string{"lobby", "warehouse"})
	if len(specs) != 1 || specs[0].Text != "Alice is waiting on seven oh six" || len(specs[0].Zones) != 2 {
		t.Errorf("slot template: %+v", specs)
	}
	if !dependsOnCall(cfg, r) {
		t.Error("706's template names the caller")
	}
	if CallerID("704", "Warehouse North") != "704 Warehouse" {
		t.Errorf("CallerID = %q", CallerID("704", "Warehouse North"))
	}
}

func TestPartyName(t *testing.T) {
	for in, want := range map[string]string{
		`"Alice" <sip:201@pbx>`: "Alice",
		`Bob <sip:202@pbx>`:     "Bob",
		`<sip:203@pbx;user=x>`:  "203",
		`sip:204@pbx`:           "204",
		`205`:                   "205",
		``:                      "",
	} {
		if got := PartyName(in); got != want {
			t.Errorf("PartyName(%q) = %q, want %q", in, got, want)
		}
	}
}

// play is one Play call seen by a fake output.
type play struct {
	at     time.Duration
	zone   string
	output string
	text   string
	ended  time.Duration
	cut    bool
}

type harness struct {
	t   *testing.T
	t0  time.Time
	bus *events.Bus
	gw  *gateway.Gateway
	ann *Announcer

	mu    sync.Mutex
	plays []*play
}

// newHarness runs an announcer over a real gateway whose outputs are fakes
// that play for the audio's length, inside a synctest bubble.
func newHarness(t *testing.T, y string) *harness {
	return newHarnessWith(t, y, nil)
}

func newHarnessWith(t *testing.T, y string, parked func() []events.Event) *harness {
	cfg := parse(t, y)
	h := &harness{t: t, t0: time.Now(), bus: events.New()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	h.gw, err = gateway.New(cfg.Zones, gateway.Options{Logger: log, Outputs: func(zone string, i int, o *config.Output) (output.Output, error) {
		return &fakeOut{h: h, name: output.Name(zone, i)}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := announce.NewRenderer(announce.Config{NewSpeaker: func(string) (announce.Speaker, error) { return toneSpeaker{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	h.ann, err = New(cfg, Options{Pager: h.gw, Audio: announce.NewCache(r, 16), Bus: h.bus, Logger: log, Parked: parked})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.ann.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; h.gw.Close() })
	synctest.Wait()
	return h
}

// toneSpeaker "says" a text as 100 ms of tone per word.
type toneSpeaker struct{}

func (toneSpeaker) Synthesize(ctx context.Context, text string) ([]int16, error) {
	n := len(strings.Fields(text)) * 1600
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(float64(i)*2*math.Pi*440/16000))
	}
	return pcm, nil
}

type fakeOut struct {
	h    *harness
	name string
}

func (o *fakeOut) Name() string { return o.name }

func (o *fakeOut) Play(ctx context.Context, pb *output.Playback) error {
	p := &play{at: time.Since(o.h.t0), zone: pb.Zone, output: o.name}
	o.h.mu.Lock()
	o.h.plays = append(o.h.plays, p)
	o.h.mu.Unlock()
	d := time.Duration(len(pb.Audio.PCM())) * time.Second / 16000
	select {
	case <-time.After(d):
	case <-ctx.Done():
		p.cut = true
	}
	o.h.mu.Lock()
	p.ended = time.Since(o.h.t0)
	o.h.mu.Unlock()
	return nil
}

func (h *harness) publish(typ events.Type, slot string) {
	h.bus.Publish(events.Event{Type: typ, Slot: slot, Caller: `"Alice" <sip:201@pbx>`, Source: "local"})
}

func (h *harness) snapshot() []play {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []play
	for _, p := range h.plays {
		out = append(out, *p)
	}
	return out
}

func TestParkAnnouncesToItsZonesOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, baseConfig)
		h.publish(events.CallParked, "701")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		ps := h.snapshot()
		if len(ps) != 1 || ps[0].zone != "lobby" || ps[0].cut {
			t.Fatalf("plays = %+v, want one uncut play on lobby", ps)
		}
		// Disabled slot and a slot in no lot: nothing.
		h.publish(events.CallParked, "705")
		h.publish(events.CallParked, "799")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := len(h.snapshot()); n != 1 {
			t.Fatalf("%d plays after disabled/unknown slots, want 1", n)
		}
	})
}

func TestRepeatsStopOnPickup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, baseConfig)
		h.publish(events.CallParked, "704")
		// 704 repeats every 30 s, at most 2 repeats: plays at 0, 30, 60 s on
		// both of its zones, then stops.
		time.Sleep(100 * time.Second)
		synctest.Wait()
		ps := h.snapshot()
		if len(ps) != 6 {
			t.Fatalf("%d plays, want 6 (3 × 2 zones): %+v", len(ps), ps)
		}
		for i, p := range ps {
			if want := time.Duration(i/2) * 30 * time.Second; p.at.Round(time.Second)-ps[0].at.Round(time.Second) != want {
				t.Errorf("play %d at %v, want %v after the first", i, p.at, want)
			}
		}

		// Park again, pick up during the first announcement: cut at once,
		// no repeats.
		h.publish(events.CallParked, "704")
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		h.publish(events.CallRetrieved, "704")
		synctest.Wait()
		pickedUp := time.Since(h.t0)
		time.Sleep(100 * time.Second)
		synctest.Wait()
		ps = h.snapshot()[6:]
		if len(ps) != 2 {
			t.Fatalf("%d plays after the second park, want 2: %+v", len(ps), ps)
		}
		for _, p := range ps {
			if !p.cut || p.ended-pickedUp > 0 {
				t.Errorf("play %+v not cut at pickup (%v)", p, pickedUp)
			}
		}
		if a := h.ann.Active(); len(a) != 0 {
			t.Errorf("active runs %v after pickup", a)
		}
	})
}

func TestRingbackAndAbandonStopAnnouncements(t *testing.T) {
	for _, typ := range []events.Type{events.CallTimedOut, events.CallRangBack, events.CallAbandoned} {
		t.Run(string(typ), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, baseConfig)
				h.publish(events.CallParked, "704")
				time.Sleep(100 * time.Millisecond)
				synctest.Wait()
				h.publish(typ, "704")
				time.Sleep(100 * time.Second)
				synctest.Wait()
				ps := h.snapshot()
				if len(ps) != 2 || !ps[0].cut || !ps[1].cut {
					t.Errorf("plays = %+v, want the first announcement cut and no repeat", ps)
				}
			})
		})
	}
}

func TestRapidParkUnparkDoesNotStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, baseConfig)
		for range 5 {
			h.publish(events.CallParked, "701")
			h.publish(events.CallRetrieved, "701")
		}
		h.publish(events.CallParked, "701")
		time.Sleep(30 * time.Second)
		synctest.Wait()
		uncut := 0
		for _, p := range h.snapshot() {
			if !p.cut {
				uncut++
			}
		}
		if uncut != 1 {
			t.Errorf("%d announcements played to the end, want 1: %+v", uncut, h.snapshot())
		}
		// A second park of an occupied slot (AMI ParkedCallSwap) replaces
		// the run rather than adding one.
		h.publish(events.CallParked, "701")
		h.publish(events.CallParked, "701")
		synctest.Wait()
		if a := h.ann.Active(); len(a) != 1 {
			t.Errorf("active = %v, want one run", a)
		}
	})
}

func TestReturnedCallIsAnnouncedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, baseConfig)
		h.publish(events.CallParked, "701")
		time.Sleep(10 * time.Second)
		h.publish(events.CallTimedOut, "701")
		h.publish(events.CallReturned, "701")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := len(h.snapshot()); n != 2 {
			t.Errorf("%d plays, want 2 (park, return)", n)
		}
	})
}

// After lost events the announcer resynchronises with the park board: a
// park it missed is announced, a run whose call left is stopped, and a
// park already announced is not announced again.
func TestResyncAfterLostEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		board := []string{}
		parked := func() []events.Event {
			mu.Lock()
			defer mu.Unlock()
			var es []events.Event
			for _, s := range board {
				es = append(es, events.Event{Type: events.CallParked, Slot: s})
			}
			return es
		}
		setBoard := func(slots ...string) { mu.Lock(); board = slots; mu.Unlock() }
		h := newHarnessWith(t, baseConfig, parked)

		// 702 parked and announced once; 704 parked, announcing with repeats.
		h.publish(events.CallParked, "702")
		h.publish(events.CallParked, "704")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		n := len(h.snapshot())
		// Events lost: meanwhile 701 was parked and 704 picked up.
		setBoard("701", "702")
		h.bus.Publish(events.Event{Type: events.Lost, Count: 3})
		time.Sleep(100 * time.Second)
		synctest.Wait()
		var zones []string
		for _, p := range h.snapshot()[n:] {
			zones = append(zones, p.zone)
		}
		// 701 (lobby) announced once; no 704 repeats (sales, warehouse); no
		// second 702 announcement (lobby).
		if !slices.Equal(zones, []string{"lobby"}) {
			t.Errorf("after resync the zones heard %v, want [lobby] (701 only)", zones)
		}
		if a := h.ann.Active(); len(a) != 0 {
			t.Errorf("runs after resync: %v", a)
		}
	})
}

// A call moved at the front desk (call.moved): the old slot's run stops
// and the new slot is announced, to the new slot's zones.
func TestMovedCallIsAnnouncedAtItsNewSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, baseConfig)
		h.publish(events.CallParked, "704") // repeats every 30 s on sales and warehouse
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		h.bus.Publish(events.Event{Type: events.CallMoved, Slot: "701", From: "704", Caller: `"Alice" <sip:201@pbx>`, Source: "local"})
		time.Sleep(100 * time.Second)
		synctest.Wait()
		ps := h.snapshot()
		if len(ps) != 3 || !ps[0].cut || !ps[1].cut || ps[2].zone != "lobby" || ps[2].cut {
			t.Fatalf("plays = %+v, want 704's first announcement cut (2 zones, no repeats) and one on lobby for 701", ps)
		}
		if a := h.ann.Active(); len(a) != 0 {
			t.Errorf("active runs %v", a)
		}
	})
}
