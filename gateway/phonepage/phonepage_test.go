package phonepage

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"golang.org/x/net/ipv4"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/testsupport/audiotest"
	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
	"github.com/parkpage/parkpage/multicast"
	"github.com/parkpage/parkpage/multicast/polycom"
	"github.com/parkpage/parkpage/relays"
)

// Groups and ports no other package's tests use.
const (
	polycomGroup = "239.255.44.1"
	yealinkGroup = "239.255.44.2"
	zoneGroup    = "239.255.44.3"
)

// fakeAmp is a SIP amplifier output: it records what a live page brings.
type fakeAmp struct {
	mu      sync.Mutex
	pcm     []int16
	pages   int
	callers []string // each relayed page's caller ID
	relay   *gpiotest.Pin
	relayOn bool
	// setup delays the first read (ns), as a SIP amplifier's answer,
	// settle and zone code do.
	setup atomic.Int64
}

func (a *fakeAmp) Name() string { return "lobby/amp" }

func (a *fakeAmp) Play(ctx context.Context, pb *output.Playback) error {
	la, ok := pb.Audio.(output.LiveAudio)
	if !ok {
		return fmt.Errorf("not a live page")
	}
	a.mu.Lock()
	a.pages++
	a.callers = append(a.callers, pb.CallerID)
	a.pin()
	a.mu.Unlock()
	if d := time.Duration(a.setup.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil
		}
	}
	r := la.NewReader()
	defer r.Close()
	f := make([]int16, codec.FrameSamples)
	for {
		if err := r.Next(ctx, f); err != nil {
			return nil
		}
		a.mu.Lock()
		a.pcm = append(a.pcm, f...)
		a.mu.Unlock()
	}
}

func (a *fakeAmp) pin() {
	a.relay.Lock()
	a.relayOn = a.relay.L == gpio.High
	a.relay.Unlock()
}

type rig struct {
	amp      *fakeAmp
	recv     *Receiver
	g        *gateway.Gateway
	zone     *net.UDPConn // the zone's own multicast group: must stay silent
	pcPort   int
	ykPort   int
	own      netip.AddrPort
	zoneSeen atomic.Int32
}

