package resample

import "math"

// Halving and doubling the rate between parkpage's 16 kHz and G.711's 8 kHz
// uses one linear-phase half-band low-pass FIR: every other tap is zero, so
// the decimator costs 16 multiplies per output sample and the interpolator
// needs no multiplies at all for half of its outputs.
//
// The filter is a Kaiser-windowed sinc (63 taps, β = 7): passband flat to
// about 3.4 kHz (the telephone band G.711 carries anyway), −6 dB at 4 kHz,
// and more than 70 dB down from about 4.6 kHz.
const (
	hbTaps   = 63
	hbCenter = hbTaps / 2 // 31: the only non-zero even-offset tap
	hbBeta   = 7.0
	// hbShift is the fixed-point scale of the taps (Q15).
	hbShift = 15
)

// hbHalf holds the non-zero off-centre taps h[0], h[2], ..., h[30] in Q15.
// The filter is symmetric (h[n] = h[62-n]) and h[31] = 0.5.
var hbHalf = designHalfband()

func designHalfband() [hbCenter/2 + 1]int32 {
	var f [hbCenter/2 + 1]float64
	sum := 0.0
	for i := range f {
		n := 2 * i
		m := float64(n - hbCenter) // odd
		sinc := math.Sin(math.Pi*m/2) / (math.Pi * m)
		f[i] = sinc * kaiser(float64(n), hbTaps, hbBeta)
		sum += 2 * f[i]
	}
	// Scale the off-centre taps to sum to exactly 0.5 so DC gain is 1 for the
	// decimator and both interpolator phases.
	var q [hbCenter/2 + 1]int32
	qsum := int32(0)
	for i := range f {
		q[i] = int32(math.Round(f[i] * 0.5 / sum * (1 << hbShift)))
		qsum += 2 * q[i]
	}
	// Put the rounding residue on the largest taps (next to the centre) so the
	// fixed-point sum is exact as well.
	q[len(q)-1] += (1<<(hbShift-1) - qsum) / 2
	return q
}

// kaiser is the Kaiser window of length n evaluated at tap i (0..n-1).
func kaiser(i float64, n int, beta float64) float64 {
	r := 2*i/float64(n-1) - 1
	if r < -1 || r > 1 {
		return 0
	}
	return bessel0(beta*math.Sqrt(1-r*r)) / bessel0(beta)
}

// bessel0 is the zeroth-order modified Bessel function of the first kind.
func bessel0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < 1e-12*sum {
			break
		}
	}
	return sum
}

func sat16(v int64) int16 {
	if v > math.MaxInt16 {
		return math.MaxInt16
	}
	if v < math.MinInt16 {
		return math.MinInt16
	}
	return int16(v)
}

// decimate computes one 8 kHz output from the 63 input samples w, oldest
// first, centred on w[31].
func decimate(w []int16) int16 {
	_ = w[hbTaps-1]
	acc := int64(w[hbCenter]) << (hbShift - 1)
	for i, c := range hbHalf {
		acc += int64(c) * (int64(w[2*i]) + int64(w[hbTaps-1-2*i]))
	}
	return sat16((acc + 1<<(hbShift-1)) >> hbShift)
}

// interpolate computes the 16 kHz sample halfway between w[15] and w[16]
// from the 32 input (8 kHz) samples w, oldest first. The interpolator's taps
// are the decimator's doubled.
func interpolate(w []int16) int16 {
	_ = w[hbCenter]
	var acc int64
	for i, c := range hbHalf {
		acc += int64(c) * (int64(w[i]) + int64(w[hbCenter-i]))
	}
	return sat16((acc + 1<<(hbShift-2)) >> (hbShift - 1))
}

// Downsample16to8 low-pass filters a whole 16 kHz buffer and keeps every
// second sample, appending (len(src)+1)/2 samples at 8 kHz to dst. Output k
// is centred on input 2k (no delay); samples beyond either end of src count
// as silence. For a stream cut into frames use a Downsampler, which carries
// the filter history across frame boundaries.
func Downsample16to8(dst, src []int16) []int16 {
	// Pad with hbCenter zeros on each side so every window is in range.
	buf := make([]int16, len(src)+2*hbCenter)
	copy(buf[hbCenter:], src)
	for k := 0; 2*k < len(src); k++ {
		dst = append(dst, decimate(buf[2*k:2*k+hbTaps]))
	}
	return dst
}

