package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/multicast"
)

func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// unwrap returns the output BuildZones wrapped.
func unwrap(o Output) Output {
	if d, ok := o.(*described); ok {
		return d.Output
	}
	return o
}

func TestBuilderPolycomChannels(t *testing.T) {
	cfg := parseConfig(t, `
zones:
  a:
    outputs:
      - { type: polycom, group: 239.255.42.9, port: 5001, interface: lo, codec: pcmu, channel: 27, priority_channel: 48, emergency_channel: 50 }
      - { type: polycom, group: 239.255.42.9, port: 5001, interface: lo }
`)
	b := &Builder{Pacer: multicast.NewPacer(nil)}
	zones, err := BuildZones(cfg, b.Output)
	if err != nil {
		t.Fatal(err)
	}
	defer closeZones(zones)
	for i, want := range [][4]int{{27, 27, 48, 50}, {26, 26, 49, 50}} { // test, park, live, emergency
		o := unwrap(zones["a"].Outputs[i]).(*polycomOutput)
		var got [4]int
		for p := PriorityTest; p <= PriorityEmergency; p++ {
			got[p] = o.Channel(p)
		}
		if got != want {
			t.Errorf("output %d channels by priority %v, want %v", i, got, want)
		}
	}
	o := unwrap(zones["a"].Outputs[1]).(*polycomOutput)
	if o.codec != "g722" || o.opts.CallerID != "Park" || o.opts.HostSerial == 0 {
		t.Errorf("defaults: codec %s caller %q serial %#x", o.codec, o.opts.CallerID, o.opts.HostSerial)
	}
	info := describe(zones["a"].Outputs[0])
	if want := (OutputInfo{Name: "a/outputs[0]", Type: "polycom", Address: "239.255.42.9:5001", Codec: "pcmu", Channel: 27}); info != want {
		t.Errorf("info %+v, want %+v", info, want)
	}
}

// Outputs on the same interface, TTL, loopback and source port share one
// socket, so the Pacer batches their packets; a different TTL gets its own.
// (A Polycom output sends from its group's port unless source_port: 0.)
func TestBuilderSharesSockets(t *testing.T) {
	cfg := parseConfig(t, `
zones:
  a:
    outputs:
      - { type: polycom, group: 239.255.42.9, port: 5001, interface: lo, source_port: 0 }
      - { type: rtp, group: 239.255.42.10, port: 10008, interface: lo }
  b:
    outputs:
      - { type: rtp, group: 239.255.42.11, port: 10008, interface: lo, ttl: 2 }
`)
	b := &Builder{Pacer: multicast.NewPacer(nil)}
	zones, err := BuildZones(cfg, b.Output)
	if err != nil {
		t.Fatal(err)
	}
	pc0, _ := unwrap(zones["a"].Outputs[0]).(*polycomOutput).sender.Conn()
	pc1, dst1 := unwrap(zones["a"].Outputs[1]).(*rtpOutput).sender.Conn()
	pc2, _ := unwrap(zones["b"].Outputs[0]).(*rtpOutput).sender.Conn()
	if pc0 != pc1 || pc0 == pc2 {
		t.Errorf("sockets: a0 %p a1 %p b0 %p; want a0 == a1 != b0", pc0, pc1, pc2)
	}
	if dst1.String() != "239.255.42.10:10008" {
		t.Errorf("a1 sends to %s", dst1)
	}
	// After every user closed the shared socket, a rebuild opens a new one.
	if err := closeZones(zones); err != nil {
		t.Fatal(err)
	}
	zones, err = BuildZones(cfg, b.Output)
	if err != nil {
		t.Fatalf("rebuild after close: %v", err)
	}
	closeZones(zones)
}

