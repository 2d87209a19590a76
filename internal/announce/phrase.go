package announce

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultTemplate is the announcement phrase used when a zone sets none:
// "Call for Sales on seven zero four". The label stands mid-sentence,
// where a listener (and the intelligibility bench's recogniser) hears it
// far better than as the first word ("Sales call on…"; README, "How
// announcements sound").
const DefaultTemplate = "Call for {label} on {slot}"

// UnlabelledTemplate is what DefaultTemplate says for a slot with no
// label: "Call for on seven zero four" would be nonsense.
const UnlabelledTemplate = "Parked call on {slot}"

var digitWords = [10]string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}

// SpeakNumber spells out a number the way people read extensions and room
// numbers aloud: digit by digit, never as a quantity. The rule for 0: it is
// "zero" when it comes first (a lone "0", or the leading digit of "0704"),
// and "oh" anywhere after another digit ("704" → "seven oh four", "710" →
// "seven one oh", "700" → "seven oh oh"). A leading "oh" is easily missed
// over a ceiling speaker, while after a digit it is what listeners expect.
// '*' and '#' are read "star" and "pound"; other characters are kept as
// words of their own ("12B" → "one two B"). The result has single spaces
// between words.
func SpeakNumber(s string) string {
	var words []string
	afterDigit := false
	var other strings.Builder
	flush := func() {
		if other.Len() > 0 {
			words = append(words, other.String())
			other.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			flush()
			if r == '0' && afterDigit {
				words = append(words, "oh")
			} else {
				words = append(words, digitWords[r-'0'])
			}
			afterDigit = true
			continue
		case r == '*':
			flush()
			words = append(words, "star")
		case r == '#':
			flush()
			words = append(words, "pound")
		case unicode.IsSpace(r) || unicode.IsControl(r):
			flush()
		default:
			other.WriteRune(r)
		}
		afterDigit = false
	}
	flush()
	return strings.Join(words, " ")
}

// NormalizeText rewrites free text for the synthesiser: every run of ASCII
// digits is spelt out with SpeakNumber (flite would read "704" as "seven
// hundred four" and "2026" as "two thousand twenty six"), control
// characters become spaces, and runs of white space collapse to one space.
// Text without digits is otherwise unchanged, so normalising twice gives
// the same result.
func NormalizeText(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	// last is the last rune written; a space is written lazily so runs of
	// white space collapse and none is left at either end.
	var last rune = ' '
	pendingSpace := false
	write := func(r rune) {
		if pendingSpace && last != ' ' {
			b.WriteByte(' ')
		}
		pendingSpace = false
		b.WriteRune(r)
		last = r
	}
	wordy := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r >= '0' && r <= '9':
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			// Separate the spoken digits from an adjoining word
			// ("slot704now"), but not from punctuation ("(704):").
			if wordy(last) {
				pendingSpace = true
			}
			for k, w := range strings.Fields(SpeakNumber(s[i:j])) {
				if k > 0 {
					pendingSpace = true
				}
				for _, c := range w {
					write(c)
				}
			}
			if next, _ := utf8.DecodeRuneInString(s[j:]); j < len(s) && wordy(next) {
				pendingSpace = true
			}
			i = j
			continue
		case unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError:
			pendingSpace = true
		default:
			write(r)
		}
		i += size
	}
	return b.String()
}

// Fields are the values a phrase template can use. All are plain text from
// config or SIP headers; none is parsed as a template.
type Fields struct {
	Slot   string // park slot, spoken digit by digit: "704" → "seven oh four"
	Label  string // zone or park-group label, e.g. "Sales"
	Caller string // parked caller's name or number
	Parker string // who parked the call
	Zone   string // paging zone name
	Lot    string // park lot name (config park.lots[].name)
}

// field names as written in templates, in the order of Fields.
var fieldNames = []string{"slot", "label", "caller", "parker", "zone", "lot"}

func (f Fields) value(name string) string {
	switch name {
	case "slot":
		return SpeakNumber(f.Slot)
	case "label":
		return f.Label
	case "caller":
		return f.Caller
	case "parker":
		return f.Parker
	case "zone":
		return f.Zone
	case "lot":
		return f.Lot
	}
	return ""
}

// TemplateError describes what is wrong with a phrase template and where.
type TemplateError struct {
	Template string
	Offset   int // byte offset of the problem in Template
	Msg      string
}

func (e *TemplateError) Error() string {
	return fmt.Sprintf("phrase template %q: %s at byte %d", e.Template, e.Msg, e.Offset)
}

// Template is a parsed phrase template: literal text with {field}
// placeholders. Write "{{" and "}}" for literal braces.
type Template struct {
	parts []part
}

type part struct {
	lit   string
	field string // non-empty: a placeholder
}

// ParseTemplate parses a phrase template such as DefaultTemplate. It
// reports the first problem as a *TemplateError: an unknown field (the
// message lists the valid ones), an empty or unclosed placeholder, or a
// stray "}".
func ParseTemplate(tmpl string) (*Template, error) {
	t := &Template{}
	var lit strings.Builder
	fail := func(off int, format string, args ...any) (*Template, error) {
		return nil, &TemplateError{Template: tmpl, Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < len(tmpl); {
		c := tmpl[i]
		switch {
		case c == '{' && strings.HasPrefix(tmpl[i:], "{{"):
			lit.WriteByte('{')
			i += 2
		case c == '}' && strings.HasPrefix(tmpl[i:], "}}"):
			lit.WriteByte('}')
			i += 2
		case c == '}':
			return fail(i, `stray "}" (write "}}" for a literal brace)`)
		case c == '{':
			end := strings.IndexAny(tmpl[i+1:], "{}")
			if end < 0 || tmpl[i+1+end] == '{' {
				return fail(i, `unclosed "{" (write "{{" for a literal brace)`)
			}
			name := strings.TrimSpace(tmpl[i+1 : i+1+end])
			if name == "" {
				return fail(i, "empty placeholder {}")
			}
			if !known(strings.ToLower(name)) {
				return fail(i, "unknown field {%s} (valid: {%s})", name, strings.Join(fieldNames, "}, {"))
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, part{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, part{field: strings.ToLower(name)})
			i += end + 2
		default:
			lit.WriteByte(c)
			i++
		}
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, part{lit: lit.String()})
	}
	return t, nil
}

func known(name string) bool {
	for _, f := range fieldNames {
		if f == name {
			return true
		}
	}
	return false
}

// Render fills in the fields and returns text ready for the synthesiser
// (see NormalizeText). An empty field simply disappears: "{label} call on
// {slot}" with no label gives "call on seven oh four" (Phrase gives the
// default template's own wording for that case, UnlabelledTemplate).
func (t *Template) Render(f Fields) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.field {
		case "":
			b.WriteString(p.lit)
		case "slot":
			// Spoken digits are words of their own: never fuse them with
			// literal text ("Slot{slot}").
			b.WriteString(" " + f.value(p.field) + " ")
		default:
			b.WriteString(f.value(p.field))
		}
	}
	return NormalizeText(b.String())
}

// Phrase parses tmpl ("" means DefaultTemplate) and renders it with f;
// DefaultTemplate with no label is UnlabelledTemplate. Config validation
// calls it with zero Fields to check a template.
func Phrase(tmpl string, f Fields) (string, error) {
	if tmpl == "" {
		tmpl = DefaultTemplate
	}
	if tmpl == DefaultTemplate && strings.TrimSpace(f.Label) == "" {
		tmpl = UnlabelledTemplate
	}
	t, err := ParseTemplate(tmpl)
	if err != nil {
		return "", err
	}
	return t.Render(f), nil
}