// Upsample8to16 doubles the rate of a whole 8 kHz buffer, appending
// 2*len(src) samples at 16 kHz to dst: the input samples themselves at even
// positions and band-limited interpolations between them (no delay).
// Samples beyond either end count as silence. For a stream cut into frames
// use an Upsampler.
func Upsample8to16(dst, src []int16) []int16 {
	const half = hbCenter / 2 // 15 samples of context on the left, 16 on the right
	buf := make([]int16, len(src)+hbCenter+1)
	copy(buf[half:], src)
	for k := range src {
		dst = append(dst, src[k], interpolate(buf[k:k+hbCenter+1]))
	}
	return dst
}

// DownsamplerDelay is the delay a Downsampler adds, in 16 kHz samples
// (1.94 ms): output k corresponds to input 2k − DownsamplerDelay.
const DownsamplerDelay = hbCenter

// frameSamples is a 20 ms frame at 16 kHz, the usual call's length (a
// capacity hint).
const frameSamples = 320

// Downsampler converts a 16 kHz stream to 8 kHz frame by frame. It keeps
// the last input samples between calls so the output is the same however
// the stream is cut, at the cost of DownsamplerDelay samples of delay. The
// zero value is ready to use. Not safe for concurrent use.
type Downsampler struct {
	buf []int16 // hbTaps-1 samples of history, then the current input
	odd bool    // the next input sample has an odd index in the stream
}

// Process appends the 8 kHz samples for the 16 kHz samples in src to dst
// (len(src)/2 of them, or one more or less when a call's length is odd).
func (d *Downsampler) Process(dst, src []int16) []int16 {
	const hist = hbTaps - 1
	if d.buf == nil {
		d.buf = make([]int16, hist, hist+frameSamples)
	}
	d.buf = append(d.buf[:hist], src...)
	j := 0
	if d.odd {
		j = 1
	}
	for ; j < len(src); j += 2 {
		dst = append(dst, decimate(d.buf[j:j+hbTaps]))
	}
	d.odd = d.odd != (len(src)%2 == 1)
	copy(d.buf, d.buf[len(d.buf)-hist:])
	d.buf = d.buf[:hist]
	return dst
}

// Reset clears the history, as at the start of a new stream.
func (d *Downsampler) Reset() {
	clear(d.buf)
	d.odd = false
}

// UpsamplerDelay is the delay an Upsampler adds, in 16 kHz samples
// (2 ms): output 2k is input sample k − UpsamplerDelay/2.
const UpsamplerDelay = hbCenter + 1

// Upsampler converts an 8 kHz stream to 16 kHz frame by frame, carrying
// the filter history across calls (see UpsamplerDelay). The zero value is
// ready to use. Not safe for concurrent use.
type Upsampler struct {
	buf []int16 // hbCenter samples of history, then the current input
}

// Process appends 2*len(src) samples at 16 kHz to dst.
func (u *Upsampler) Process(dst, src []int16) []int16 {
	const hist = hbCenter // interpolation windows are hbCenter+1 samples long
	if u.buf == nil {
		u.buf = make([]int16, hist, hist+frameSamples/2)
	}
	u.buf = append(u.buf[:hist], src...)
	for k := range src {
		// The window ends at the newest sample src[k]; its centre lies
		// between buf[k+15] and buf[k+16], 16 and 15 input samples back.
		dst = append(dst, u.buf[k+hbCenter/2], interpolate(u.buf[k:k+hbCenter+1]))
	}
	copy(u.buf, u.buf[len(u.buf)-hist:])
	u.buf = u.buf[:hist]
	return dst
}

// Reset clears the history, as at the start of a new stream.
func (u *Upsampler) Reset() { clear(u.buf) }