func TestBuilderHooksAndErrors(t *testing.T) {
	type call struct {
		zone string
		i    int
		uri  string
	}
	var calls []call
	hook := func(zone string, i int, o *config.Output) (Output, error) {
		calls = append(calls, call{zone, i, o.URI + o.Device})
		return &fakeOutput{name: OutputName(zone, i), close: func() error { return nil }}, nil
	}
	sipAndLine := `
zones:
  amp:
    outputs:
      - { type: sip, uri: "sip:page@amp.test", preset: bogen, zone_code: "#1" }
      - { type: lineout, device: "hw:1,0" }
`
	b := &Builder{SIP: hook, LineOut: hook}
	zones, err := BuildZones(parseConfig(t, sipAndLine), b.Output)
	if err != nil {
		t.Fatal(err)
	}
	if want := []call{{"amp", 0, "sip:page@amp.test"}, {"amp", 1, "hw:1,0"}}; !slices.Equal(calls, want) {
		t.Errorf("hook calls %v, want %v", calls, want)
	}
	if info := describe(zones["amp"].Outputs[0]); info.Type != "sip" || info.Address != "sip:page@amp.test" {
		t.Errorf("sip info %+v", info)
	}

	for _, tc := range []struct {
		name, yaml, want string
		b                *Builder
	}{
		{"no sip hook", sipAndLine, "sip outputs are not available", &Builder{}},
		{"no lineout hook", sipAndLine, "lineout outputs are not available", &Builder{SIP: hook}},
		{"no pacer", `
zones:
  a: { outputs: [ { type: rtp, group: 239.255.42.9, port: 5000, interface: lo } ] }
`, "no multicast pacer", &Builder{}},
		{"no such interface", `
zones:
  a: { outputs: [ { type: rtp, group: 239.255.42.9, port: 5000, interface: nosuch0 } ] }
`, "nosuch0", &Builder{Pacer: multicast.NewPacer(nil)}},
		{"hook error", sipAndLine, "boom", &Builder{SIP: func(string, int, *config.Output) (Output, error) {
			return nil, errors.New("boom")
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildZones(parseConfig(t, tc.yaml), tc.b.Output)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// A failed build closes the outputs it had already made.
func TestBuildZonesClosesOnError(t *testing.T) {
	var closed []string
	n := 0
	factory := func(zone string, i int, o *config.Output) (Output, error) {
		if n++; n == 3 {
			return nil, errors.New("third fails")
		}
		name := OutputName(zone, i)
		return &fakeOutput{name: name, close: func() error { closed = append(closed, name); return nil }}, nil
	}
	cfg := parseConfig(t, `
zones:
  a:
    outputs:
      - { type: sip, uri: "sip:1@x.test" }
      - { type: sip, uri: "sip:2@x.test" }
      - { type: sip, uri: "sip:3@x.test" }
`)
	if _, err := BuildZones(cfg, factory); err == nil || !strings.Contains(err.Error(), `zone "a" output 2 (sip): third fails`) {
		t.Fatalf("error %v", err)
	}
	slices.Sort(closed)
	if want := []string{"a/outputs[0]", "a/outputs[1]"}; !slices.Equal(closed, want) {
		t.Errorf("closed %v, want %v", closed, want)
	}
}

type testLease struct {
	id       int
	released *[]int
}

func (l *testLease) Release() { *l.released = append(*l.released, l.id) }

func TestLeaseRelays(t *testing.T) {
	var released []int
	n := 0
	r := LeaseRelays(func(ctx context.Context, zones []string) (*testLease, error) {
		if zones[0] == "bad" {
			return nil, errors.New("no pin")
		}
		n++
		return &testLease{id: n, released: &released}, nil
	})
	ctx := context.Background()
	for _, z := range []string{"a", "a", "b"} {
		if err := r.Acquire(ctx, []string{z}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Acquire(ctx, []string{"bad"}); err == nil {
		t.Error("acquire error lost")
	}
	r.Release([]string{"a"})
	r.Release([]string{"b"})
	r.Release([]string{"a"})
	r.Release([]string{"a"}) // nothing left: ignored
	if want := []int{1, 3, 2}; !slices.Equal(released, want) {
		t.Errorf("released %v, want %v", released, want)
	}
}

func TestParseDefaultRoute(t *testing.T) {
	const hdr = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, tc := range []struct {
		name, table, want string
	}{
		{"one", hdr + "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "eth0"},
		{"lowest metric", hdr + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\neth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth0"},
		{"down route skipped", hdr + "eth1\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n", ""},
		{"no default", hdr + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDefaultRoute(tc.table)
			if got != tc.want || (err == nil) != (tc.want != "") {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzParseDefaultRoute(f *testing.F) {
	f.Add("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\nlo\t00000000\t0\t1\t0\t0\t0\t00000000\n")
	f.Add("x\n\n  \t\nfoo 0 0 zz 0 0 -1 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseDefaultRoute(s)
		if (err == nil) == (got == "") {
			t.Fatalf("%q: got %q with err %v", s, got, err)
		}
		if err == nil && !strings.Contains(s, got) {
			t.Fatalf("%q: interface %q not in the input", s, got)
		}
	})
}

func TestMulticastRoute(t *testing.T) {
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"lo\t000000E0\t00000000\t0001\t0\t0\t0\t000000F0\t0\t0\t0\n"
	if got := multicastRoute(table); got != "lo" {
		t.Errorf("multicastRoute = %q, want lo", got)
	}
	if _, err := parseDefaultRoute(table); err == nil {
		t.Error("a multicast route is not a default route")
	}
	if got := multicastRoute(strings.Replace(table, "0001", "0000", 1)); got != "" {
		t.Errorf("a down route gave %q", got)
	}
}
