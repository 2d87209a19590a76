package codec

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/parkpage/parkpage/internal/testsupport/ffmpegtest"
)

// Reference vectors from the ITU-T G.711 tables (µ-law Table 2a, A-law
// Table 1a) scaled to 16 bits (µ-law magnitudes are 14-bit ×4, A-law 13-bit
// ×8); the codes match the ITU-T G.191 reference software. 16248/16252
// straddle µ-law's decision level 4063 between the last two segments, and
// 16383/16384 A-law's level 2048.
func TestG711EncodeVectors(t *testing.T) {
	tests := []struct {
		in         int16
		ulaw, alaw byte
	}{
		{0, 0xff, 0xd5},
		{-1, 0x7f, 0x55}, // below the first decision level: negative zero
		{8, 0xfe, 0xd5},
		{-8, 0x7e, 0x55},
		{1000, 0xce, 0xfa},
		{-1000, 0x4e, 0x7a},
		{16248, 0x90, 0xba},
		{16252, 0x8f, 0xba},
		{-16253, 0x0f, 0x3a},
		{16383, 0x8f, 0xba},
		{16384, 0x8f, 0xa5},
		{32767, 0x80, 0xaa}, // full scale clips to the top code
		{-32768, 0x00, 0x2a},
	}
	for _, tc := range tests {
		if got := LinearToULaw(tc.in); got != tc.ulaw {
			t.Errorf("LinearToULaw(%d) = %#02x, want %#02x", tc.in, got, tc.ulaw)
		}
		if got := LinearToALaw(tc.in); got != tc.alaw {
			t.Errorf("LinearToALaw(%d) = %#02x, want %#02x", tc.in, got, tc.alaw)
		}
	}
}

func TestG711DecodeVectors(t *testing.T) {
	ulaw := []struct {
		code byte
		want int16
	}{
		{0xff, 0}, {0x7f, 0}, {0xfe, 8}, {0x7e, -8},
		{0x90, 15996}, {0x8f, 16764}, // 3999 and 4191 (×4) either side of 4063
		{0x80, 32124}, {0x00, -32124}, // 8031 ×4
	}
	for _, tc := range ulaw {
		if got := ULawToLinear(tc.code); got != tc.want {
			t.Errorf("ULawToLinear(%#02x) = %d, want %d", tc.code, got, tc.want)
		}
	}
	alaw := []struct {
		code byte
		want int16
	}{
		{0xd5, 8}, {0x55, -8}, // 1 ×8: A-law has no zero level
		{0xba, 16128}, {0xa5, 16896}, // 2016 and 2112 (×8) either side of 2048
		{0xaa, 32256}, {0x2a, -32256}, // 4032 ×8
	}
	for _, tc := range alaw {
		if got := ALawToLinear(tc.code); got != tc.want {
			t.Errorf("ALawToLinear(%#02x) = %d, want %d", tc.code, got, tc.want)
		}
	}
}

// Every code word decodes to a level that encodes back to the same code
// word; the one exception is µ-law's negative zero 0x7f, whose level 0
// encodes as positive zero 0xff.
func TestG711AllCodewordsRoundTrip(t *testing.T) {
	for c := range 256 {
		code := byte(c)
		if got := LinearToALaw(ALawToLinear(code)); got != code {
			t.Errorf("A-law %#02x -> %d -> %#02x", code, ALawToLinear(code), got)
		}
		want := code
		if code == 0x7f {
			want = 0xff
		}
		if got := LinearToULaw(ULawToLinear(code)); got != want {
			t.Errorf("µ-law %#02x -> %d -> %#02x, want %#02x", code, ULawToLinear(code), got, want)
		}
	}
}

// Encoding is monotonic over the whole input range: a larger input never
// gets a smaller reconstruction.
func TestG711Monotonic(t *testing.T) {
	prevU, prevA := ULawToLinear(LinearToULaw(-32768)), ALawToLinear(LinearToALaw(-32768))
	for x := -32767; x <= 32767; x++ {
		u := ULawToLinear(LinearToULaw(int16(x)))
		a := ALawToLinear(LinearToALaw(int16(x)))
		if u < prevU || a < prevA {
			t.Fatalf("not monotonic at %d: µ %d after %d, A %d after %d", x, u, prevU, a, prevA)
		}
		prevU, prevA = u, a
	}
}

func s16le(pcm []int16) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, pcm)
	return b.Bytes()
}

func fromS16le(b []byte) []int16 {
	pcm := make([]int16, len(b)/2)
	_ = binary.Read(bytes.NewReader(b), binary.LittleEndian, pcm)
	return pcm
}

// TestG711AgainstFFmpeg uses ffmpeg's pcm_mulaw/pcm_alaw as a peer: its
// decoders must agree on all 256 code words; its encoders round to the
// nearest level, which near segment edges is one code away from G.711's
// decision levels, so encoding must agree everywhere else.
func TestG711AgainstFFmpeg(t *testing.T) {
	dir := t.TempDir()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	ramp := make([]int16, 65536)
	for i := range ramp {
		ramp[i] = int16(i - 32768)
	}
	rampFile := filepath.Join(dir, "ramp.raw")
	if err := os.WriteFile(rampFile, s16le(ramp), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, law := range []struct {
		format string
		dec    func(byte) int16
		enc    func(int16) byte
	}{{"mulaw", ULawToLinear, LinearToULaw}, {"alaw", ALawToLinear, LinearToALaw}} {
		codes := filepath.Join(dir, "codes."+law.format)
		if err := os.WriteFile(codes, all, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, law.format+".raw")
		ffmpegtest.Run(t, "-f", law.format, "-ar", "8000", "-ac", "1", "-i", codes, "-f", "s16le", out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		dec := fromS16le(b)
		if len(dec) != 256 {
			t.Fatalf("%s: ffmpeg decoded %d samples, want 256", law.format, len(dec))
		}
		for i, want := range dec {
			if got := law.dec(byte(i)); got != want {
				t.Errorf("%s decode %#02x: ours %d, ffmpeg %d", law.format, i, got, want)
			}
		}

		enc := filepath.Join(dir, "ramp."+law.format)
		ffmpegtest.Run(t, "-f", "s16le", "-ar", "8000", "-ac", "1", "-i", rampFile, "-f", law.format, enc)
		theirs, err := os.ReadFile(enc)
		if err != nil {
			t.Fatal(err)
		}
		if len(theirs) != len(ramp) {
			t.Fatalf("%s: ffmpeg encoded %d bytes, want %d", law.format, len(theirs), len(ramp))
		}
		differ := 0
		for i, x := range ramp {
			ours := law.enc(x)
			if ours == theirs[i] {
				continue
			}
			differ++
			// Both must be the two levels that bracket x.
			a, b := law.dec(ours), law.dec(theirs[i])
			lo, hi := min(a, b), max(a, b)
			if x < lo || x > hi {
				t.Fatalf("%s encode %d: ours %#02x (%d), ffmpeg %#02x (%d) do not bracket the input", law.format, x, ours, a, theirs[i], b)
			}
		}
		t.Logf("%s: encoders differ on %d of 65536 inputs (segment-edge rounding)", law.format, differ)
		if differ > 65536/50 {
			t.Errorf("%s: encoders differ on %d of 65536 inputs, want < 2%%", law.format, differ)
		}
	}
}
