// Package g722 is an ITU-T G.722 sub-band ADPCM coder, 64 kbit/s mode only:
// 16 kHz 16-bit PCM in, one byte per pair of samples out, and back.
//
// It is a Go port of the public-domain G.722 coder by Steve Underwood
// (spandsp g722_encode.c / g722_decode.c, as carried in sippy/libg722),
// which is in turn based on the CMU ADPCM program:
//
//	Copyright (c) CMU 1993, Computer Science, Speech Group,
//	Chengxiang Lu and Alex Hauptmann.
//	"The Carnegie Mellon ADPCM program is Copyright (c) 1993 by Carnegie
//	Mellon University. Use of this program, for any research or commercial
//	purpose, is completely unrestricted. If you make use of or redistribute
//	this material, we would appreciate acknowledgement of its origin."
//
// Steve Underwood placed his contributions in the public domain. The block
// names in comments (SUBTRA, QUANTL, INVQAL, ...) follow the G.722
// recommendation, so the code can be read against it.
package g722

// band is the ADPCM predictor and scale-factor state of one sub-band
// (G.722 blocks 3 and 4). Index 0 of the history arrays is "now".
type band struct {
	s   int // predicted signal (PREDIC)
	sp  int // pole-section prediction (FILTEP)
	sz  int // zero-section prediction (FILTEZ)
	r   [3]int
	a   [3]int // pole predictor coefficients
	ap  [3]int
	p   [3]int
	d   [7]int // quantised difference history
	b   [7]int // zero predictor coefficients
	bp  [7]int
	sg  [7]int
	nb  int // log scale factor
	det int // linear scale factor (quantiser step)
}

func (b *band) reset(det int) { *b = band{det: det} }

// QMF coefficients shared by the transmit and receive filters (G.722 §3.2, §4.4).
var qmfCoeffs = [12]int{3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11}

// Scale-factor tables (LOGSCL/SCALEL, LOGSCH/SCALEH, INVQAL, INVQAH).
var (
	wl   = [8]int{-60, -30, 58, 172, 334, 538, 1198, 3042}
	rl42 = [16]int{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	ilb  = [32]int{
		2048, 2093, 2139, 2186, 2233, 2282, 2332,
		2383, 2435, 2489, 2543, 2599, 2656, 2714,
		2774, 2834, 2896, 2960, 3025, 3091, 3158,
		3228, 3298, 3371, 3444, 3520, 3597, 3676,
		3756, 3838, 3922, 4008,
	}
	qm4 = [16]int{
		0, -20456, -12896, -8968,
		-6288, -4240, -2584, -1200,
		20456, 12896, 8968, 6288,
		4240, 2584, 1200, 0,
	}
	qm2 = [4]int{-7408, -1616, 7408, 1616}
	wh  = [3]int{0, -214, 798}
	rh2 = [4]int{2, 1, 2, 1}
)

// saturate clamps v to the int16 range, as the reference does after every
// addition that the recommendation specifies as 16-bit.
func saturate(v int) int {
	if v > 32767 {
		return 32767
	}
	if v < -32768 {
		return -32768
	}
	return v
}

// logScaleLow updates the low-band scale factor from the 4-bit quantiser
// index ril (blocks 3L LOGSCL and SCALEL).
func (b *band) logScaleLow(ril int) {
	nb := (b.nb*127)>>7 + wl[rl42[ril]]
	if nb < 0 {
		nb = 0
	} else if nb > 18432 {
		nb = 18432
	}
	b.nb = nb
	b.det = scale(nb, 8)
}

// logScaleHigh updates the high-band scale factor from the 2-bit index
// (blocks 3H LOGSCH and SCALEH).
func (b *band) logScaleHigh(ihigh int) {
	nb := (b.nb*127)>>7 + wh[rh2[ihigh]]
	if nb < 0 {
		nb = 0
	} else if nb > 22528 {
		nb = 22528
	}
	b.nb = nb
	b.det = scale(nb, 10)
}

// scale converts a log scale factor to the linear quantiser step.
func scale(nb, shift int) int {
	wd1 := (nb >> 6) & 31
	wd2 := shift - (nb >> 11)
	var wd3 int
	if wd2 < 0 {
		wd3 = ilb[wd1] << -wd2
	} else {
		wd3 = ilb[wd1] >> wd2
	}
	return wd3 << 2
}

// adapt runs block 4 (RECONS, PARREC, UPPOL1/2, UPZERO, DELAYA, FILTEP,
// FILTEZ, PREDIC) with the quantised difference d: it updates the pole and
// zero predictors and computes the next prediction b.s.
func (b *band) adapt(d int) {
	// RECONS, PARREC
	b.d[0] = d
	b.r[0] = saturate(b.s + d)
	b.p[0] = saturate(b.sz + d)

	// UPPOL2
	for i := 0; i < 3; i++ {
		b.sg[i] = b.p[i] >> 15
	}
	wd1 := saturate(b.a[1] << 2)
	wd2 := wd1
	if b.sg[0] == b.sg[1] {
		wd2 = -wd1
	}
	if wd2 > 32767 {
		wd2 = 32767
	}
	wd3 := wd2 >> 7
	if b.sg[0] == b.sg[2] {
		wd3 += 128
	} else {
		wd3 -= 128
	}
	wd3 += (b.a[2] * 32512) >> 15
	if wd3 > 12288 {
		wd3 = 12288
	} else if wd3 < -12288 {
		wd3 = -12288
	}
	b.ap[2] = wd3

	// UPPOL1
	b.sg[0] = b.p[0] >> 15
	b.sg[1] = b.p[1] >> 15
	wd1 = -192
	if b.sg[0] == b.sg[1] {
		wd1 = 192
	}
	wd2 = (b.a[1] * 32640) >> 15
	b.ap[1] = saturate(wd1 + wd2)
	wd3 = saturate(15360 - b.ap[2])
	if b.ap[1] > wd3 {
		b.ap[1] = wd3
	} else if b.ap[1] < -wd3 {
		b.ap[1] = -wd3
	}

	// UPZERO
	wd1 = 128
	if d == 0 {
		wd1 = 0
	}
	b.sg[0] = d >> 15
	for i := 1; i < 7; i++ {
		b.sg[i] = b.d[i] >> 15
		wd2 = -wd1
		if b.sg[i] == b.sg[0] {
			wd2 = wd1
		}
		wd3 = (b.b[i] * 32640) >> 15
		b.bp[i] = saturate(wd2 + wd3)
	}

	// DELAYA
	for i := 6; i > 0; i-- {
		b.d[i] = b.d[i-1]
		b.b[i] = b.bp[i]
	}
	for i := 2; i > 0; i-- {
		b.r[i] = b.r[i-1]
		b.p[i] = b.p[i-1]
		b.a[i] = b.ap[i]
	}

	// FILTEP
	wd1 = saturate(b.r[1] + b.r[1])
	wd1 = (b.a[1] * wd1) >> 15
	wd2 = saturate(b.r[2] + b.r[2])
	wd2 = (b.a[2] * wd2) >> 15
	b.sp = saturate(wd1 + wd2)

	// FILTEZ
	sz := 0
	for i := 6; i > 0; i-- {
		wd1 = saturate(b.d[i] + b.d[i])
		sz += (b.b[i] * wd1) >> 15
	}
	b.sz = saturate(sz)

	// PREDIC
	b.s = saturate(b.sp + b.sz)
}
