package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const editBase = `# Site config for the front office.
state_dir: /tmp/pp # where state lives

park:
  lots:
    - extension: "700" # the park key
      slots: 701-703
      timeout: 90s
  # Per-slot labels.
  slots:
    "701": {label: Sales}

zones:
  # The front office ceiling.
  front:
    outputs:
      - {type: rtp, group: 239.1.2.3, port: 5004, interface: lo}
`

func TestApplyEditsKeepsComments(t *testing.T) {
	edits := []Edit{
		{Path: []any{"zones", "front", "outputs", 0, "port"}, Value: 6000.0},
		{Path: []any{"park", "lots", 0, "timeout"}, Value: "2m"},
		{Path: []any{"park", "slots", "702", "label"}, Value: "Service"},
		{Path: []any{"zones", "back", "outputs", 0}, Value: map[string]any{"type": "rtp", "group": "239.1.2.4", "port": 5006.0, "interface": "lo"}},
		{Path: []any{"park", "lots", 0, "announce", "zones"}, Value: []any{"front", "back"}},
		{Path: []any{"sip", "users", "j.doe", "password"}, Value: "secret-1"},
	}
	out, err := ApplyEdits([]byte(editBase), edits)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		"# Site config for the front office.",
		"# where state lives",
		"# the park key",
		"# Per-slot labels.",
		"# The front office ceiling.",
		`extension: "700"`,
		"port: 6000",
		"timeout: 2m",
		"j.doe:",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("result lacks %q:\n%s", want, s)
		}
	}
	c, _, err := Parse("edited.yaml", out)
	if err != nil {
		t.Fatalf("edited file does not parse: %v\n%s", err, s)
	}
	if c.Zones["front"].Outputs[0].Port != 6000 || c.Park.Lots[0].Timeout.D().String() != "2m0s" {
		t.Errorf("front port %d, timeout %v", c.Zones["front"].Outputs[0].Port, c.Park.Lots[0].Timeout)
	}
	if c.Park.Slots["702"].Label != "Service" || c.Park.Slots["701"].Label != "Sales" {
		t.Errorf("slots %+v %+v", c.Park.Slots["701"], c.Park.Slots["702"])
	}
	if o := c.Zones["back"].Outputs[0]; o.Group != "239.1.2.4" || o.Port != 5006 {
		t.Errorf("new zone output %+v", o)
	}
	if z := c.Park.Lots[0].Announce.Zones; len(z) != 2 || z[1] != "back" {
		t.Errorf("announce zones %v", z)
	}
	if c.SIP.Users["j.doe"].Password != "secret-1" {
		t.Errorf("user j.doe %+v", c.SIP.Users["j.doe"])
	}
}

func TestApplyEditsDelete(t *testing.T) {
	out, err := ApplyEdits([]byte(editBase), []Edit{
		{Path: []any{"park", "slots", "701"}, Delete: true},
		{Path: []any{"zones", "front", "outputs", 0, "interface"}, Value: nil},
		{Path: []any{"nothing", "here"}, Delete: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("Sales")) || bytes.Contains(out, []byte("interface")) {
		t.Errorf("deleted keys remain:\n%s", out)
	}
}

// Values typed as text stay text: a slot label "700" or "yes" must not
// turn into a number or a boolean the strict decoder refuses.
func TestApplyEditsQuotesAmbiguousStrings(t *testing.T) {
	out, err := ApplyEdits([]byte(editBase), []Edit{
		{Path: []any{"park", "slots", "701", "label"}, Value: "yes"},
		{Path: []any{"park", "slots", "702", "label"}, Value: "702"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := Parse("x.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if c.Park.Slots["701"].Label != "yes" || c.Park.Slots["702"].Label != "702" {
		t.Errorf("labels %q %q", c.Park.Slots["701"].Label, c.Park.Slots["702"].Label)
	}
}

func TestApplyEditsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Edit
		path string
	}{
		{"index past the end", Edit{Path: []any{"zones", "front", "outputs", 3, "port"}, Value: 1.0}, "zones.front.outputs[3]"},
		{"key under a scalar", Edit{Path: []any{"state_dir", "x"}, Value: "y"}, "state_dir.x"},
		{"index into a mapping", Edit{Path: []any{"zones", 0}, Value: "y"}, "zones[0]"},
		{"path starts with an index", Edit{Path: []any{0.0}, Value: "y"}, ""},
		{"fractional index", Edit{Path: []any{"zones", 1.5}, Value: "y"}, "zones"},
		{"empty path", Edit{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ApplyEdits([]byte(editBase), []Edit{tc.e})
			var ee *EditError
			if !errors.As(err, &ee) || ee.Path != tc.path {
				t.Errorf("err = %v, want an EditError at %q", err, tc.path)
			}
		})
	}
}

// The embedded default is where a first save starts: editing it keeps its
// explanatory comments.
func TestApplyEditsToDefault(t *testing.T) {
	out, err := ApplyEdits(Default, []Edit{{Path: []any{"park", "slots", "701", "label"}, Value: "Front desk"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# parkpage embedded default configuration.", "# Never trust a whole LAN range", "# Yealink multicast paging"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("lost comment %q", want)
		}
	}
	if _, _, err := Parse("x.yaml", out); err != nil {
		t.Fatal(err)
	}
}

func TestViewMasksSecrets(t *testing.T) {
	c, _, err := Parse("x.yaml", []byte(editBase+"sip:\n  users:\n    \"201\": {password: hunter22}\n"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.View()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	if bytes.Contains(b, []byte("hunter22")) || !bytes.Contains(b, []byte(SecretMask)) {
		t.Errorf("view %s", b)
	}
	if !bytes.Contains(b, []byte(`"timeout":"1m30s"`)) || !bytes.Contains(b, []byte(`"slots":"701-703"`)) {
		t.Errorf("view lacks effective values: %s", b)
	}
	kept := DropMasked([]Edit{{Path: []any{"sip", "users", "201", "password"}, Value: SecretMask}, {Path: []any{"state_dir"}, Value: "/x"}})
	if len(kept) != 1 || kept[0].Value != "/x" {
		t.Errorf("DropMasked kept %v", kept)
	}
}

// FuzzApplyEdits: any edit list decoded from JSON either applies to a
// valid file, giving YAML that the config parser reads without panicking,
// or is refused with an error.
func FuzzApplyEdits(f *testing.F) {
	f.Add(`[{"path":["zones","front","outputs",0,"port"],"value":6000}]`)
	f.Add(`[{"path":["park","slots","704"],"value":{"label":"x","timeout":"30s"}}]`)
	f.Add(`[{"path":["zones","front"],"delete":true}]`)
	f.Add(`[{"path":["a",0,1,"b"],"value":[1,"x",true,null,{"k":[]}]}]`)
	f.Fuzz(func(t *testing.T, body string) {
		var edits []Edit
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&edits) != nil {
			return
		}
		out, err := ApplyEdits([]byte(editBase), edits)
		if err != nil {
			return
		}
		Parse("fuzz.yaml", out)
	})
}
