package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/config"
)

func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// BuildZones makes each output with the factory of its kind and describes
// it from its config for the API.
func TestBuildZonesKinds(t *testing.T) {
	type call struct {
		zone string
		i    int
		uri  string
	}
	var calls []call
	hook := func(zone string, i int, o *config.Output) (output.Output, error) {
		calls = append(calls, call{zone, i, o.URI + o.Device + o.Group})
		return &fakeOutput{name: output.Name(zone, i), close: func() error { return nil }}, nil
	}
	sipAndLine := `
zones:
  amp:
    outputs:
      - { type: sip, uri: "sip:page@amp.test", preset: bogen, zone_code: "#1" }
      - { type: lineout, device: "hw:1,0" }
      - { type: polycom, group: 239.255.42.9, port: 5001, interface: lo, codec: pcmu, channel: 27 }
`
	kinds := output.Kinds{config.OutputSIP: hook, config.OutputLineOut: hook, config.OutputPolycom: hook}
	zones, err := BuildZones(parseConfig(t, sipAndLine).Zones, kinds.Output)
	if err != nil {
		t.Fatal(err)
	}
	if want := []call{{"amp", 0, "sip:page@amp.test"}, {"amp", 1, "hw:1,0"}, {"amp", 2, "239.255.42.9"}}; !slices.Equal(calls, want) {
		t.Errorf("hook calls %v, want %v", calls, want)
	}
	if info := describe(zones["amp"].Outputs[0]); info.Type != "sip" || info.Address != "sip:page@amp.test" {
		t.Errorf("sip info %+v", info)
	}
	info := describe(zones["amp"].Outputs[2])
	if want := (paging.OutputInfo{Name: "amp/outputs[2]", Type: "polycom", Address: "239.255.42.9:5001", Codec: "pcmu", Channel: 27}); info != want {
		t.Errorf("info %+v, want %+v", info, want)
	}

	for _, tc := range []struct {
		name, yaml, want string
		kinds            output.Kinds
	}{
		{"no sip kind", sipAndLine, `zone "amp" output 0 (sip): sip outputs are not available`, output.Kinds{}},
		{"no lineout kind", sipAndLine, "lineout outputs are not available", output.Kinds{config.OutputSIP: hook}},
		{"hook error", sipAndLine, "boom", output.Kinds{config.OutputSIP: func(string, int, *config.Output) (output.Output, error) {
			return nil, errors.New("boom")
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildZones(parseConfig(t, tc.yaml).Zones, tc.kinds.Output)
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
	factory := func(zone string, i int, o *config.Output) (output.Output, error) {
		if n++; n == 3 {
			return nil, errors.New("third fails")
		}
		name := output.Name(zone, i)
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
	if _, err := BuildZones(cfg.Zones, factory); err == nil || !strings.Contains(err.Error(), `zone "a" output 2 (sip): third fails`) {
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
