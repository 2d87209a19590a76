package g722

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parkpage/parkpage/internal/codec/internal/testsig"
	"github.com/parkpage/parkpage/internal/testsupport/ffmpegtest"
)

const rate = 16000

// signals are the test inputs: a log tone sweep across the whole G.722 band
// and a speech-like signal, both 3 s long, and 1 s of full-scale noise that
// drives the quantisers and predictors into their limits (saturation paths).
// Tests must not modify the slices.
var signals = sync.OnceValue(func() map[string][]int16 {
	return map[string][]int16{
		"sweep":  testsig.Sweep(rate, 3*rate, 50, 7000, 12000),
		"speech": testsig.Speech(rate, 3*rate, 20000),
		"noise":  testsig.Noise(rate, 40000, 1),
	}
})

func writeRaw(t *testing.T, path string, pcm []int16) {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, pcm); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ffmpegDecode decodes a raw G.722 bitstream with ffmpeg.
func ffmpegDecode(t *testing.T, dir string, bits []byte) []int16 {
	t.Helper()
	in := filepath.Join(dir, "in.g722")
	out := filepath.Join(dir, "out.raw")
	if err := os.WriteFile(in, bits, 0o644); err != nil {
		t.Fatal(err)
	}
	ffmpegtest.Run(t, "-f", "g722", "-i", in, "-f", "s16le", "-ar", "16000", "-ac", "1", out)
	return ffmpegtest.ReadS16(t, out)
}

// ffmpegEncode encodes 16 kHz PCM to a raw G.722 bitstream with ffmpeg.
func ffmpegEncode(t *testing.T, dir string, pcm []int16) []byte {
	t.Helper()
	in := filepath.Join(dir, "in.raw")
	out := filepath.Join(dir, "out.g722")
	writeRaw(t, in, pcm)
	ffmpegtest.Run(t, "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", in, "-c:a", "g722", "-f", "g722", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snrAligned finds the codec delay and returns it with the SNR of the
// aligned output, skipping the first 20 ms of adaptation.
func snrAligned(ref, got []int16) (lag int, snr float64) {
	lag = testsig.BestLag(ref, got, 64)
	return lag, testsig.SNR(ref, got[lag:], 320)
}

// minSNR sits a few dB under the values measured with ffmpeg 5.1 (Debian 12)
// as the peer: sweep 30.5 dB, speech 38.6 dB, noise 7.0 dB in every direction
// (see the t.Logf lines in verbose output).
var minSNR = map[string]float64{"sweep": 27, "speech": 35, "noise": 5}

func encodeAll(pcm []int16) []byte {
	e := NewEncoder()
	var out []byte
	// Feed in 20 ms frames, as the RTP path does.
	for i := 0; i < len(pcm); i += 320 {
		out = e.Encode(out, pcm[i:min(i+320, len(pcm))])
	}
	return out
}

func decodeAll(bits []byte) []int16 {
	d := NewDecoder()
	var out []int16
	for i := 0; i < len(bits); i += 160 {
		out = d.Decode(out, bits[i:min(i+160, len(bits))])
	}
	return out
}

func TestSelfRoundTrip(t *testing.T) {
	for name, pcm := range signals() {
		bits := encodeAll(pcm)
		if len(bits) != len(pcm)/2 {
			t.Fatalf("%s: %d bytes for %d samples", name, len(bits), len(pcm))
		}
		got := decodeAll(bits)
		lag, snr := snrAligned(pcm, got)
		t.Logf("%s: ours->ours delay %d samples, SNR %.2f dB", name, lag, snr)
		if snr < minSNR[name] {
			t.Errorf("%s: SNR %.2f dB < %.1f", name, snr, minSNR[name])
		}
	}
}

func TestOurEncoderFFmpegDecoder(t *testing.T) {
	for name, pcm := range signals() {
		bits := encodeAll(pcm)
		got := ffmpegDecode(t, t.TempDir(), bits)
		if len(got) < len(pcm)-64 {
			t.Fatalf("%s: ffmpeg decoded %d samples, want about %d", name, len(got), len(pcm))
		}
		lag, snr := snrAligned(pcm, got)
		t.Logf("%s: ours->ffmpeg delay %d samples, SNR %.2f dB", name, lag, snr)
		if snr < minSNR[name] {
			t.Errorf("%s: SNR %.2f dB < %.1f", name, snr, minSNR[name])
		}
	}
}

func TestFFmpegEncoderOurDecoder(t *testing.T) {
	for name, pcm := range signals() {
		bits := ffmpegEncode(t, t.TempDir(), pcm)
		got := decodeAll(bits)
		lag, snr := snrAligned(pcm, got)
		t.Logf("%s: ffmpeg->ours delay %d samples, SNR %.2f dB", name, lag, snr)
		if snr < minSNR[name] {
			t.Errorf("%s: SNR %.2f dB < %.1f", name, snr, minSNR[name])
		}
	}
}

// TestBitExactWithFFmpeg checks both halves against ffmpeg's G.722 (an
// independent implementation of the same fixed-point recommendation): our
// encoder must produce ffmpeg's bitstream byte for byte, and our decoder
// ffmpeg's samples exactly, on bitstreams from either encoder.
func TestBitExactWithFFmpeg(t *testing.T) {
	for name, pcm := range signals() {
		dir := t.TempDir()
		ours := encodeAll(pcm)
		theirs := ffmpegEncode(t, dir, pcm)
		if i, n := firstDiff(ours, theirs); i >= 0 {
			t.Errorf("%s: encoder: %d of %d bytes differ from ffmpeg, first at %d (ours %d, ffmpeg %d bytes)",
				name, n, min(len(ours), len(theirs)), i, len(ours), len(theirs))
		}
		for src, bits := range map[string][]byte{"ours": ours, "ffmpeg": theirs} {
			want := ffmpegDecode(t, dir, bits)
			got := decodeAll(bits)
			if i, n := firstDiff(got, want); i >= 0 {
				t.Errorf("%s/%s bitstream: decoder: %d of %d samples differ from ffmpeg, first at %d (ours %d, ffmpeg %d samples)",
					name, src, n, min(len(got), len(want)), i, len(got), len(want))
			}
		}
	}
}

// firstDiff returns the first index where a and b differ (or where the
// shorter one ends) and how many positions differ; -1 if they are equal.
func firstDiff[T comparable](a, b []T) (first, count int) {
	first = -1
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			if first < 0 {
				first = i
			}
			count++
		}
	}
	if len(a) != len(b) && first < 0 {
		first = min(len(a), len(b))
	}
	return first, count
}

