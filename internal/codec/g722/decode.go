package g722

// qm6 is the 6-bit low-band inverse quantiser used for the output
// (64 kbit/s mode, block 5L INVQBL).
var qm6 = [64]int{
	-136, -136, -136, -136,
	-24808, -21904, -19008, -16704,
	-14984, -13512, -12280, -11192,
	-10232, -9360, -8576, -7856,
	-7192, -6576, -6000, -5456,
	-4944, -4464, -4008, -3576,
	-3168, -2776, -2400, -2032,
	-1688, -1360, -1040, -728,
	24808, 21904, 19008, 16704,
	14984, 13512, 12280, 11192,
	10232, 9360, 8576, 7856,
	7192, 6576, 6000, 5456,
	4944, 4464, 4008, 3576,
	3168, 2776, 2400, 2032,
	1688, 1360, 1040, 728,
	432, 136, -432, -136,
}

// Decoder is a G.722 64 kbit/s decoder. It keeps the ADPCM and QMF state of
// one stream; it is not safe for concurrent use. Every byte value is a valid
// code word, so any input decodes without error.
type Decoder struct {
	x    [24]int // receive QMF delay line
	band [2]band
}

// NewDecoder returns a decoder in the initial state of the recommendation.
func NewDecoder() *Decoder {
	d := &Decoder{}
	d.Reset()
	return d
}

// Reset returns the decoder to its initial state, as at the start of a stream.
func (d *Decoder) Reset() {
	*d = Decoder{}
	d.band[0].reset(32)
	d.band[1].reset(8)
}

// Decode appends two 16 kHz samples per code byte in data to dst and
// returns it.
func (d *Decoder) Decode(dst []int16, data []byte) []int16 {
	for _, code := range data {
		s0, s1 := d.decodeByte(int(code))
		dst = append(dst, s0, s1)
	}
	return dst
}

func (d *Decoder) decodeByte(code int) (int16, int16) {
	ilow := code & 0x3f
	ihigh := (code >> 6) & 0x03

	lo := &d.band[0]
	// Block 5L, INVQBL and RECONS: the output uses all 6 bits.
	rlow := lo.s + (lo.det*qm6[ilow])>>15
	// Block 6L, LIMIT
	if rlow > 16383 {
		rlow = 16383
	} else if rlow < -16384 {
		rlow = -16384
	}
	// Block 2L, INVQAL: the predictor sees only the 4-bit core, exactly as
	// in the encoder, which keeps the two in step.
	ril := ilow >> 2
	dlow := (lo.det * qm4[ril]) >> 15
	lo.logScaleLow(ril)
	lo.adapt(dlow)

	hi := &d.band[1]
	// Block 2H, INVQAH and 5H RECONS
	dhigh := (hi.det * qm2[ihigh]) >> 15
	rhigh := dhigh + hi.s
	// Block 6H, LIMIT
	if rhigh > 16383 {
		rhigh = 16383
	} else if rhigh < -16384 {
		rhigh = -16384
	}
	hi.logScaleHigh(ihigh)
	hi.adapt(dhigh)

	// Receive QMF (G.722 §4.4).
	copy(d.x[:22], d.x[2:])
	d.x[22] = rlow + rhigh
	d.x[23] = rlow - rhigh
	xout1, xout2 := 0, 0
	for i := 0; i < 12; i++ {
		xout2 += d.x[2*i] * qmfCoeffs[i]
		xout1 += d.x[2*i+1] * qmfCoeffs[11-i]
	}
	return int16(saturate(xout1 >> 11)), int16(saturate(xout2 >> 11))
}
