package resample

import (
	"fmt"
	"math"
)

// Converter parameters. The anti-alias/anti-image low-pass sits at 93.75% of
// the lower rate's Nyquist frequency (7.5 kHz for 16 kHz output), with a
// Kaiser window (β = 8, ~80 dB stopband) 24 zero crossings of the lower
// rate either side; at 48 kHz → 16 kHz that is 144 taps per output sample.
const (
	convCutoff    = 0.9375
	convZeros     = 24
	convBeta      = 8.0
	convMaxPhases = 1024
	// MinRate and MaxRate bound the rates a Converter accepts.
	MinRate = 1000
	MaxRate = 768000
)

// Converter changes the sample rate of a mono 16-bit stream by any rational
// ratio with a polyphase windowed-sinc filter. It is meant for preparing
// audio files (chimes, announcements, hold music) rather than per-packet
// work, so it favours quality over speed. Output n is aligned with input
// time n·inRate/outRate (no delay): call Flush at the end of the stream to
// get the last samples. Not safe for concurrent use.
type Converter struct {
	inRate, outRate int
	l, m            int64     // outRate/inRate in lowest terms
	phases          int64     // filter phases tabulated: l, or convMaxPhases
	taps            int       // taps per phase (even)
	coef            []float32 // phases × taps
	buf             []int16   // input samples, buf[0] has stream index base
	base            int64
	n               int64 // next output index
	in              int64 // input samples received
	done            bool
}

// NewConverter returns a Converter from inRate to outRate Hz.
func NewConverter(inRate, outRate int) (*Converter, error) {
	for _, r := range []int{inRate, outRate} {
		if r < MinRate || r > MaxRate {
			return nil, fmt.Errorf("resample %d Hz to %d Hz: rate %d Hz outside %d–%d Hz", inRate, outRate, r, MinRate, MaxRate)
		}
	}
	g := gcd(inRate, outRate)
	c := &Converter{inRate: inRate, outRate: outRate, l: int64(outRate / g), m: int64(inRate / g)}
	if c.l == c.m {
		return c, nil
	}
	c.phases = min(c.l, convMaxPhases)
	// Cutoff in cycles per input sample, and the window half-width in input
	// samples (convZeros zero crossings of the lower rate).
	low := float64(min(inRate, outRate))
	fc := convCutoff * low / 2 / float64(inRate)
	half := int(math.Ceil(convZeros * float64(inRate) / low))
	c.taps = 2 * half
	c.coef = make([]float32, int(c.phases)*c.taps)
	for ph := range int(c.phases) {
		frac := float64(ph) / float64(c.phases)
		row := c.coef[ph*c.taps : (ph+1)*c.taps]
		sum := 0.0
		vals := make([]float64, c.taps)
		for j := range vals {
			tau := frac + float64(half-1-j) // output time minus input index
			v := 2 * fc * sinc(2*fc*tau) * kaiserAt(tau/float64(half), convBeta)
			vals[j] = v
			sum += v
		}
		// Normalise every phase to unity DC gain so no phase-dependent
		// ripple (a whine at the frame rate) appears on quiet signals.
		for j, v := range vals {
			row[j] = float32(v / sum)
		}
	}
	c.Reset()
	return c, nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// kaiserAt evaluates the Kaiser window at r in [-1, 1] (0 outside).
func kaiserAt(r, beta float64) float64 {
	if r <= -1 || r >= 1 {
		return 0
	}
	return bessel0(beta*math.Sqrt(1-r*r)) / bessel0(beta)
}

// Reset starts a new stream.
func (c *Converter) Reset() {
	// taps zeros of history stand for the silence before the stream.
	c.buf = append(c.buf[:0], make([]int16, c.taps)...)
	c.base = -int64(c.taps)
	c.n, c.in, c.done = 0, 0, false
}

// Process appends the output samples that src makes available to dst.
// Calling it after Flush is an error.
func (c *Converter) Process(dst, src []int16) ([]int16, error) {
	if c.done {
		return dst, fmt.Errorf("resample: process after flush")
	}
	c.in += int64(len(src))
	if c.l == c.m {
		return append(dst, src...), nil
	}
	c.buf = append(c.buf, src...)
	return c.run(dst, math.MaxInt64), nil
}

// Flush ends the stream and appends the remaining output samples, so that
// in total ceil(inputs·outRate/inRate) samples have been produced.
func (c *Converter) Flush(dst []int16) []int16 {
	if c.done || c.l == c.m {
		c.done = true
		return dst
	}
	c.done = true
	c.buf = append(c.buf, make([]int16, c.taps)...) // silence after the end
	total := (c.in*c.l + c.m - 1) / c.m
	return c.run(dst, total)
}

// run emits outputs while their filter window lies inside buf, up to (not
// including) output index limit, then drops input no longer needed.
func (c *Converter) run(dst []int16, limit int64) []int16 {
	half := int64(c.taps / 2)
	end := c.base + int64(len(c.buf)) // one past the last input index held
	for c.n < limit {
		num := c.n * c.m
		i0 := num / c.l
		ph := num % c.l
		if c.phases != c.l {
			// Round to the nearest tabulated phase (error < 1/2048 sample).
			ph = (ph*c.phases + c.l/2) / c.l
			if ph == c.phases {
				ph = 0
				i0++
			}
		}
		if i0+half >= end {
			break
		}
		start := int(i0 - half + 1 - c.base)
		w := c.buf[start : start+c.taps]
		row := c.coef[int(ph)*c.taps : (int(ph)+1)*c.taps]
		var acc float32
		for j, v := range w {
			acc += row[j] * float32(v)
		}
		dst = append(dst, sat16(int64(math.Round(float64(acc)))))
		c.n++
	}
	// Keep the inputs the next output's window may still need.
	next := (c.n*c.m)/c.l - half
	if drop := next - c.base; drop > 0 && drop <= int64(len(c.buf)) {
		n := copy(c.buf, c.buf[drop:])
		c.buf = c.buf[:n]
		c.base = next
	}
	return dst
}

// Resample converts a whole buffer from inRate to outRate Hz.
func Resample(src []int16, inRate, outRate int) ([]int16, error) {
	c, err := NewConverter(inRate, outRate)
	if err != nil {
		return nil, err
	}
	out := make([]int16, 0, int(int64(len(src))*int64(outRate)/int64(inRate))+1)
	out, err = c.Process(out, src)
	if err != nil {
		return nil, err
	}
	return c.Flush(out), nil
}
