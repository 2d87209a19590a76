package g726

import (
	"bytes"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/parkpage/parkpage/internal/codec/g726/spandsptest"
)

// testSignal is 2 s of speech-like 8 kHz audio: a chirp with a syllable
// envelope, a loud burst, silence and noise, so the quantizer adapts up
// and down and the tone/transition detector runs.
func testSignal() []int16 {
	const n = 2 * SampleRate
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]int16, n)
	phase := 0.0
	for i := range out {
		t := float64(i) / SampleRate
		f := 200 + 3000*t/2
		phase += 2 * math.Pi * f / SampleRate
		env := 0.5 + 0.5*math.Sin(2*math.Pi*4*t)
		v := 12000 * env * math.Sin(phase)
		switch {
		case i >= 6000 && i < 7000:
			v = 30000 * math.Sin(2*math.Pi*1000*t) // near full scale
		case i >= 9000 && i < 10000:
			v = 0 // silence
		case i >= 12000 && i < 13000:
			v = 3000 * rng.NormFloat64() // noise
		}
		out[i] = int16(max(-32768, min(32767, v)))
	}
	return out
}

func spandsp(t *testing.T, pcm []int16, packing string) ([]byte, []int16) {
	return spandsptest.G726(t, pcm, packing)
}

func snr(ref, got []int16) float64 {
	var s, e float64
	for i := range ref {
		d := float64(ref[i]) - float64(got[i])
		s += float64(ref[i]) * float64(ref[i])
		e += d * d
	}
	return 10 * math.Log10(s/e)
}

// The decoder matches spandsp's G.726-24 decoder sample for sample on a
// stream spandsp encoded, in both packings and in Polycom's QI form (the
// left packing with every byte's bits reversed, as the Poly receiver
// PolyPtt and paging-formats.md describe it), fed in 20 ms frames.
func TestDecodeMatchesSpandsp(t *testing.T) {
	pcm := testSignal()
	for _, tc := range []struct {
		name    string
		spandsp string
		pack    Packing
		wire    func([]byte) []byte
	}{
		{"left", "left", PackLeft, func(b []byte) []byte { return b }},
		{"right", "right", PackRight, func(b []byte) []byte { return b }},
		{"qi", "left", PackQI, func(b []byte) []byte {
			out := make([]byte, len(b))
			for i, x := range b {
				out[i] = bits.Reverse8(x)
			}
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, want := spandsp(t, pcm, tc.spandsp)
			if len(enc) != len(pcm)*3/8 {
				t.Fatalf("spandsp wrote %d bytes for %d samples, want %d", len(enc), len(pcm), len(pcm)*3/8)
			}
			wire := tc.wire(enc)
			d := NewDecoder(tc.pack)
			var got []int16
			const frame = 20 * BytesPerMs // 60 bytes, 160 samples
			for off := 0; off < len(wire); off += frame {
				got = d.Decode(got, wire[off:min(off+frame, len(wire))])
			}
			if len(got) != len(want) {
				t.Fatalf("decoded %d samples, spandsp %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("sample %d: %d, spandsp %d (first difference)", i, got[i], want[i])
				}
			}
			if s := snr(pcm, got); s < 10 {
				t.Errorf("SNR against the input %.1f dB, want > 10 (24 kbit/s ADPCM)", s)
			}
			t.Logf("%s: %d samples bit-exact with spandsp, SNR %.1f dB", tc.name, len(got), snr(pcm, got))
		})
	}
}

// Payloads cut at any byte boundary decode the same as one payload: the
// leftover bits carry over; Reset starts afresh.
func TestDecodeSplitAndReset(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 301)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	for _, p := range []Packing{PackLeft, PackRight, PackQI} {
		whole := NewDecoder(p).Decode(nil, b)
		if len(whole) != len(b)*8/3 {
			t.Fatalf("packing %d: %d samples from %d bytes", p, len(whole), len(b))
		}
		d := NewDecoder(p)
		var parts []int16
		for off := 0; off < len(b); {
			n := 1 + rng.IntN(7)
			parts = d.Decode(parts, b[off:min(off+n, len(b))])
			off += n
		}
		if !slicesEqual(whole, parts) {
			t.Errorf("packing %d: split decoding differs", p)
		}
		d.Reset()
		if again := d.Decode(nil, b); !slicesEqual(whole, again) {
			t.Errorf("packing %d: decoding after Reset differs", p)
		}
	}
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Any bytes decode without panicking, 8 samples per 3 bytes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x00, 0xff, 0x55}, uint8(0))
	f.Add(bytes.Repeat([]byte{0x92, 0x49, 0x24}, 40), uint8(2))
	f.Add(bytes.Repeat([]byte{0xff}, 90), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, p uint8) {
		d := NewDecoder(Packing(p % 3))
		got := d.Decode(nil, b)
		got = d.Decode(got, b)
		if want := len(b) * 2 * 8 / 3; len(got) != want {
			t.Fatalf("%d samples from 2×%d bytes, want %d", len(got), len(b), want)
		}
	})
}
