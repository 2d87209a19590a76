package announce

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
)

// Paging shapes speech for a public-address system: a ceiling speaker or
// a desk phone's speaker, often at 8 kHz, in a noisy room, heard by
// someone who does not know what is coming. The zero value (and Off) is
// speech exactly as the voice says the text, with no pauses, emphasis or
// equalisation added. DefaultPaging holds the settings the intelligibility
// bench (scripts/speechbench) chose.
//
// A number in the text (a run of at least two spoken digits, as
// NormalizeText writes them: "seven oh four") is spoken digit by digit,
// each digit a word of its own, with DigitGap between them ("seven… oh…
// four"), NumberRepeat times, NumberGainDB louder than the other words.
type Paging struct {
	// Off turns paging speech off even where a renderer's Config.Paging
	// is set: a request with Off speaks its text plainly.
	Off bool
	// Rate is the TTS duration stretch: 1 is the voice's own rate, 1.15 is
	// 15% slower. 0 means the renderer's Config.Stretch.
	Rate float64
	// DigitGap is the pause between the digits of a number and around the
	// number. 0 speaks the number as one flowing phrase.
	DigitGap time.Duration
	// NumberRepeat is how many times each number is said ("call on seven
	// oh four, seven oh four"); 0 means once.
	NumberRepeat int
	// NumberGainDB raises numbers over the other words (emphasis), dB.
	NumberGainDB float64
	// HighPassHz is the corner of a gentle (12 dB/octave) high-pass that
	// keeps energy small speakers cannot reproduce out of the limiter; 0
	// is none.
	HighPassHz float64
	// PresenceDB boosts the presence band (an octave-wide bell at
	// PresenceHz), where consonants live; 0 is none.
	PresenceDB float64
	// Zero says the digit 0 of a number as "zero" rather than "oh":
	// "seven oh eight" is easily heard as "seven or eight", "one oh" as
	// "one of"; "zero" has no such twin (the bench measures it).
	Zero bool
}

// PresenceHz is the centre of the presence boost: inside the 300-3400 Hz
// band of G.711, where the consonants that tell "five" from "nine" live.
const PresenceHz = 2500

// DefaultPaging is the paging speech the appliance uses unless configured
// otherwise, chosen with the intelligibility bench (see README, "How
// announcements sound").
func DefaultPaging() Paging {
	return Paging{
		Rate:         1.1,
		DigitGap:     100 * time.Millisecond,
		NumberRepeat: 2,
		NumberGainDB: 2,
		HighPassHz:   200,
		PresenceDB:   4,
		Zero:         true,
	}
}

// active reports whether p changes anything.
func (p Paging) active() bool { return !p.Off && p != (Paging{}) }

// Validate checks the ranges of p's fields.
func (p Paging) Validate() error {
	switch {
	case p.Rate != 0 && !(p.Rate >= 0.5 && p.Rate <= 2):
		return fmt.Errorf("rate %v: want 0.5 to 2", p.Rate)
	case p.DigitGap < 0 || p.DigitGap > time.Second:
		return fmt.Errorf("digit_gap %v: want 0 to 1s", p.DigitGap)
	case p.NumberRepeat < 0 || p.NumberRepeat > 3:
		return fmt.Errorf("slot_repeat %d: want 1 to 3", p.NumberRepeat)
	case !(p.NumberGainDB >= 0 && p.NumberGainDB <= 6):
		return fmt.Errorf("slot_emphasis %v: want 0 to 6 dB", p.NumberGainDB)
	case p.HighPassHz != 0 && !(p.HighPassHz >= 50 && p.HighPassHz <= 500):
		return fmt.Errorf("high_pass %v: want 0 (off) or 50 to 500 Hz", p.HighPassHz)
	case !(p.PresenceDB >= 0 && p.PresenceDB <= 9):
		return fmt.Errorf("presence %v: want 0 to 9 dB", p.PresenceDB)
	}
	return nil
}

// segment is a stretch of the phrase: plain words, or a number's digits.
type segment struct {
	text   string
	digits []string // non-nil: a number, one word per digit
}

// isDigitWord reports whether w (lower case, punctuation stripped) is a
// spoken digit; "oh" only counts inside a number (first says no).
func isDigitWord(w string, first bool) bool {
	if w == "oh" {
		return !first
	}
	for _, d := range digitWords {
		if w == d {
			return true
		}
	}
	return false
}

// splitNumbers cuts normalised text into word and number segments. A
// number is a run of at least two spoken digits ("seven oh four"); a lone
// digit word ("one moment") stays a word.
func splitNumbers(text string) []segment {
	words := strings.Fields(text)
	var segs []segment
	var plain []string
	flush := func() {
		if len(plain) > 0 {
			segs = append(segs, segment{text: strings.Join(plain, " ")})
			plain = nil
		}
	}
	for i := 0; i < len(words); {
		j := i
		for j < len(words) && isDigitWord(bare(words[j]), j == i) {
			j++
			// Punctuation after a digit ends the number ("704, 705").
			if bare(words[j-1]) != strings.ToLower(words[j-1]) {
				break
			}
		}
		if j-i < 2 {
			plain = append(plain, words[i])
			i++
			continue
		}
		flush()
		var ds []string
		for _, w := range words[i:j] {
			ds = append(ds, bare(w))
		}
		segs = append(segs, segment{text: strings.Join(ds, " "), digits: ds})
		i = j
	}
	flush()
	return segs
}

