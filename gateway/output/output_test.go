package output

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/config"
)

func TestKinds(t *testing.T) {
	played := ""
	kinds := Kinds{config.OutputSIP: func(zone string, i int, o *config.Output) (Output, error) {
		return Func(Name(zone, i), func(_ context.Context, p *Playback) error { played = p.ID; return nil }), nil
	}}
	o, err := kinds.Output("lobby", 2, &config.Output{Type: config.OutputSIP})
	if err != nil {
		t.Fatal(err)
	}
	if o.Name() != "lobby/outputs[2]" {
		t.Errorf("name %q", o.Name())
	}
	if err := o.Play(context.Background(), &Playback{ID: "p1"}); err != nil || played != "p1" {
		t.Errorf("play: %v, played %q", err, played)
	}
	for _, tc := range []struct{ typ, want string }{
		{config.OutputLineOut, "lineout outputs are not available in this build"},
		{config.OutputPolycom, "polycom outputs are not available in this build"},
		{"fax", `unknown output type "fax"`},
	} {
		if _, err := kinds.Output("lobby", 0, &config.Output{Type: tc.typ}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.typ, err, tc.want)
		}
	}
	boom := errors.New("boom")
	kinds[config.OutputRTP] = func(string, int, *config.Output) (Output, error) { return nil, boom }
	if _, err := kinds.Output("lobby", 0, &config.Output{Type: config.OutputRTP}); !errors.Is(err, boom) {
		t.Errorf("factory error lost: %v", err)
	}
}

func TestParsePriority(t *testing.T) {
	for p := PriorityTest; p <= PriorityEmergency; p++ {
		got, err := ParsePriority(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParsePriority("urgent"); err == nil {
		t.Error("urgent parsed")
	}
	if s := Priority(7).String(); s != "priority(7)" {
		t.Errorf("String of 7: %q", s)
	}
}
