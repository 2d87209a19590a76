// Package g726 decodes ITU-T G.726 ADPCM at 24 kbit/s (3-bit codes, 8 kHz),
// in the bit packings senders use, including Polycom's "G.726-QI": what old
// SoundPoint IP 450/550 phones send in group pages (codec byte 0xFD).
//
// The decoder is the G.726 reference algorithm in integer arithmetic (the
// same fixed-point steps as the ITU/Sun reference code, so it is bit-exact:
// the tests compare it with spandsp sample for sample). It is pure: no I/O.
package g726

import "math/bits"

// Packing is how 3-bit codes are laid out in bytes.
type Packing uint8

// Packings.
const (
	// PackLeft puts the first code in the most significant bits (ITU-T
	// I.366.2 / AAL2; spandsp G726_PACKING_LEFT).
	PackLeft Packing = iota
	// PackRight puts the first code in the least significant bits (RFC 3551
	// G726-24; spandsp G726_PACKING_RIGHT).
	PackRight
	// PackQI is Polycom's G.726-QI: PackLeft with the bits of every byte
	// reversed.
	PackQI
)

// SampleRate is the rate of the decoded audio.
const SampleRate = 8000

// BytesPerMs is the payload of 1 ms at 24 kbit/s: 8 codes of 3 bits are 3 bytes.
const BytesPerMs = 3

// Tables of G.726 at 24 kbit/s (G.726 tables 9, 10 and 11; the same in the
// Sun reference and spandsp).
var (
	dqlnTab = [8]int{-2048, 135, 273, 373, 373, 273, 135, -2048}     // log magnitude of the quantized difference
	wiTab   = [8]int{-128, 960, 4384, 18624, 18624, 4384, 960, -128} // scale factor multiplier
	fiTab   = [8]int{0, 0x200, 0x400, 0xE00, 0xE00, 0x400, 0x200, 0} // speed control input
)

// state is the adaptive predictor and quantizer state (G.726 §4).
type state struct {
	yl  int32    // locked (steady-state) step size multiplier
	yu  int16    // unlocked step size multiplier
	dms int16    // short-term energy estimate
	dml int16    // long-term energy estimate
	ap  int16    // speed control
	a   [2]int16 // pole predictor coefficients
	b   [6]int16 // zero predictor coefficients
	pk  [2]int16 // signs of the last two partial signal estimates
	dq  [6]int16 // last six quantized differences, floating point
	sr  [2]int16 // last two reconstructed samples, floating point
	td  bool     // tone detected
}

func (s *state) reset() {
	*s = state{yl: 34816, yu: 544}
	for i := range s.dq {
		s.dq[i] = 32
	}
	s.sr = [2]int16{32, 32}
}

// Decoder decodes one G.726-24 stream. The zero value is not ready: use
// NewDecoder. A Decoder keeps state from call to call (ADPCM); use one per
// stream and Reset it at a discontinuity.
type Decoder struct {
	pack  Packing
	s     state
	acc   uint32 // bits not yet decoded
	nbits uint
}

// NewDecoder returns a decoder for codes packed as p.
func NewDecoder(p Packing) *Decoder {
	d := &Decoder{pack: p}
	d.Reset()
	return d
}

// Reset returns the decoder to its initial state.
func (d *Decoder) Reset() {
	d.s.reset()
	d.acc, d.nbits = 0, 0
}

// Decode appends the 8 kHz samples of payload to dst: 8 samples per 3 bytes
// (160 per 60-byte 20 ms frame). Bits left over from a payload whose length
// is not a multiple of 3 are kept for the next call.
func (d *Decoder) Decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		switch d.pack {
		case PackQI:
			b = bits.Reverse8(b)
			fallthrough
		case PackLeft:
			d.acc = d.acc<<8 | uint32(b)
			d.nbits += 8
			for d.nbits >= 3 {
				d.nbits -= 3
				dst = append(dst, d.s.decode(int(d.acc>>d.nbits)&7))
			}
			d.acc &= 1<<d.nbits - 1
		default: // PackRight
			d.acc |= uint32(b) << d.nbits
			d.nbits += 8
			for d.nbits >= 3 {
				dst = append(dst, d.s.decode(int(d.acc&7)))
				d.acc >>= 3
				d.nbits -= 3
			}
		}
	}
	return dst
}

// topBit is the index of the highest set bit of v (v > 0), -1 for 0.
func topBit(v int) int { return bits.Len32(uint32(v)) - 1 }

// fmult multiplies a predictor coefficient an by a floating-point sample srn
// (G.726 FMULT).
func fmult(an, srn int) int {
	anmag := an
	if an <= 0 {
		anmag = -an & 0x1FFF
	}
	anexp := topBit(anmag) - 5
	anmant := 32
	if anmag != 0 {
		if anexp >= 0 {
			anmant = anmag >> anexp
		} else {
			anmant = anmag << -anexp
		}
	}
	wanexp := anexp + (srn>>6)&0xF - 13
	wanmant := (anmant*(srn&0x3F) + 0x30) >> 4
	var r int
	if wanexp >= 0 {
		r = (wanmant << wanexp) & 0x7FFF
	} else {
		r = wanmant >> -wanexp
	}
	if int16(an)^int16(srn) < 0 {
		return -r
	}
	return r
}

func (s *state) predictorZero() int {
	z := 0
	for i := range s.b {
		z += fmult(int(s.b[i])>>2, int(s.dq[i]))
	}
	return z
}

func (s *state) predictorPole() int {
	return fmult(int(s.a[1])>>2, int(s.sr[1])) + fmult(int(s.a[0])>>2, int(s.sr[0]))
}

