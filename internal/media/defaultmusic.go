package media

import (
	_ "embed"
	"encoding/binary"
	"math"

	"github.com/parkpage/parkpage/internal/codec"
)

// The built-in hold music is synthesised here rather than shipped as a
// recording: a slow, quiet chord loop (pad, plucked arpeggio and bass) kept
// inside the 300-3400 Hz telephone band so it survives G.711. It is
// parkpage's own work under parkpage's licence; nothing third-party is
// bundled.

// defaultMusicPCM is synthMusic's output as 16-bit little-endian PCM,
// rendered once when the music changes (TestDefaultMusicEmbedded
// -update-music) rather than at every start: synthesis took 0.3 s of CPU
// (2.5 s on a busy machine) and 8 MB of transient heap before the
// appliance could answer /healthz. Embedded, it costs no heap: the music
// plays straight from the binary's read-only data, paged in when a call is
// first parked.
//
//go:embed defaultmusic.pcm
var defaultMusicPCM string

// DefaultMusic returns the built-in hold music: about 53 s of 16 kHz mono
// PCM that loops seamlessly, as a new slice.
func DefaultMusic() []int16 {
	out := make([]int16, len(defaultMusicPCM)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16([]byte(defaultMusicPCM[2*i : 2*i+2])))
	}
	return out
}

// noteHz is the frequency of a MIDI note number.
func noteHz(n int) float64 { return 440 * math.Pow(2, float64(n-69)/12) }

func synthMusic() []int16 {
	const (
		rate    = codec.SampleRate
		bpm     = 72.0
		beat    = 60.0 / bpm
		barBeat = 4
	)
	// Two passes of a four-chord progression, two bars per chord. MIDI
	// notes; the arpeggio pattern differs on the second pass.
	type chord struct {
		bass  int
		tones []int
	}
	prog := []chord{
		{48, []int{60, 64, 67, 71}}, // Cmaj7
		{45, []int{57, 60, 64, 67}}, // Am7
		{41, []int{53, 57, 60, 64}}, // Fmaj7
		{43, []int{55, 59, 62, 65}}, // G7
	}
	patterns := [][]int{
		{0, 1, 2, 3, 2, 1, 2, 3},
		{0, 2, 1, 3, 2, 3, 1, 2},
	}
	chordBeats := 2 * barBeat
	totalBeats := 2 * len(prog) * chordBeats
	n := int(float64(totalBeats) * beat * rate)
	tail := int(math.Round(2 * beat * rate)) // notes ringing past the loop point
	buf := make([]float64, n+tail)

	add := func(start float64, dur float64, f func(t float64) float64) {
		s0 := int(start * rate)
		s1 := min(int((start+dur)*rate), n+tail)
		for i := max(s0, 0); i < s1; i++ {
			buf[i] += f(float64(i-s0) / rate)
		}
	}
	for pass := 0; pass < 2; pass++ {
		for ci, c := range prog {
			t0 := float64((pass*len(prog)+ci)*chordBeats) * beat
			dur := float64(chordBeats) * beat
			// Pad: chord tones with slow attack and release, slight detune.
			for _, tn := range c.tones {
				fq := noteHz(tn)
				add(t0, dur, func(t float64) float64 {
					env := math.Min(1, t/0.8) * math.Min(1, (dur-t)/0.8)
					v := math.Sin(2*math.Pi*fq*t) + 0.5*math.Sin(2*math.Pi*fq*1.003*t) + 0.2*math.Sin(4*math.Pi*fq*t)
					return 0.05 * env * v
				})
			}
			// Bass an octave up so narrowband phones still carry it.
			bf := noteHz(c.bass + 12)
			for b := 0; b < chordBeats; b += 2 {
				bt := t0 + float64(b)*beat
				add(bt, 2*beat, func(t float64) float64 {
					env := math.Min(1, t/0.02) * math.Exp(-t*1.2)
					return 0.12 * env * (math.Sin(2*math.Pi*bf*t) + 0.3*math.Sin(4*math.Pi*bf*t))
				})
			}
			// Plucked arpeggio in eighth notes, an octave above the pad.
			pat := patterns[pass]
			for e := 0; e < chordBeats*2; e++ {
				tn := c.tones[pat[e%len(pat)]] + 12
				fq := noteHz(tn)
				et := t0 + float64(e)*beat/2
				add(et, beat*1.5, func(t float64) float64 {
					env := math.Min(1, t/0.005) * math.Exp(-t*4)
					return 0.10 * env * (math.Sin(2*math.Pi*fq*t) + 0.25*math.Sin(4*math.Pi*fq*t) + 0.1*math.Sin(6*math.Pi*fq*t))
				})
			}
		}
	}
	// Notes still ringing at the loop point continue over its start, so
	// the loop has no seam.
	for i := 0; i < tail; i++ {
		buf[i] += buf[n+i]
	}
	buf = buf[:n]
	peak := 0.0
	for _, v := range buf {
		peak = math.Max(peak, math.Abs(v))
	}
	gain := 0.25 / peak * 32767 // peak at -12 dBFS
	out := make([]int16, n)
	for i, v := range buf {
		out[i] = int16(math.Round(v * gain))
	}
	return out
}