// TestChunking checks that feeding the encoder odd-sized pieces (the
// pending-sample path) gives the same bitstream as whole 20 ms frames.
func TestChunking(t *testing.T) {
	pcm := testsig.Speech(rate, rate, 20000)
	want := encodeAll(pcm)
	e := NewEncoder()
	var got []byte
	for i, step := 0, 1; i < len(pcm); i, step = i+step, step%7+1 {
		got = e.Encode(got, pcm[i:min(i+step, len(pcm))])
	}
	if !bytes.Equal(got, want) {
		i, n := firstDiff(got, want)
		t.Fatalf("chunked encode differs: %d bytes, first at %d", n, i)
	}
	e.Reset()
	if again := e.Encode(nil, pcm); !bytes.Equal(again, want) {
		t.Fatal("encode after Reset differs from a fresh encoder")
	}
}

// TestSilence: digital silence must stay (near) silent after decoding.
func TestSilence(t *testing.T) {
	got := NewDecoder().Decode(nil, NewEncoder().Encode(nil, make([]int16, 3200)))
	for i, v := range got {
		if v > 8 || v < -8 {
			t.Fatalf("sample %d = %d, want |v| <= 8", i, v)
		}
	}
}

// FuzzDecoder feeds arbitrary bytes to the decoder: it must never panic and
// must return exactly two samples per byte.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x00, 0xff, 0x80, 0x7f})
	f.Add(bytes.Repeat([]byte{0x3c, 0xfc}, 400))
	f.Add(encodeAll(testsig.Speech(rate, 1600, 30000)))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder()
		out := d.Decode(nil, data)
		if len(out) != 2*len(data) {
			t.Fatalf("%d samples for %d bytes", len(out), len(data))
		}
		// The state must stay usable: decode again through the same decoder.
		out = d.Decode(out[:0], data)
		if len(out) != 2*len(data) {
			t.Fatalf("second pass: %d samples for %d bytes", len(out), len(data))
		}
	})
}

func BenchmarkEncodeFrame(b *testing.B) {
	pcm := testsig.Speech(rate, 320, 20000)
	e := NewEncoder()
	buf := make([]byte, 0, 160)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.Encode(buf[:0], pcm)
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	bits := encodeAll(testsig.Speech(rate, 320, 20000))
	d := NewDecoder()
	buf := make([]int16, 0, 320)
	b.ReportAllocs()
	for b.Loop() {
		buf = d.Decode(buf[:0], bits)
	}
}
