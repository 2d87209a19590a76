package lineout

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
	"github.com/parkpage/parkpage/relays"
)

// recPin is a gpiotest pin that records every level driven.
type recPin struct {
	*gpiotest.Pin
	tl *clocktest.Timeline
}

func (p *recPin) Out(l gpio.Level) error {
	p.tl.Add("%s %s", p.N, l)
	return p.Pin.Out(l)
}

// realtimeDevice is the fake device consuming frames at its rate, as a
// sound card does once its buffer is full, and noting its first and last
// write and its close.
type realtimeDevice struct {
	*fakeDevice
	tl     *clocktest.Timeline
	writes int
}

func (d *realtimeDevice) WriteI(buf []int16, channels int) (int, error) {
	if d.writes == 0 {
		d.tl.Add("first write")
	}
	d.writes++
	n, err := d.fakeDevice.WriteI(buf, channels)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(d.hw.Interval(paramRate).Lo()))
	return n, err
}

func (d *realtimeDevice) Close() error {
	d.tl.Add("device closed")
	return d.fakeDevice.Close()
}

// A line-out zone paired with relays, through the gateway as cmd wires it
// (output.Kinds, relays.Bank via LeaseRelays): a radio's push-to-talk
// on an active-low relay board as the zone's relay, and an amplifier
// enable as the page-active relay. Both are driven off at start; both
// close before audio and the first sample reaches the sound device only
// after the longest lead; each opens its own hold after the device has
// played out. Exact times: a synctest bubble.
func TestLineOutWithRelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tl := clocktest.NewTimeline()
		cfg, _, err := config.Parse("test.yaml", []byte(`
relays:
  amp-enable: { pin: GPIO5, role: page_active, lead: 400ms, hold: 800ms }
  radio-ptt:  { pin: GPIO6, active_low: true, lead: 250ms, hold: 300ms }
zones:
  shop:
    relays: [radio-ptt]
    outputs:
      - { type: lineout, device: "hw:1,0", rate: 48000 }
`))
		if err != nil {
			t.Fatal(err)
		}
		pins := map[string]*recPin{
			// Energised at start, as after a crash.
			"GPIO5": {Pin: &gpiotest.Pin{N: "GPIO5", L: gpio.High}, tl: tl},
			"GPIO6": {Pin: &gpiotest.Pin{N: "GPIO6", L: gpio.Low}, tl: tl},
		}
		bank, err := relays.New(relays.ConfigOf(cfg), relays.Options{Resolve: func(name string) (gpio.PinOut, error) {
			if p, ok := pins[name]; ok {
				return p, nil
			}
			return nil, fmt.Errorf("no pin %s", name)
		}})
		if err != nil {
			t.Fatal(err)
		}
		dev := &realtimeDevice{fakeDevice: newFake([]uint32{48000}, []uint32{2}), tl: tl}
		kinds := output.Kinds{config.OutputLineOut: func(zone string, i int, o *config.Output) (output.Output, error) {
			return New(output.Name(zone, i), o, Options{Open: func(p string) (Device, error) {
				if _, err := dev.opener(nil)(p); err != nil {
					return nil, err
				}
				return dev, nil
			}})
		}}
		g, err := gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Relays: gateway.LeaseRelays(bank.Acquire),
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		h, err := g.Submit(context.Background(), paging.Page{ID: "p", Priority: output.PriorityLive, Zones: []string{"shop"},
			Audio: staticAudio(make([]int16, 8000))}) // 0.5 s
		if err != nil {
			t.Fatal(err)
		}
		if r, err := h.Wait(context.Background()); err != nil || r != paging.ReasonDone {
			t.Fatalf("page ended %q, %v", r, err)
		}
		time.Sleep(2 * time.Second) // past every hold
		want := []string{
			"00000 GPIO5 Low",  // safe state at start: amp-enable off (active high)
			"00000 GPIO6 High", // radio-ptt off (active low)
			"00000 GPIO5 High", // page: amplifier enable first
			"00000 GPIO6 Low",  // then the zone's push-to-talk
			"00400 first write",
			"00900 device closed",
			"01200 GPIO6 High", // ptt hold 300 ms
			"01700 GPIO5 Low",  // amplifier hold 800 ms
		}
		got := tl.Lines()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("timeline:\n got %q\nwant %q", got, want)
		}
		if len(dev.written) != 2*24000 {
			t.Errorf("%d samples written, want 0.5 s of stereo at 48 kHz", len(dev.written))
		}
		// Safe state on stop.
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if err := bank.Close(); err != nil {
			t.Fatal(err)
		}
		if pins["GPIO5"].L != gpio.Low || pins["GPIO6"].L != gpio.High {
			t.Errorf("after stop: GPIO5 %s, GPIO6 %s; want both relays off", pins["GPIO5"].L, pins["GPIO6"].L)
		}
	})
}
