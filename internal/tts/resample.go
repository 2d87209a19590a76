package tts

import "math"

// resampleHalfTaps is the one-sided length of the interpolation kernel in
// input samples (at the lower of the two rates). 16 gives >60 dB stopband
// with the Blackman window, plenty for speech.
const resampleHalfTaps = 16

// resample converts mono PCM from one rate to another with a windowed-sinc
// interpolator whose cutoff is the lower Nyquist frequency, so downsampling
// does not alias and upsampling does not image. Output sample j sits at the
// same instant as input position j*from/to: there is no added delay, and
// the output has len(in)*to/from samples.
func resample(in []int16, from, to int) []int16 {
	if len(in) == 0 || from == to {
		return append([]int16(nil), in...)
	}
	n := int(int64(len(in)) * int64(to) / int64(from))
	out := make([]int16, n)
	step := float64(from) / float64(to)
	fc := 1.0 // cutoff relative to the input Nyquist
	if to < from {
		fc = float64(to) / float64(from)
	}
	half := float64(resampleHalfTaps) / fc // kernel reach in input samples
	for j := range out {
		t := float64(j) * step
		lo := max(int(math.Ceil(t-half)), 0)
		hi := min(int(math.Floor(t+half)), len(in)-1)
		var acc, norm float64
		for k := lo; k <= hi; k++ {
			x := t - float64(k)
			w := fc * sinc(fc*x) * blackman(x/half)
			acc += w * float64(in[k])
			norm += w
		}
		// Normalising by the kernel sum keeps DC gain at exactly 1, also
		// near the edges where the kernel is cut short.
		if norm != 0 {
			acc /= norm
		}
		out[j] = int16(max(min(math.Round(acc), math.MaxInt16), math.MinInt16))
	}
	return out
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// blackman is the Blackman window on [-1, 1].
func blackman(u float64) float64 {
	if u <= -1 || u >= 1 {
		return 0
	}
	return 0.42 + 0.5*math.Cos(math.Pi*u) + 0.08*math.Cos(2*math.Pi*u)
}