func freePort(t *testing.T) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func newRig(t *testing.T) *rig {
	r := &rig{amp: &fakeAmp{relay: &gpiotest.Pin{N: "GPIO17"}}, pcPort: freePort(t), ykPort: freePort(t)}
	zl := joinLo(t, zoneGroup, 0)
	zonePort := zl.LocalAddr().(*net.UDPAddr).Port
	yaml := fmt.Sprintf(`
relays:
  amp: { pin: GPIO17, lead: 10ms, hold: 10ms }
zones:
  lobby:
    relays: [amp]
    outputs:
      - { type: sip, uri: "sip:page@amp.test" }
      - { type: polycom, group: %s, port: %d, interface: lo, loopback: true, codec: g722, channel: 26 }
phone_pages:
  - { type: polycom, group: %s, port: %d, channel: 26, interface: lo, zones: [lobby] }
  - { type: rtp, group: %s, port: %d, interface: lo, zones: [lobby] }
`, zoneGroup, zonePort, polycomGroup, r.pcPort, yealinkGroup, r.ykPort)
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	bank, err := relays.New(relays.ConfigOf(cfg), relays.Options{Resolve: func(string) (gpio.PinOut, error) { return r.amp.relay, nil }})
	if err != nil {
		t.Fatal(err)
	}
	pacer := startPacer(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b := multicast.NewOutputs(multicast.OutputsOptions{Pacer: pacer})
	kinds := output.Kinds{config.OutputPolycom: b.Polycom, config.OutputRTP: b.RTP,
		config.OutputSIP: func(string, int, *config.Output) (output.Output, error) { return r.amp, nil }}
	// The gateway's and receiver's log, shown if the test fails.
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway and receiver log:\n%s", logs.String())
		}
	})
	r.g, err = gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Relays: gateway.LeaseRelays(bank.Acquire), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	own := map[netip.AddrPort]bool{}
	var ownMu sync.Mutex
	r.recv, err = New(cfg.PhonePages, Options{Pager: r.g, Logger: log, Own: func(src netip.AddrPort) bool {
		ownMu.Lock()
		defer ownMu.Unlock()
		return own[src] || b.OwnSource(src)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.recv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = r.recv.Run(ctx) })
	wg.Go(func() {
		buf := make([]byte, 2048)
		for ctx.Err() == nil {
			zl.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := zl.Read(buf); err == nil {
				r.zoneSeen.Add(1)
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		r.g.Close()
		bank.Close()
	})
	return r
}

func joinLo(t *testing.T, group string, port int) *net.UDPConn {
	t.Helper()
	return mcasttest.Listen(t, group, port).UDPConn()
}

// phoneSocket sends multicast on lo, as a phone on the LAN would.
func phoneSocket(t *testing.T) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lo, _ := net.InterfaceByName("lo")
	pc := ipv4.NewPacketConn(c)
	if err := pc.SetMulticastInterface(lo); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetMulticastLoopback(true)
	return c
}

func chirp(d time.Duration) []int16 {
	n := int(d * codec.SampleRate / time.Second)
	out := make([]int16, n)
	T := d.Seconds()
	for i := range out {
		t := float64(i) / codec.SampleRate
		out[i] = int16(9000 * math.Sin(2*math.Pi*(300*t+2700*t*t/(2*T))))
	}
	return out
}

func encode(t *testing.T, c codec.Name, pcm []int16) [][]byte {
	enc, _ := codec.NewEncoder(c)
	var fs [][]byte
	for i := 0; i+codec.FrameSamples <= len(pcm); i += codec.FrameSamples {
		f, err := enc.Encode(nil, pcm[i:i+codec.FrameSamples])
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	return fs
}

// correlation is the peak normalised cross-correlation of want in got.
func correlation(got, want []int16) float64 { return audiotest.PeakCorrelation(got, want) }

func (r *rig) waitPages(t *testing.T, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.amp.mu.Lock()
		got := r.amp.pages
		r.amp.mu.Unlock()
		busy := false
		for _, z := range r.g.Zones() {
			busy = busy || z.Page != ""
		}
		if got >= n && !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pages relayed, want %d (busy %v)", got, n, busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A VVX's group page on channel 26 (Alerts, G.722 Transmits, Ends) is
// relayed to the zone's SIP amplifier with its relay on, and never goes
// back out on the zone's multicast group.
func TestPolycomPageRelayed(t *testing.T) {
	r := newRig(t)
	voice := chirp(600 * time.Millisecond)
	s, err := polycom.NewSession(polycom.Config{Channel: 26, HostSerial: 0x0004f2aa, CallerID: "Warehouse", Codec: polycom.CodecG722,
		Timing: polycom.Timing{AlertCount: 5, AlertInterval: 5 * time.Millisecond}}, encode(t, codec.G722, voice))
	if err != nil {
		t.Fatal(err)
	}
	c := phoneSocket(t)
	dst := &net.UDPAddr{IP: net.ParseIP(polycomGroup), Port: r.pcPort}
	start := time.Now()
	for {
		due, ok := s.Due()
		if !ok {
			break
		}
		time.Sleep(time.Until(start.Add(due)))
		if _, err := c.WriteToUDP(s.Append(nil), dst); err != nil {
			t.Fatal(err)
		}
	}
	r.waitPages(t, 1)
	r.amp.mu.Lock()
	got, on := r.amp.pcm, r.amp.relayOn
	r.amp.mu.Unlock()
	if cc := correlation(got, voice[len(voice)/4:len(voice)*3/4]); cc < 0.8 {
		t.Errorf("amplifier heard the phone's page with correlation %.2f, want > 0.8", cc)
	}
	if !on {
		t.Error("zone relay off while the amplifier played the phone's page")
	}
	if n := r.zonePackets(); n != 0 {
		t.Errorf("zone's multicast group got %d packets: a phone page must not be re-multicast", n)
	}
}

// zonePackets is what reached the zone's own multicast group, after a
// moment for anything in flight.
func (r *rig) zonePackets() int {
	time.Sleep(60 * time.Millisecond)
	return int(r.zoneSeen.Load())
}

// A Yealink RTP multicast page is relayed too; parkpage's own packets
// (Own) are not.
func TestYealinkPageRelayed(t *testing.T) {
	r := newRig(t)
	voice := chirp(600 * time.Millisecond)
	frames := encode(t, codec.PCMU, voice)
	c := phoneSocket(t)
	dst := &net.UDPAddr{IP: net.ParseIP(yealinkGroup), Port: r.ykPort}
	for i, f := range frames {
		h := pionrtp.Header{Version: 2, Marker: i == 0, PayloadType: 0, SequenceNumber: uint16(1000 + i), Timestamp: uint32(160 * i), SSRC: 0xfeed}
		b, _ := (&pionrtp.Packet{Header: h, Payload: f}).Marshal()
		if _, err := c.WriteToUDP(b, dst); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.waitPages(t, 1)
	r.amp.mu.Lock()
	got := r.amp.pcm
	r.amp.mu.Unlock()
	if cc := correlation(got, voice[len(voice)/4:len(voice)*3/4]); cc < 0.8 {
		t.Errorf("amplifier heard the Yealink page with correlation %.2f (%d samples)", cc, len(got))
	}
}

// startPacer runs a Pacer until the test ends.
func startPacer(t *testing.T) *multicast.Pacer {
	t.Helper()
	p := multicast.NewPacer(nil)
	runtest.Start(t, "pacer", p.Run)
	return p
}
