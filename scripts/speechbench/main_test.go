package main

import (
	"strings"
	"testing"
	"time"
)

func TestScoreItem(t *testing.T) {
	spoken := []string{"parts", "call", "on", "seven", "oh", "four", "seven", "oh", "four"}
	cases := []struct {
		name         string
		open, gram   string
		label, slot  bool
		errors       int
		right, wrong bool
	}{
		{"all heard", "parts call on seven oh four seven oh four", "parts call on seven oh four seven oh four", true, true, 0, true, false},
		{"zero for oh is the same digit", "parts call on seven zero four seven zero four", "parts call on seven zero four seven zero four", true, true, 0, true, false},
		{"'or' is not a digit", "parts call on seven or four seven or four", "parts call on seven oh four seven oh four", true, false, 2, true, false},
		{"label misheard", "art school on seven o four seven o four", "parts call on seven oh four", false, true, 2, true, false},
		{"grammar names a wrong slot once", "", "parts call on seven oh four seven oh five", false, false, 9, false, true},
		{"grammar says no slot", "", "parts call", false, false, 9, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := ScoreItem("Parts", "704", spoken, tc.open, tc.gram)
			if s.Label != tc.label || s.Slot != tc.slot || s.Errors != tc.errors || s.GramRight != tc.right || s.GramWrong != tc.wrong {
				t.Errorf("got %+v, want label %v slot %v errors %d right %v wrong %v", s, tc.label, tc.slot, tc.errors, tc.right, tc.wrong)
			}
		})
	}
}

// The grammar's answer is read from the slots the phrase ends with, so a
// template with words before the slot ("Call for {label} on {slot}")
// scores like the default.
func TestScoreItemOtherTemplate(t *testing.T) {
	spoken := spokenWords("Call for {label} on {slot}", "Front desk", "704", 2)
	if got := strings.Join(spoken, " "); got != "call for front desk on seven oh four seven oh four" {
		t.Fatalf("spoken = %q", got)
	}
	s := ScoreItem("Front desk", "704", spoken, "call for front desk on seven zero four seven zero four", "call for front desk on seven oh four seven oh four")
	if !s.Label || !s.Slot || s.Errors != 0 || !s.GramRight || s.GramWrong {
		t.Errorf("got %+v", s)
	}
	s = ScoreItem("Front desk", "704", spoken, "call for front there's a on seven zero four", "call for front desk on seven oh five")
	if s.Label || !s.Slot || s.GramRight || !s.GramWrong {
		t.Errorf("misheard: got %+v", s)
	}
}

func TestGrammarRule(t *testing.T) {
	for tmpl, want := range map[string]string{
		"{label} call on {slot}":      "<label> call on <slot>+",
		"Call for {label} on {slot}":  "call for <label> on <slot>+",
		"{label}, call on {slot}.":    "<label> call on <slot>+",
		"Paging {Label}: call {slot}": "paging <label> call <slot>+",
	} {
		if got, err := grammarRule(tmpl); err != nil || got != want {
			t.Errorf("grammarRule(%q) = %q, %v; want %q", tmpl, got, err, want)
		}
	}
	for _, bad := range []string{"call on {slot}", "{label} call", "{label} for {caller} on {slot}"} {
		if _, err := grammarRule(bad); err == nil {
			t.Errorf("grammarRule(%q): no error", bad)
		}
	}
}

func TestParsePaging(t *testing.T) {
	p, err := ParsePaging("default,zero=0,gap=100ms,rate=1.2")
	if err != nil {
		t.Fatal(err)
	}
	if p.Zero || p.DigitGap != 100*time.Millisecond || p.Rate != 1.2 || p.NumberRepeat != 2 {
		t.Errorf("got %+v", p)
	}
	if p, _ := ParsePaging("default"); !p.Zero {
		t.Errorf("default paging says oh: %+v", p)
	}
	for _, bad := range []string{"", "loud", "default,rate=9", "default,colour=1", "default,gap=x"} {
		if _, err := ParsePaging(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseNarrowband(t *testing.T) {
	for spec, want := range map[string]string{"up": "up", "fold:6": "fold:6"} {
		nb, err := parseNarrowband(spec, t.TempDir())
		if err != nil || nb.String() != want {
			t.Errorf("%q: %v, %v", spec, nb, err)
		}
	}
	for _, bad := range []string{"", "8k", "8k:900", "8k:5000", "fold:-1", "fold:x", "down"} {
		if _, err := parseNarrowband(bad, t.TempDir()); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