// bare lower-cases w and strips punctuation around it.
func bare(w string) string {
	return strings.ToLower(strings.TrimFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }))
}

// fadeSamples is the raised-cosine fade at each edge of a joined piece: 5
// ms, short enough to keep consonants, long enough that no join clicks.
const fadeSamples = sampleRate * 5 / 1000

// speakPaging synthesises text with paging speech: each piece (words, or
// one digit) is synthesised alone, trimmed, faded at its edges and
// levelled to the same loudness before it is joined, so pieces from
// different sources (a recorded digit, a synthesised label) sound even;
// then the equaliser runs over the whole.
func speakPaging(ctx context.Context, sp Speaker, text string, p Paging) ([]int16, error) {
	var out []float64
	silence := func(d time.Duration) {
		out = append(out, make([]float64, int(d*sampleRate/time.Second))...)
	}
	piece := func(words string, gainDB float64) error {
		pcm, err := sp.Synthesize(ctx, words)
		if err != nil {
			return err
		}
		pcm = trimSilence(pcm)
		if len(pcm) == 0 {
			return fmt.Errorf("%q: speech is silent", words)
		}
		f := normalize(pcm, DefaultTargetDBFS+gainDB)
		fade(f)
		out = append(out, f...)
		return nil
	}
	// The pause around a number: at least a comma's worth even when the
	// digits themselves flow.
	around := max(p.DigitGap, 150*time.Millisecond)
	repeats := max(p.NumberRepeat, 1)
	segs := splitNumbers(text)
	for i, s := range segs {
		if i > 0 {
			silence(around)
		}
		if s.digits == nil {
			if err := piece(s.text, 0); err != nil {
				return nil, err
			}
			continue
		}
		if p.Zero {
			s = sayZero(s)
		}
		for r := range repeats {
			if r > 0 {
				silence(2 * around)
			}
			if p.DigitGap == 0 {
				if err := piece(s.text, p.NumberGainDB); err != nil {
					return nil, err
				}
				continue
			}
			for k, d := range s.digits {
				if k > 0 {
					silence(p.DigitGap)
				}
				if err := piece(d, p.NumberGainDB); err != nil {
					return nil, err
				}
			}
		}
	}
	if p.HighPassHz > 0 {
		highPass(p.HighPassHz).run(out)
	}
	if p.PresenceDB > 0 {
		peaking(PresenceHz, 1, p.PresenceDB).run(out)
	}
	return toInt16(out), nil
}

// sayZero gives the number segment s with every "oh" said as "zero".
func sayZero(s segment) segment {
	ds := make([]string, len(s.digits))
	for i, d := range s.digits {
		if d == "oh" {
			d = "zero"
		}
		ds[i] = d
	}
	return segment{text: strings.Join(ds, " "), digits: ds}
}

// fade applies a raised-cosine fade-in and fade-out to x's edges.
func fade(x []float64) {
	n := min(fadeSamples, len(x)/2)
	for i := range n {
		g := 0.5 - 0.5*math.Cos(math.Pi*float64(i)/float64(n))
		x[i] *= g
		x[len(x)-1-i] *= g
	}
}

// toInt16 converts float samples to int16, scaled down if needed so the
// peak fits: levels are set again by the renderer afterwards.
func toInt16(x []float64) []int16 {
	var peak float64
	for _, v := range x {
		peak = max(peak, math.Abs(v))
	}
	g := 1.0
	if peak > 32000 {
		g = 32000 / peak
	}
	out := make([]int16, len(x))
	for i, v := range x {
		out[i] = int16(math.Round(v * g))
	}
	return out
}

// biquad is a second-order IIR filter (RBJ audio EQ cookbook), direct form I.
type biquad struct {
	b0, b1, b2, a1, a2 float64
}

func highPass(fc float64) biquad {
	w := 2 * math.Pi * fc / sampleRate
	alpha := math.Sin(w) / (2 * (1 / math.Sqrt2)) // Q = 1/√2 (Butterworth)
	cw := math.Cos(w)
	a0 := 1 + alpha
	return biquad{
		b0: (1 + cw) / 2 / a0, b1: -(1 + cw) / a0, b2: (1 + cw) / 2 / a0,
		a1: -2 * cw / a0, a2: (1 - alpha) / a0,
	}
}

func peaking(fc, q, gainDB float64) biquad {
	A := math.Pow(10, gainDB/40)
	w := 2 * math.Pi * fc / sampleRate
	alpha := math.Sin(w) / (2 * q)
	cw := math.Cos(w)
	a0 := 1 + alpha/A
	return biquad{
		b0: (1 + alpha*A) / a0, b1: -2 * cw / a0, b2: (1 - alpha*A) / a0,
		a1: -2 * cw / a0, a2: (1 - alpha/A) / a0,
	}
}

// run filters x in place, from rest.
func (f biquad) run(x []float64) {
	var x1, x2, y1, y2 float64
	for i, v := range x {
		y := f.b0*v + f.b1*x1 + f.b2*x2 - f.a1*y1 - f.a2*y2
		x2, x1 = x1, v
		y2, y1 = y1, y
		x[i] = y
	}
}
