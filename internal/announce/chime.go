package announce

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Built-in chime names. Any other chime value is a WAV file path.
const (
	ChimeNone      = "none"       // no chime
	ChimeSingle    = "single"     // one struck bell note, E5
	ChimeTwoTone   = "two-tone"   // ding-dong: E5 then C5, bell-like
	ChimeThreeTone = "three-tone" // rising C5, E5, G5
	ChimeFourTone  = "four-tone"  // rising G4, C5, E5, G5
	ChimeBeep      = "beep"       // one 1 kHz tone, 250 ms
	DefaultChime   = ChimeTwoTone // the chime used when config names none
)

// note is one struck bell tone of a chime.
type note struct {
	start float64 // s from the chime's start
	freq  float64 // Hz, fundamental
	decay float64 // s, amplitude time constant
}

var builtinChimes = map[string][]note{
	ChimeSingle:    {{0, 659.26, 0.5}},
	ChimeTwoTone:   {{0, 659.26, 0.35}, {0.45, 523.25, 0.5}},
	ChimeThreeTone: {{0, 523.25, 0.3}, {0.3, 659.26, 0.3}, {0.6, 783.99, 0.5}},
	ChimeFourTone:  {{0, 392.00, 0.25}, {0.25, 523.25, 0.25}, {0.5, 659.26, 0.25}, {0.75, 783.99, 0.5}},
}

// Chimes returns the built-in chime names, sorted.
func Chimes() []string {
	var names []string
	for n := range builtinPCM {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// IsChimeFile reports whether a chime value names a WAV file rather than a
// built-in chime: it ends in ".wav" or contains a path separator.
func IsChimeFile(chime string) bool {
	return strings.HasSuffix(strings.ToLower(chime), ".wav") || strings.ContainsRune(chime, filepath.Separator) || strings.ContainsRune(chime, '/')
}

// CheckChime reports whether a chime value is usable: a built-in name or a
// WAV file path (the file itself is read at render time).
func CheckChime(chime string) error {
	if IsChimeFile(chime) || builtinPCM[chime] != nil {
		return nil
	}
	return fmt.Errorf("unknown chime %q (built in: %s; or a .wav file path)", chime, strings.Join(Chimes(), ", "))
}

// builtinPCM holds each built-in chime, synthesised on first use. Callers
// must not modify the samples.
var builtinPCM = func() map[string]func() []int16 {
	m := map[string]func() []int16{
		ChimeNone: func() []int16 { return nil },
		ChimeBeep: sync.OnceValue(func() []int16 { return beep(1000, 0.25) }),
	}
	for name, notes := range builtinChimes {
		m[name] = sync.OnceValue(func() []int16 { return bells(notes) })
	}
	return m
}()

// builtinChime returns a built-in chime at 16 kHz (shared: read only).
// Levels are arbitrary: the renderer normalises the chime like speech.
func builtinChime(name string) ([]int16, error) {
	f := builtinPCM[name]
	if f == nil {
		return nil, CheckChime(name)
	}
	return f(), nil
}

// bells synthesises a sequence of bell notes.
func bells(notes []note) []int16 {
	last := notes[len(notes)-1]
	// Let the last note ring down to -30 dB, then fade out over 50 ms so
	// the cut does not click.
	dur := last.start + last.decay*math.Log(31.6)
	out := make([]float64, int(dur*sampleRate))
	for _, n := range notes {
		bell(out, n)
	}
	const fade = 0.050 * sampleRate
	for k := range int(fade) {
		out[len(out)-1-k] *= float64(k) / fade
	}
	return toPCM(out, 0.5)
}

// bell adds one struck-bell note to buf: a fundamental with two decaying
// overtones (2x and 3x, faster decay) after a 4 ms attack, so the strike is
// clear but does not click. Overtones stay below 2.4 kHz, inside G.711's
// band.
func bell(buf []float64, n note) {
	start := int(n.start * sampleRate)
	partials := [...]struct{ mult, amp, decay float64 }{
		{1, 1, 1}, {2, 0.35, 0.6}, {3, 0.12, 0.35},
	}
	const attack = 0.004 * sampleRate
	for i := start; i < len(buf); i++ {
		t := float64(i-start) / sampleRate
		env := 1.0
		if k := float64(i - start); k < attack {
			env = k / attack
		}
		var v float64
		for _, p := range partials {
			v += p.amp * math.Exp(-t/(n.decay*p.decay)) * math.Sin(2*math.Pi*n.freq*p.mult*t)
		}
		buf[i] += env * v
	}
}

// beep is a sine with 10 ms raised-cosine ramps.
func beep(freq, dur float64) []int16 {
	out := make([]float64, int(dur*sampleRate))
	const ramp = 0.010 * sampleRate
	for i := range out {
		env := 1.0
		if k := float64(min(i, len(out)-1-i)); k < ramp {
			env = 0.5 - 0.5*math.Cos(math.Pi*k/ramp)
		}
		out[i] = env * math.Sin(2*math.Pi*freq*float64(i)/sampleRate)
	}
	return toPCM(out, 0.5)
}

// toPCM scales float samples so the largest peak is peak (fraction of full
// scale) and converts them to int16.
func toPCM(x []float64, peak float64) []int16 {
	var m float64
	for _, v := range x {
		m = max(m, math.Abs(v))
	}
	out := make([]int16, len(x))
	if m == 0 {
		return out
	}
	g := peak * 32767 / m
	for i, v := range x {
		out[i] = int16(math.Round(v * g))
	}
	return out
}
