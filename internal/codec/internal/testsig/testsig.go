// Package testsig generates deterministic test signals and measures audio
// quality (SNR, correlation, tone level) for the codec tests. It is
// internal to the codec tree and not used at run time.
package testsig

import (
	"math"
	"math/rand/v2"
)

// Tone returns n samples of a sine of freq Hz at the given peak amplitude.
func Tone(rate, n int, freq, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = clip(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return out
}

// Sweep returns n samples of a logarithmic sine sweep from f0 to f1 Hz at
// the given peak amplitude.
func Sweep(rate, n int, f0, f1, amp float64) []int16 {
	out := make([]int16, n)
	dur := float64(n) / float64(rate)
	k := math.Log(f1 / f0)
	for i := range out {
		t := float64(i) / float64(rate)
		phase := 2 * math.Pi * f0 * dur / k * (math.Exp(t/dur*k) - 1)
		out[i] = clip(amp * math.Sin(phase))
	}
	return out
}

// Speech returns n samples of a deterministic speech-like signal: a glottal
// pulse train with a wandering pitch (90–220 Hz) through three moving formant
// resonators, plus a little aspiration noise, under a syllable-rate (≈4 Hz)
// envelope with short pauses. Peak level is about amp.
func Speech(rate, n int, amp float64) []int16 {
	rng := rand.New(rand.NewPCG(1, 2))
	sig := make([]float64, n)
	fs := float64(rate)
	// Formant tracks cycle through vowel-like targets.
	vowels := [][3]float64{{730, 1090, 2440}, {270, 2290, 3010}, {530, 1840, 2480}, {300, 870, 2240}, {660, 1720, 2410}}
	type reson struct{ y1, y2 float64 }
	var rs [3]reson
	phase := 0.0
	for i := range sig {
		t := float64(i) / fs
		f0 := 150 + 50*math.Sin(2*math.Pi*0.7*t) + 20*math.Sin(2*math.Pi*2.3*t)
		phase += f0 / fs
		src := 0.0
		if phase >= 1 {
			phase--
			src = 1
		}
		src += 0.02 * rng.NormFloat64()
		seg := t * 4 // syllables per second
		v0 := vowels[int(seg)%len(vowels)]
		v1 := vowels[(int(seg)+1)%len(vowels)]
		frac := seg - math.Floor(seg)
		x := src
		for k := range 3 {
			f := v0[k] + (v1[k]-v0[k])*frac
			bw := 60.0 + 40*float64(k)
			if f >= fs/2-bw {
				f = fs/2 - bw
			}
			r := math.Exp(-math.Pi * bw / fs)
			a1 := 2 * r * math.Cos(2*math.Pi*f/fs)
			a2 := -r * r
			y := (1-r)*x + a1*rs[k].y1 + a2*rs[k].y2
			rs[k].y2, rs[k].y1 = rs[k].y1, y
			x = y
		}
		env := math.Sin(math.Pi * frac)
		if int(seg)%5 == 4 { // a pause every fifth syllable
			env *= 0.05
		}
		sig[i] = x * env
	}
	peak := 0.0
	for _, v := range sig {
		peak = math.Max(peak, math.Abs(v))
	}
	out := make([]int16, n)
	for i, v := range sig {
		out[i] = clip(v / peak * amp)
	}
	return out
}

func clip(v float64) int16 {
	v = math.Round(v)
	if v > 32767 {
		return 32767
	}
	if v < -32768 {
		return -32768
	}
	return int16(v)
}

// BestLag returns the delay d in [0, maxLag] that maximises the normalised
// cross-correlation of ref[i] with got[i+d], i.e. how many samples later the
// codec output starts than its input.
func BestLag(ref, got []int16, maxLag int) int {
	best, bestC := 0, math.Inf(-1)
	for d := 0; d <= maxLag && d < len(got); d++ {
		c := Correlation(ref, got[d:])
		if c > bestC {
			best, bestC = d, c
		}
	}
	return best
}

// Correlation is the normalised cross-correlation (cosine similarity) of a
// and b over their common length.
func Correlation(a, b []int16) float64 {
	n := min(len(a), len(b))
	var ab, aa, bb float64
	for i := 0; i < n; i++ {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// SNR returns the signal-to-noise ratio in dB of got against ref over their
// common length, skipping skip samples at the start (codec start-up).
func SNR(ref, got []int16, skip int) float64 {
	n := min(len(ref), len(got))
	var sig, noise float64
	for i := skip; i < n; i++ {
		x := float64(ref[i])
		e := float64(got[i]) - x
		sig += x * x
		noise += e * e
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// ToneLevel returns the amplitude (peak) of the component at freq Hz in x,
// measured with a Hann-windowed single-bin DFT so leakage from other
// components stays small.
func ToneLevel(x []int16, rate int, freq float64) float64 {
	n := len(x)
	var re, im, wsum float64
	for i, v := range x {
		w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n))
		ph := 2 * math.Pi * freq * float64(i) / float64(rate)
		re += w * float64(v) * math.Cos(ph)
		im += w * float64(v) * math.Sin(ph)
		wsum += w
	}
	return 2 * math.Hypot(re, im) / wsum
}

// RMS is the root-mean-square level of x.
func RMS(x []int16) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	if len(x) == 0 {
		return 0
	}
	return math.Sqrt(s / float64(len(x)))
}

// Noise returns n samples of uniform white noise at full scale, seeded so
// every run is identical.
func Noise(rate, n int, seed uint64) []int16 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(rng.Uint32())
	}
	return out
}

// Frequency estimates the frequency of a clean tone from its interpolated
// upward zero crossings.
func Frequency(x []int16, rate int) float64 {
	first, last, count := -1.0, -1.0, 0
	for i := 1; i < len(x); i++ {
		a, b := float64(x[i-1]), float64(x[i])
		if a < 0 && b >= 0 {
			t := float64(i-1) + a/(a-b)
			if first < 0 {
				first = t
			}
			last = t
			count++
		}
	}
	if count < 2 {
		return 0
	}
	return float64(count-1) * float64(rate) / (last - first)
}
