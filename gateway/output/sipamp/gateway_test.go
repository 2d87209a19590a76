package sipamp

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/multicast"
)

// A failing SIP output never holds up the other outputs of the same page
// for longer than the zone's align_wait:
// a zone with an RTP multicast output (Yealink paging) and a SIP amplifier
// that rejects, or rings and never answers, goes through output.Kinds,
// scheduler and Pacer. The multicast listener on lo gets the whole page
// while the SIP call is still ringing; the SIP failure is an output.failed
// event naming the output, and the page still ends "done".
func TestFailingDeviceDoesNotDelayMulticast(t *testing.T) {
	for i, tc := range []struct {
		name     string
		scenario string
		calls    int
		retry    int
		reason   string // in the output.failed event
	}{
		{"never answers", "ring.xml", 1, 0, "no answer"},
		{"busy, retried once", "busy.xml", 2, 1, "486"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			// A group of its own per case, so parallel cases do not hear
			// each other; never a default config group.
			group := fmt.Sprintf("239.255.46.%d", i+1)
			rx := joinLo(t, group)
			amp := startSipp(t, tc.scenario, tc.calls)
			yaml := fmt.Sprintf(`
zones:
  lobby:
    outputs:
      - { type: rtp, group: %s, port: %d, interface: lo, loopback: true, codec: pcmu }
      - { type: sip, uri: "%s", preset: algo, answer_timeout: 3s, retry: %d, settle: 0s }
    align_wait: 500ms
`, group, rx.Port(), amp.uri("page"), tc.retry)
			cfg, _, err := config.Parse("test.yaml", []byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			pacer := multicast.NewPacer(nil)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); _ = pacer.Run(ctx) }()
			defer func() { cancel(); wg.Wait() }()
			opts := r.options(t)
			mc := multicast.NewOutputs(multicast.OutputsOptions{Pacer: pacer})
			kinds := output.Kinds{config.OutputSIP: Factory(opts), config.OutputPolycom: mc.Polycom, config.OutputRTP: mc.RTP}
			bus := events.New()
			sub := bus.Subscribe(64)
			g, err := gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Events: bus, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()

			audio := pageAudio{announcement()[:8000]} // 0.5 s
			want, _ := audio.Frames(codec.PCMU)
			stream := rx.collect(t, len(want))
			h, err := g.Submit(context.Background(), paging.Page{ID: "p", Priority: output.PriorityPark, Zones: []string{"lobby"}, Audio: audio})
			if err != nil {
				t.Fatal(err)
			}
			got := <-stream
			if len(got) != len(want) {
				t.Fatalf("multicast listener got %d packets, want the page's %d", len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("multicast packet %d differs from the page", i)
				}
			}
			// The whole multicast page is out; the device that never answers
			// is still ringing (its scenario ends only with our CANCEL,
			// which comes at answer_timeout).
			if tc.scenario == "ring.xml" {
				select {
				case <-amp.done:
					t.Error("sipp scenario already over when the multicast page was complete")
				default:
				}
				for len(sub.C()) > 0 {
					if e := <-sub.C(); e.Type == events.OutputFailed {
						t.Errorf("output failed before the multicast page was complete: %+v", e)
					}
				}
			}

			wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer wcancel()
			if reason, err := h.Wait(wctx); err != nil || reason != paging.ReasonDone {
				t.Errorf("page ended %q (%v), want done: the multicast output played", reason, err)
			}
			amp.mustPass()
			var failed []events.Event
			for len(sub.C()) > 0 {
				if e := <-sub.C(); e.Type == events.OutputFailed {
					failed = append(failed, e)
				}
			}
			if len(failed) != 1 || failed[0].Output != "lobby/outputs[1]" || !strings.Contains(failed[0].Reason, tc.reason) {
				t.Errorf("output.failed events %+v, want one for lobby/outputs[1] with %q", failed, tc.reason)
			}
		})
	}
}

// loListener is a UDP socket joined to a multicast group on lo.
type loListener struct{ *mcasttest.Conn }

func joinLo(t *testing.T, group string) *loListener {
	t.Helper()
	return &loListener{mcasttest.Listen(t, group, 0)}
}

// collect reads n RTP packets' payloads (or fails the test after 10 s).
func (l *loListener) collect(t *testing.T, n int) <-chan [][]byte {
	out := make(chan [][]byte, 1)
	go func() {
		var got [][]byte
		buf := make([]byte, 2048)
		_ = l.PC.SetReadDeadline(time.Now().Add(10 * time.Second))
		for len(got) < n {
			k, _, _, err := l.PC.ReadFrom(buf)
			if err != nil {
				t.Errorf("multicast listener: %v after %d packets", err, len(got))
				break
			}
			var p pionrtp.Packet
			if err := p.Unmarshal(bytes.Clone(buf[:k])); err != nil {
				t.Errorf("multicast packet: %v", err)
				continue
			}
			got = append(got, p.Payload)
		}
		out <- got
	}()
	return out
}
