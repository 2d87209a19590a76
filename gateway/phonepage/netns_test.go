package phonepage

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/multicast"
)

const netnsChild = "PARKPAGE_PHONEPAGE_NETNS_CHILD"

// With no default route, a phone-page receiver and the zone outputs that
// name no interface must pick the same one: here the interface of the
// 224.0.0.0/4 route, in a private network namespace (the README's recipe).
// A page sent on zone "floor" (Polycom on the group) is heard by the
// receiver, which relays it to zone "amps". Once, the receiver only looked
// for a default route and failed to start where the outputs went out on lo.
func TestNoDefaultRouteSameInterface(t *testing.T) {
	if os.Getenv(netnsChild) == "" {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Fatalf("needs unshare (util-linux) for a private network namespace: %v", err)
		}
		script := `ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec "$0" -test.run='^TestNoDefaultRouteSameInterface$' -test.v -test.count=1`
		cmd := exec.Command(unshare, "-rn", "sh", "-c", script, os.Args[0])
		cmd.Env = append(os.Environ(), netnsChild+"=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		if err != nil || !strings.Contains(out.String(), "--- PASS: TestNoDefaultRouteSameInterface") {
			t.Fatalf("in a namespace with no default route: %v\n%s", err, out.String())
		}
		return
	}

	route, _ := os.ReadFile("/proc/net/route")
	for _, l := range strings.Split(string(route), "\n")[1:] {
		if f := strings.Fields(l); len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			t.Fatalf("the namespace has a default route:\n%s", route)
		}
	}
	port := freePort(t)
	yaml := fmt.Sprintf(`
zones:
  floor:
    outputs:
      - { type: polycom, group: %[1]s, port: %[2]d, loopback: true, codec: g722, channel: 26 }
  amps:
    outputs:
      - { type: sip, uri: "sip:page@amp.test" }
phone_pages:
  - { type: polycom, group: %[1]s, port: %[2]d, channel: 26, zones: [amps] }
`, polycomGroup, port)
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	amp := &fakeAmp{relay: &gpiotest.Pin{N: "GPIO17"}}
	pacer := startPacer(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	mc := multicast.NewOutputs(multicast.OutputsOptions{Pacer: pacer})
	kinds := output.Kinds{config.OutputPolycom: mc.Polycom,
		config.OutputSIP: func(string, int, *config.Output) (output.Output, error) { return amp, nil }}
	g, err := gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("zone outputs: %v", err)
	}
	defer g.Close()
	recv, err := New(cfg.PhonePages, Options{Pager: g})
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Start(ctx); err != nil {
		t.Fatalf("phone-page receiver: %v", err)
	}
	wg.Go(func() { _ = recv.Run(ctx) })

	pcm := chirp(time.Second)
	h, err := g.Submit(ctx, paging.Page{ID: "floor-page", Priority: output.PriorityPark, Zones: []string{"floor"},
		Audio: &encodedAudio{t: t, pcm: pcm}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := h.Wait(ctx); err != nil || r != paging.ReasonDone {
		t.Fatalf("floor page: %v %v", r, err)
	}
	// The relayed page ends 500 ms after the last packet (no End is lost on
	// lo, so sooner); wait for the amplifier to have been paged.
	deadline := time.Now().Add(30 * time.Second)
	for {
		amp.mu.Lock()
		pages, n := amp.pages, len(amp.pcm)
		amp.mu.Unlock()
		if pages > 0 && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver never relayed the zone's page (pages %d, samples %d): the two picked different interfaces", pages, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// encodedAudio encodes pcm per codec on demand.
type encodedAudio struct {
	t   *testing.T
	pcm []int16
}

func (a *encodedAudio) Frames(c codec.Name) ([][]byte, error) { return encode(a.t, c, a.pcm), nil }
func (a *encodedAudio) PCM() []int16                          { return a.pcm }