// stepSize is the quantizer scale factor y (G.726 MIX).
func (s *state) stepSize() int {
	if s.ap >= 256 {
		return int(s.yu)
	}
	y := int(s.yl >> 6)
	dif := int(s.yu) - y
	al := int(s.ap) >> 2
	if dif > 0 {
		y += (dif * al) >> 6
	} else if dif < 0 {
		y += (dif*al + 0x3F) >> 6
	}
	return y
}

// reconstruct turns a code's log magnitude back into the quantized
// difference (sign-magnitude, sign in bit 15's place as 0x8000 offset).
func reconstruct(sign bool, dqln, y int) int {
	dql := dqln + y>>2
	if dql < 0 {
		if sign {
			return -0x8000
		}
		return 0
	}
	dex := (dql >> 7) & 15
	dqt := 128 + dql&127
	dq := (dqt << 7) >> (14 - dex)
	if sign {
		return dq - 0x8000
	}
	return dq
}

// float converts a magnitude to the 4-bit exponent, 6-bit mantissa form.
func float(mag int) int {
	e := topBit(mag) + 1
	return e<<6 + (mag<<6)>>e
}

// decode decodes one 3-bit code to a 16-bit linear sample.
func (s *state) decode(code int) int16 {
	sezi := int(int16(s.predictorZero()))
	sei := int(int16(sezi + s.predictorPole()))
	y := s.stepSize()
	dq := int(int16(reconstruct(code&4 != 0, dqlnTab[code], y)))
	se := int(int16(sei >> 1))
	var sr int
	if dq < 0 {
		sr = se - dq&0x3FFF
	} else {
		sr = se + dq
	}
	sr = int(int16(sr))
	dqsez := int(int16(sr + sezi>>1 - se))
	s.update(y, wiTab[code], fiTab[code], dq, sr, dqsez)
	return int16(sr << 2)
}

// update adapts the predictor and quantizer after a sample (G.726 §4.2).
func (s *state) update(y, wi, fi, dq, sr, dqsez int) {
	pk0 := int16(0)
	if dqsez < 0 {
		pk0 = 1
	}
	mag := dq & 0x7FFF
	// Transition detector (TRANS).
	ylint := int(s.yl >> 15)
	ylfrac := int(s.yl>>10) & 0x1F
	thr1 := (32 + ylfrac) << ylint
	thr2 := thr1
	if ylint > 9 {
		thr2 = 31 << 10
	}
	dqthr := (thr2 + thr2>>1) >> 1
	tr := s.td && mag > dqthr

	// Quantizer scale factor adaptation.
	yu := y + (wi-y)>>5
	yu = min(max(yu, 544), 5120)
	s.yu = int16(yu)
	s.yl += int32(yu) + (-s.yl)>>6

	var a2p int
	if tr {
		s.a = [2]int16{}
		s.b = [6]int16{}
	} else {
		pks1 := pk0 ^ s.pk[0]
		a2p = int(s.a[1]) - int(s.a[1])>>7
		if dqsez != 0 {
			fa1 := -int(s.a[0])
			if pks1 != 0 {
				fa1 = int(s.a[0])
			}
			switch {
			case fa1 < -8191:
				a2p -= 0x100
			case fa1 > 8191:
				a2p += 0xFF
			default:
				a2p += fa1 >> 5
			}
			if pk0^s.pk[1] != 0 {
				switch {
				case a2p <= -12160:
					a2p = -12288
				case a2p >= 12416:
					a2p = 12288
				default:
					a2p -= 0x80
				}
			} else {
				switch {
				case a2p <= -12416:
					a2p = -12288
				case a2p >= 12160:
					a2p = 12288
				default:
					a2p += 0x80
				}
			}
		}
		a2p = int(int16(a2p))
		s.a[1] = int16(a2p)

		a0 := int(s.a[0]) - int(s.a[0])>>8
		if dqsez != 0 {
			if pks1 == 0 {
				a0 += 192
			} else {
				a0 -= 192
			}
		}
		a1ul := 15360 - a2p
		a0 = min(max(a0, -a1ul), a1ul)
		s.a[0] = int16(a0)

		for i := range s.b {
			b := int(s.b[i]) - int(s.b[i])>>8
			if dq&0x7FFF != 0 {
				if int16(dq)^s.dq[i] >= 0 {
					b += 128
				} else {
					b -= 128
				}
			}
			s.b[i] = int16(b)
		}
	}

	copy(s.dq[1:], s.dq[:5])
	switch {
	case mag == 0 && int16(dq) >= 0:
		s.dq[0] = 0x20
	case mag == 0:
		s.dq[0] = -992 // 0xFC20
	case int16(dq) >= 0:
		s.dq[0] = int16(float(mag))
	default:
		s.dq[0] = int16(float(mag) - 0x400)
	}

	s.sr[1] = s.sr[0]
	switch {
	case sr == 0:
		s.sr[0] = 0x20
	case sr > 0:
		s.sr[0] = int16(float(sr))
	case sr > -32768:
		s.sr[0] = int16(float(-sr) - 0x400)
	default:
		s.sr[0] = -992
	}

	s.pk[1], s.pk[0] = s.pk[0], pk0

	// Tone detector.
	switch {
	case tr:
		s.td = false
	case a2p < -11776:
		s.td = true
	default:
		s.td = false
	}

	// Adaptation speed control.
	s.dms += int16((fi - int(s.dms)) >> 5)
	s.dml += int16(((fi << 2) - int(s.dml)) >> 7)
	switch {
	case tr:
		s.ap = 256
	case y < 1536, s.td:
		s.ap += (0x200 - s.ap) >> 4
	case abs(int(s.dms)<<2-int(s.dml)) >= int(s.dml)>>3:
		s.ap += (0x200 - s.ap) >> 4
	default:
		s.ap += (-s.ap) >> 4
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
