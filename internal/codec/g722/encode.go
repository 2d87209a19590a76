package g722

// Encoder tables (QUANTL and QUANTH decision levels and code words).
var (
	q6 = [32]int{
		0, 35, 72, 110, 150, 190, 233, 276,
		323, 370, 422, 473, 530, 587, 650, 714,
		786, 858, 940, 1023, 1121, 1219, 1339, 1458,
		1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
	}
	iln = [32]int{
		0, 63, 62, 31, 30, 29, 28, 27,
		26, 25, 24, 23, 22, 21, 20, 19,
		18, 17, 16, 15, 14, 13, 12, 11,
		10, 9, 8, 7, 6, 5, 4, 0,
	}
	ilp = [32]int{
		0, 61, 60, 59, 58, 57, 56, 55,
		54, 53, 52, 51, 50, 49, 48, 47,
		46, 45, 44, 43, 42, 41, 40, 39,
		38, 37, 36, 35, 34, 33, 32, 0,
	}
	ihn = [3]int{0, 1, 0}
	ihp = [3]int{0, 3, 2}
)

// Encoder is a G.722 64 kbit/s encoder. It keeps the QMF and ADPCM state of
// one stream; it is not safe for concurrent use.
type Encoder struct {
	x       [24]int // transmit QMF delay line
	band    [2]band // 0: low band, 1: high band
	pending int16   // odd sample left over from the previous Encode call
	hasPend bool
}

// NewEncoder returns an encoder in the initial state of the recommendation.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.Reset()
	return e
}

// Reset returns the encoder to its initial state, as at the start of a stream.
func (e *Encoder) Reset() {
	*e = Encoder{}
	e.band[0].reset(32)
	e.band[1].reset(8)
}

// Encode appends the G.722 code words for pcm (16 kHz samples) to dst and
// returns it: one byte per two samples, high-band bits in the top two bits
// (RFC 3551 §4.5.2 payload order). An odd trailing sample is kept and
// encoded with the first sample of the next call, so a stream may be fed in
// pieces of any length.
func (e *Encoder) Encode(dst []byte, pcm []int16) []byte {
	if e.hasPend && len(pcm) > 0 {
		dst = append(dst, e.encodePair(int(e.pending), int(pcm[0])))
		pcm = pcm[1:]
		e.hasPend = false
	}
	n := len(pcm) &^ 1
	for j := 0; j < n; j += 2 {
		dst = append(dst, e.encodePair(int(pcm[j]), int(pcm[j+1])))
	}
	if n < len(pcm) {
		e.pending = pcm[n]
		e.hasPend = true
	}
	return dst
}

// encodePair runs the transmit QMF on two input samples and codes the
// resulting low- and high-band samples into one byte.
func (e *Encoder) encodePair(s0, s1 int) byte {
	// Transmit QMF (G.722 §3.2): shift in two samples, keep every other output.
	copy(e.x[:22], e.x[2:])
	e.x[22] = s0
	e.x[23] = s1
	sumEven, sumOdd := 0, 0
	for i := 0; i < 12; i++ {
		sumOdd += e.x[2*i] * qmfCoeffs[i]
		sumEven += e.x[2*i+1] * qmfCoeffs[11-i]
	}
	xlow := (sumEven + sumOdd) >> 14
	xhigh := (sumEven - sumOdd) >> 14

	lo := &e.band[0]
	// Block 1L, SUBTRA
	el := saturate(xlow - lo.s)
	// Block 1L, QUANTL: find the 6-bit index whose decision level brackets |el|.
	wd := el
	if el < 0 {
		wd = -(el + 1)
	}
	i := 1
	for ; i < 30; i++ {
		if wd < (q6[i]*lo.det)>>12 {
			break
		}
	}
	ilow := ilp[i]
	if el < 0 {
		ilow = iln[i]
	}
	// Block 2L, INVQAL: the predictor only sees the 4-bit (core) quantiser.
	ril := ilow >> 2
	dlow := (lo.det * qm4[ril]) >> 15
	// Blocks 3L and 4L
	lo.logScaleLow(ril)
	lo.adapt(dlow)

	hi := &e.band[1]
	// Block 1H, SUBTRA
	eh := saturate(xhigh - hi.s)
	// Block 1H, QUANTH
	wd = eh
	if eh < 0 {
		wd = -(eh + 1)
	}
	mih := 1
	if wd >= (564*hi.det)>>12 {
		mih = 2
	}
	ihigh := ihp[mih]
	if eh < 0 {
		ihigh = ihn[mih]
	}
	// Block 2H, INVQAH
	dhigh := (hi.det * qm2[ihigh]) >> 15
	// Blocks 3H and 4H
	hi.logScaleHigh(ihigh)
	hi.adapt(dhigh)

	return byte(ihigh<<6 | ilow)
}
