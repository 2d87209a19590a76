package announce

import (
	"math"
)

// Levels are in dBFS relative to a full-scale square wave: an RMS of 32768
// is 0 dBFS, so a full-scale sine is -3.01 dBFS.

const (
	levelBlock = 320 // 20 ms at 16 kHz: the loudness measurement block
	// absoluteGate drops blocks of near silence (pauses, fades) from the
	// loudness measurement.
	absoluteGate = -70.0
	// relativeGate drops blocks this far below the mean of the blocks that
	// pass the absolute gate: the quiet tails of words and breaths would
	// otherwise pull the measure down, more for slow talkers. The same
	// two-stage idea as EBU R 128 / ITU-R BS.1770 gating, tuned for short
	// blocks of unweighted speech.
	relativeGate = -20.0
	// maxGain caps the normalising gain so a near-silent recording is not
	// raised into loud hiss.
	maxGain = 40.0
)

func dbToLin(db float64) float64 { return math.Pow(10, db/20) }

func blockPower(b []int16) float64 {
	var s float64
	for _, v := range b {
		s += float64(v) * float64(v)
	}
	return s / float64(len(b)) / (32768 * 32768)
}

// Loudness measures the active level of 16 kHz PCM in dBFS: the RMS over
// the 20 ms blocks that are speech, not pause. Blocks below -70 dBFS are
// ignored, then blocks more than 20 dB below the mean of the rest. It
// returns -Inf for silence. Unlike a whole-file RMS, the result does not
// depend on how much silence surrounds or separates the words.
func Loudness(pcm []int16) float64 {
	var powers []float64
	for i := 0; i < len(pcm); i += levelBlock {
		powers = append(powers, blockPower(pcm[i:min(i+levelBlock, len(pcm))]))
	}
	gated := func(gate float64) (mean float64) {
		g := math.Pow(10, gate/10)
		n := 0
		for _, p := range powers {
			if p > g {
				mean += p
				n++
			}
		}
		if n == 0 {
			return 0
		}
		return mean / float64(n)
	}
	m := gated(absoluteGate)
	if m == 0 {
		return math.Inf(-1)
	}
	m = gated(10*math.Log10(m) + relativeGate)
	return 10 * math.Log10(m)
}

// normalize returns pcm scaled to the target loudness (gain capped at
// maxGain), as float samples in int16 units: peaks may exceed full scale
// until the limiter has run.
func normalize(pcm []int16, targetDBFS float64) []float64 {
	gain := 1.0
	if l := Loudness(pcm); !math.IsInf(l, -1) {
		gain = dbToLin(min(targetDBFS-l, maxGain))
	}
	out := make([]float64, len(pcm))
	for i, v := range pcm {
		out[i] = float64(v) * gain
	}
	return out
}

const (
	// limiterLookahead is how far ahead the limiter sees a peak coming:
	// gain reduction ramps in over this time instead of jumping, which
	// would click.
	limiterLookahead = 80 // 5 ms at 16 kHz
	// limiterRelease is the time constant of gain recovery after a peak.
	limiterRelease = 0.080 * 16000
)

// limit converts float samples to int16 with a lookahead peak limiter whose
// output never exceeds ceilingDBFS. It is gain-only (silence stays exactly
// silence) and smooth: the gain needed at each sample is
// min(1, ceiling/|x|); a sliding minimum over the next L samples, then
// exponential release, then an L-sample moving average gives the applied
// gain. Every window averaged for sample n contains n itself, so the
// average is at most the gain sample n needs: the ceiling holds by
// construction, not by clipping.
func limit(x []float64, ceilingDBFS float64) []int16 {
	ceil := math.Floor(32768 * dbToLin(ceilingDBFS))
	ceil = min(ceil, 32767)
	n := len(x)
	need := make([]float64, n)
	for i, v := range x {
		need[i] = 1
		if a := math.Abs(v); a > ceil {
			need[i] = ceil / a
		}
	}
	// Sliding minimum over [i, i+L-1], scanning backwards with a deque of
	// indices whose needs increase from front (the window's minimum) to back.
	const L = limiterLookahead
	fwdMin := make([]float64, n)
	dq := make([]int, 0, 2*L)
	for i := n - 1; i >= 0; i-- {
		for len(dq) > 0 && need[dq[len(dq)-1]] >= need[i] {
			dq = dq[:len(dq)-1]
		}
		dq = append(dq, i)
		if dq[0] > i+L-1 {
			dq = dq[1:]
		}
		fwdMin[i] = need[dq[0]]
	}
	// Release: gain rises back towards 1 exponentially, never above the
	// sliding minimum.
	rel := math.Exp(-1 / limiterRelease)
	g := 1.0
	for i := range fwdMin {
		g = min(fwdMin[i], 1-(1-g)*rel)
		fwdMin[i] = g
	}
	// Moving average over [i-L+1, i]; before the start the gain is 1.
	out := make([]int16, n)
	sum := float64(L) // L samples of gain 1 before index 0
	for i := range n {
		sum += fwdMin[i]
		if i >= L {
			sum -= fwdMin[i-L]
		} else {
			sum -= 1
		}
		v := x[i] * min(sum/L, need[i])
		// need[i] above guards against summation rounding; the clamp is
		// the same for float to int rounding. Neither is the limiter.
		out[i] = int16(math.Max(-ceil, math.Min(ceil, math.Round(v))))
	}
	return out
}
