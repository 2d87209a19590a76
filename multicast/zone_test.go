package multicast

import (
	"strings"
	"testing"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/config"
)

func parseOutputs(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// build makes every multicast output of zone with b.
func build(t *testing.T, b *Outputs, cfg *config.Config, zone string) []output.Output {
	t.Helper()
	kinds := output.Kinds{config.OutputPolycom: b.Polycom, config.OutputRTP: b.RTP}
	var outs []output.Output
	for i, oc := range cfg.Zones[zone].Outputs {
		o, err := kinds.Output(zone, i, oc)
		if err != nil {
			t.Fatalf("zone %s output %d: %v", zone, i, err)
		}
		outs = append(outs, o)
	}
	return outs
}

func closeAll(outs []output.Output) error {
	for _, o := range outs {
		if err := o.(interface{ Close() error }).Close(); err != nil {
			return err
		}
	}
	return nil
}

func TestOutputsPolycomChannels(t *testing.T) {
	cfg := parseOutputs(t, `
zones:
  a:
    outputs:
      - { type: polycom, group: 239.255.42.9, port: 5001, interface: lo, codec: pcmu, channel: 27, priority_channel: 48, emergency_channel: 50 }
      - { type: polycom, group: 239.255.42.9, port: 5001, interface: lo }
`)
	b := NewOutputs(OutputsOptions{Pacer: NewPacer(nil)})
	outs := build(t, b, cfg, "a")
	defer closeAll(outs)
	for i, want := range [][4]int{{27, 27, 48, 50}, {26, 26, 49, 50}} { // test, park, live, emergency
		o := outs[i].(*polycomZoneOutput)
		var got [4]int
		for p := output.PriorityTest; p <= output.PriorityEmergency; p++ {
			got[p] = o.Channel(p)
		}
		if got != want {
			t.Errorf("output %d channels by priority %v, want %v", i, got, want)
		}
	}
	o := outs[1].(*polycomZoneOutput)
	if o.codec != "g722" || o.opts.CallerID != "Park" || o.opts.HostSerial == 0 {
		t.Errorf("defaults: codec %s caller %q serial %#x", o.codec, o.opts.CallerID, o.opts.HostSerial)
	}
	if o.Name() != "a/outputs[1]" {
		t.Errorf("name %q", o.Name())
	}
}

// Outputs on the same interface, TTL, loopback and source port share one
// socket, so the Pacer batches their packets; a different TTL gets its own.
// (A Polycom output sends from its group's port unless source_port: 0.)
func TestOutputsShareSockets(t *testing.T) {
	cfg := parseOutputs(t, `
zones:
  a:
    outputs:
      - { type: polycom, group: 239.255.42.9, port: 5001, interface: lo, source_port: 0 }
      - { type: rtp, group: 239.255.42.10, port: 10008, interface: lo }
  b:
    outputs:
      - { type: rtp, group: 239.255.42.11, port: 10008, interface: lo, ttl: 2 }
`)
	b := NewOutputs(OutputsOptions{Pacer: NewPacer(nil)})
	a, bz := build(t, b, cfg, "a"), build(t, b, cfg, "b")
	pc0, _ := a[0].(*polycomZoneOutput).sender.Conn()
	pc1, dst1 := a[1].(*rtpZoneOutput).sender.Conn()
	pc2, _ := bz[0].(*rtpZoneOutput).sender.Conn()
	if pc0 != pc1 || pc0 == pc2 {
		t.Errorf("sockets: a0 %p a1 %p b0 %p; want a0 == a1 != b0", pc0, pc1, pc2)
	}
	if dst1.String() != "239.255.42.10:10008" {
		t.Errorf("a1 sends to %s", dst1)
	}
	// After every user closed the shared socket, a rebuild opens a new one.
	if err := closeAll(append(a, bz...)); err != nil {
		t.Fatal(err)
	}
	closeAll(build(t, b, cfg, "a"))
}

func TestOutputsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
		b                *Outputs
	}{
		{"no pacer", `
zones:
  a: { outputs: [ { type: rtp, group: 239.255.42.9, port: 5000, interface: lo } ] }
`, "no multicast pacer", NewOutputs(OutputsOptions{})},
		{"no such interface", `
zones:
  a: { outputs: [ { type: rtp, group: 239.255.42.9, port: 5000, interface: nosuch0 } ] }
`, "nosuch0", NewOutputs(OutputsOptions{Pacer: NewPacer(nil)})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseOutputs(t, tc.yaml)
			kinds := output.Kinds{config.OutputPolycom: tc.b.Polycom, config.OutputRTP: tc.b.RTP}
			_, err := kinds.Output("a", 0, cfg.Zones["a"].Outputs[0])
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Config validation refuses these too; the outputs check on their own.
	b := NewOutputs(OutputsOptions{Pacer: NewPacer(nil)})
	if _, err := b.Polycom("a", 0, &config.Output{Type: "polycom", Group: "239.255.42.9", Port: 5000, Interface: "lo", Codec: "opus"}); err == nil || !strings.Contains(err.Error(), "Polycom paging sends pcmu or g722") {
		t.Errorf("polycom opus: %v", err)
	}
	pt := 128
	if _, err := b.RTP("a", 0, &config.Output{Type: "rtp", Group: "239.255.42.9", Port: 5000, Interface: "lo", Codec: "pcmu", PayloadType: &pt}); err == nil || !strings.Contains(err.Error(), "payload_type 128") {
		t.Errorf("rtp payload type 128: %v", err)
	}
}
