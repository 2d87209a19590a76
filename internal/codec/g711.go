package codec

import "fmt"

// G.711 companding as specified by ITU-T G.711 and implemented in its
// reference software (ITU-T G.191 STL, g711.c): µ-law works on 14-bit
// magnitudes with a bias of 33, A-law on 13-bit magnitudes; negative inputs
// use the one's complement (~x) so that decision levels are symmetric, and
// both laws invert bits on the wire (all but the sign for µ-law, even bits
// for A-law) so that idle channels carry many ones.
//
// Note: ffmpeg's pcm_mulaw/pcm_alaw encoders pick the nearest
// reconstruction level instead of G.711's decision levels, so they differ
// from G.711 by one code at ~1.5% of inputs near segment edges; decoding is
// identical.

// LinearToULaw encodes one 16-bit linear sample as a G.711 µ-law code word
// (G.191 ulaw_compress). The two lowest bits are below µ-law's resolution.
func LinearToULaw(sample int16) byte {
	x := int(sample)
	var mag int
	if x < 0 {
		mag = ^x >> 2
	} else {
		mag = x >> 2
	}
	mag += 33 // bias, so segments start at powers of two
	if mag > 0x1fff {
		mag = 0x1fff
	}
	seg := 1
	for i := mag >> 6; i != 0; i >>= 1 {
		seg++
	}
	out := (8-seg)<<4 | (0xf - (mag>>seg)&0xf)
	if x >= 0 {
		out |= 0x80
	}
	return byte(out)
}

// LinearToALaw encodes one 16-bit linear sample as a G.711 A-law code word
// (G.191 alaw_compress). The four lowest bits are below A-law's resolution.
func LinearToALaw(sample int16) byte {
	x := int(sample)
	var ix int
	if x < 0 {
		ix = ^x >> 4
	} else {
		ix = x >> 4
	}
	// ix is a 0..2047 magnitude: segment 0 is linear, each further segment
	// halves the resolution.
	if ix > 15 {
		exp := 1
		for ix > 16+15 {
			ix >>= 1
			exp++
		}
		ix += exp<<4 - 16
	}
	if x >= 0 {
		ix |= 0x80
	}
	return byte(ix ^ 0x55)
}

func uLawToLinear(u byte) int16 {
	const bias = 0x84
	u = ^u
	t := (int(u)&0x0f)<<3 + bias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(bias - t)
	}
	return int16(t - bias)
}

func aLawToLinear(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0f) << 4
	switch seg := int(a&0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// Decoding tables: 256 entries each, built once.
var ulawTable, alawTable = func() (u, a [256]int16) {
	for i := range 256 {
		u[i] = uLawToLinear(byte(i))
		a[i] = aLawToLinear(byte(i))
	}
	return u, a
}()

// ULawToLinear decodes a G.711 µ-law code word to a 16-bit linear sample.
func ULawToLinear(u byte) int16 { return ulawTable[u] }

// ALawToLinear decodes a G.711 A-law code word to a 16-bit linear sample.
func ALawToLinear(a byte) int16 { return alawTable[a] }

// g711Encoder halves the rate of 16 kHz frames and companding-encodes them.
type g711Encoder struct {
	encode func(int16) byte
	down   Downsampler
	tmp    []int16
}

func (e *g711Encoder) Encode(dst []byte, pcm []int16) ([]byte, error) {
	if len(pcm)%2 != 0 {
		return dst, fmt.Errorf("g711 encode: odd frame of %d samples", len(pcm))
	}
	e.tmp = e.down.Process(e.tmp[:0], pcm)
	for _, s := range e.tmp {
		dst = append(dst, e.encode(s))
	}
	return dst, nil
}

// g711Decoder expands code words to 8 kHz and doubles the rate to 16 kHz.
type g711Decoder struct {
	table *[256]int16
	up    Upsampler
	tmp   []int16
}

func (d *g711Decoder) Decode(dst []int16, payload []byte) ([]int16, error) {
	d.tmp = d.tmp[:0]
	for _, b := range payload {
		d.tmp = append(d.tmp, d.table[b])
	}
	return d.up.Process(dst, d.tmp), nil
}
