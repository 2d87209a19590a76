package announce

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSpeakNumber(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"704", "seven oh four"},
		{"710", "seven one oh"},
		{"700", "seven oh oh"},
		{"7", "seven"},
		{"1234", "one two three four"},
		{"0", "zero"},
		{"00", "zero oh"},
		{"0704", "zero seven oh four"},
		{"101", "one oh one"},
		{"", ""},
		{"12B", "one two B"},
		{"*701", "star seven oh one"},
		{"70#", "seven oh pound"},
		{" 7 0 ", "seven zero"}, // a space separates: each 0 stands alone
	} {
		if got := SpeakNumber(tc.in); got != tc.want {
			t.Errorf("SpeakNumber(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Call on 704", "Call on seven oh four"},
		{"Room 12B, slot 0", "Room one two B, slot zero"},
		{"slot704now", "slot seven oh four now"},
		{"  Sales\tcall\n\x00on  seven ", "Sales call on seven"},
		{"Café 2", "Café two"},
		{"no digits here", "no digits here"},
		{"", ""},
		{"bad \xff utf8", "bad utf eight"},
		{"(704): 7,5", "(seven oh four): seven,five"},
	} {
		got := NormalizeText(tc.in)
		if got != tc.want {
			t.Errorf("NormalizeText(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again := NormalizeText(got); again != got {
			t.Errorf("NormalizeText not idempotent: %q then %q", got, again)
		}
	}
}

func TestPhrase(t *testing.T) {
	f := Fields{Slot: "704", Label: "Sales", Caller: "Jane 555 1234", Parker: "Bob", Zone: "Warehouse 2"}
	for _, tc := range []struct{ tmpl, want string }{
		{"", "Call for Sales on seven oh four"},
		{DefaultTemplate, "Call for Sales on seven oh four"},
		{"{label} call on {slot}", "Sales call on seven oh four"},
		{"{caller} parked on {slot} by {parker}", "Jane five five five one two three four parked on seven oh four by Bob"},
		{"{zone}: {slot}", "Warehouse two: seven oh four"},
		{"Slot{slot}", "Slot seven oh four"},
		{"{ Label } call", "Sales call"}, // names are trimmed and case-insensitive
		{"{{literal}} {slot}", "{literal} seven oh four"},
		{"Call 9 for {label}", "Call nine for Sales"},
	} {
		got, err := Phrase(tc.tmpl, f)
		if err != nil {
			t.Errorf("Phrase(%q): %v", tc.tmpl, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Phrase(%q) = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	// Empty fields vanish without leaving double spaces.
	if got, _ := Phrase("{label} call on {slot}", Fields{Slot: "710"}); got != "call on seven one oh" {
		t.Errorf("no label: %q", got)
	}
	// The default template has its own wording for a slot with no label
	// (blank counts as none).
	for _, tmpl := range []string{"", DefaultTemplate} {
		for _, label := range []string{"", "  "} {
			if got, _ := Phrase(tmpl, Fields{Slot: "710", Label: label}); got != "Parked call on seven one oh" {
				t.Errorf("Phrase(%q) with label %q = %q, want UnlabelledTemplate's words", tmpl, label, got)
			}
		}
	}
	// Field values are text, never templates.
	if got, _ := Phrase("{caller}", Fields{Caller: "{slot}"}); got != "{slot}" {
		t.Errorf("caller {slot} rendered as %q", got)
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, tc := range []struct {
		tmpl   string
		offset int
		msg    string
	}{
		{"{lable} call on {slot}", 0, "unknown field {lable} (valid: {slot}, {label}, {caller}, {parker}, {zone}, {lot})"},
		{"call on {slot", 8, `unclosed "{"`},
		{"call on {sl{ot}", 8, `unclosed "{"`},
		{"call on slot}", 12, `stray "}"`},
		{"call {} on", 5, "empty placeholder"},
		{"call { } on", 5, "empty placeholder"},
	} {
		_, err := Phrase(tc.tmpl, Fields{})
		var te *TemplateError
		if !errors.As(err, &te) {
			t.Errorf("Phrase(%q): %v, want a *TemplateError", tc.tmpl, err)
			continue
		}
		if te.Offset != tc.offset || !strings.Contains(te.Msg, tc.msg) {
			t.Errorf("Phrase(%q): offset %d msg %q, want offset %d containing %q", tc.tmpl, te.Offset, te.Msg, tc.offset, tc.msg)
		}
		if !strings.Contains(err.Error(), tc.tmpl) {
			t.Errorf("error %q does not quote the template", err)
		}
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{DefaultTemplate, "{caller} parked on {slot} by {parker}", "{{x}}", "{", "}", "{}", "{slot", "a{zone}b{{c}}d", "7{slot}0", "\x00{label}\xff"} {
		f.Add(s)
	}
	fields := Fields{Slot: "704", Label: "Sales 1", Caller: "{slot}", Parker: "x", Zone: "z"}
	f.Fuzz(func(t *testing.T, tmpl string) {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			var te *TemplateError
			if !errors.As(err, &te) || te.Offset < 0 || te.Offset >= len(tmpl) {
				t.Fatalf("ParseTemplate(%q): bad error %#v", tmpl, err)
			}
			return
		}
		out := tp.Render(fields)
		if strings.ContainsAny(out, "0123456789") {
			t.Fatalf("Render(%q) = %q: digits left for flite to misread", tmpl, out)
		}
		if !utf8.ValidString(out) || strings.Contains(out, "  ") || out != strings.TrimSpace(out) {
			t.Fatalf("Render(%q) = %q: not normalised", tmpl, out)
		}
		if again := tp.Render(fields); again != out {
			t.Fatalf("Render not deterministic: %q vs %q", out, again)
		}
		// A template without braces is its own text, normalised.
		if !strings.ContainsAny(tmpl, "{}") && out != NormalizeText(tmpl) {
			t.Fatalf("literal template %q rendered as %q", tmpl, out)
		}
	})
}

// FuzzNormalizeText: caller names and free text come from SIP headers and
// the API.
func FuzzNormalizeText(f *testing.F) {
	for _, s := range []string{"Call on 704", "slot704now", "(704): 7,5", "\x00\xff 0", "Café ٣ 12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := NormalizeText(s)
		if strings.ContainsAny(out, "0123456789") || !utf8.ValidString(out) ||
			strings.Contains(out, "  ") || out != strings.TrimSpace(out) {
			t.Fatalf("NormalizeText(%q) = %q", s, out)
		}
		if again := NormalizeText(out); again != out {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
	})
}
