package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// source_port defaults to the output's port (the group's port, as phones
// send); 0 keeps a random port. frame defaults to 20ms; 30ms is accepted.
func TestPolycomSourcePortAndFrame(t *testing.T) {
	c, _, err := Parse("p.yaml", []byte(`
zones:
  a:
    outputs:
      - { type: polycom }
      - { type: polycom, port: 5003, frame: 30ms }
      - { type: polycom, source_port: 0 }
      - { type: polycom, source_port: 6000 }
      - { type: rtp, group: 239.1.1.1, port: 5000 }
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Zones["a"].Outputs
	for i, want := range []struct {
		src   int
		frame time.Duration
	}{{5001, 20 * time.Millisecond}, {5003, 30 * time.Millisecond}, {0, 20 * time.Millisecond}, {6000, 20 * time.Millisecond}} {
		if o[i].SourcePort == nil || *o[i].SourcePort != want.src || o[i].Frame.D() != want.frame {
			t.Errorf("output %d: source_port %v frame %v, want %d %v", i, o[i].SourcePort, o[i].Frame, want.src, want.frame)
		}
	}
	if o[4].SourcePort != nil || o[4].Frame != 0 {
		t.Errorf("rtp output got polycom defaults: source_port %v frame %v", o[4].SourcePort, o[4].Frame)
	}
}

func TestPolycomSourcePortAndFrameInvalid(t *testing.T) {
	_, _, err := Parse("p.yaml", []byte(`
zones:
  a:
    outputs:
      - { type: polycom, frame: 25ms, source_port: 70000 }
`))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, p := range ce.Problems {
		got = append(got, p.String())
	}
	want := []string{
		`p.yaml:5:33: zones.a.outputs[0].frame: 25ms: Polycom frames are 20ms or 30ms`,
		`p.yaml:5:52: zones.a.outputs[0].source_port: 70000 is not a UDP port (0: a random port)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
