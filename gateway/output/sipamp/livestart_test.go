package sipamp

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/multicast"
)

// A live page keeps its start on a SIP amplifier: the talker starts at
// once (a phone's page relayed, Go at submit, as package phonepage does)
// while the amplifier answers and takes settle (800 ms), its zone code and
// after_code (300 ms); alone in its zone, and lined up with a Polycom group
// page (0.93 s of Alerts) on the same zone. The page opens with 400 ms of
// a loud 1 kHz tone (the first words) and goes on with 1.6 s of a quiet
// 440 Hz tone; the amplifier must hear all of the opening tone, later,
// rather than join at the live edge and lose the first ~1.2 s.
func TestLivePageKeepsStart(t *testing.T) {
	for i, tc := range []struct {
		name    string
		polycom bool
	}{
		{"alone", false},
		{"aligned with polycom", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			rx := newReceiver(t)
			amp := startSipp(t, "amp.xml", 1, "rtp_port", rx.port(), "codec_pt", "0", "codec_name", "PCMU")
			outs := fmt.Sprintf("      - { type: sip, uri: %q, preset: generic, zone_code: \"1\", settle: 800ms, after_code: 300ms, answer_timeout: 10s }\n", amp.uri("page"))
			kinds := output.Kinds{config.OutputSIP: Factory(r.options(t))}
			if tc.polycom {
				group := fmt.Sprintf("239.255.48.%d", 1+i)
				l := mcasttest.Listen(t, group, 0)
				outs += fmt.Sprintf("      - { type: polycom, group: %s, port: %d, interface: lo, loopback: true, codec: pcmu, channel: 26 }\n", group, l.Port())
				pacer := multicast.NewPacer(testLogger(t))
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Go(func() { _ = pacer.Run(ctx) })
				t.Cleanup(func() { cancel(); wg.Wait() })
				kinds[config.OutputPolycom] = multicast.NewOutputs(multicast.OutputsOptions{Pacer: pacer, Logger: testLogger(t)}).Polycom
			}
			cfg, _, err := config.Parse("test.yaml", []byte("zones:\n  lobby:\n    outputs:\n"+outs))
			if err != nil {
				t.Fatal(err)
			}
			g, err := gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()

			const loudMs, quietMs = 400, 1600
			buf := paging.NewLiveBuffer()
			buf.Go(nil)
			h, err := g.Submit(context.Background(), paging.Page{ID: "live", Priority: output.PriorityLive, Zones: []string{"lobby"}, Audio: buf})
			if err != nil {
				t.Fatal(err)
			}
			// The talker, in real time: one 20 ms frame per frame's worth
			// of wall time (a late tick writes what is due at once).
			start := time.Now()
			total := (loudMs + quietMs) * codec.SampleRate / 1000
			frame := make([]int16, codec.FrameSamples)
			for k := 0; k < total; k += codec.FrameSamples {
				for j := range frame {
					n := k + j
					a, f := 1500.0, 440.0
					if n < loudMs*codec.SampleRate/1000 {
						a, f = 14000, 1000
					}
					frame[j] = int16(a * math.Sin(2*math.Pi*f*float64(n)/codec.SampleRate))
				}
				buf.Write(frame)
				time.Sleep(time.Until(start.Add(time.Duration(k+codec.FrameSamples) * time.Second / codec.SampleRate)))
			}
			buf.Close()
			if reason, err := h.Wait(context.Background()); err != nil || reason != paging.ReasonDone {
				t.Errorf("page ended %q (%v), want done", reason, err)
			}
			amp.mustPass()

			got, _ := audioOf(t, rx.packets(), 0, codec.PCMU)
			first, last := -1, -1
			for k, v := range got {
				if v > 9000 || v < -9000 {
					if first < 0 {
						first = k
					}
					last = k
				}
			}
			// The resamplers on the way (the leg's 16 to 8 kHz and the
			// test's decoder) blur a couple of ms at each edge.
			heard := time.Duration(last-first+1) * time.Second / codec.SampleRate
			if first < 0 || heard < (loudMs-10)*time.Millisecond {
				t.Errorf("amplifier heard %v of the page's opening %d ms tone: its start was dropped", heard, loudMs)
			}
			if whole := time.Duration(len(got)) * time.Second / codec.SampleRate; whole < (loudMs+quietMs-20)*time.Millisecond {
				t.Errorf("amplifier got %v of audio, the page had %d ms", whole, loudMs+quietMs)
			}
			t.Logf("opening tone heard for %v; %v of audio", heard, time.Duration(len(got))*time.Second/codec.SampleRate)
		})
	}
}
