package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/parkpage/parkpage/internal/codec/internal/testsig"
	"github.com/parkpage/parkpage/internal/testsupport/ffmpegtest"
)

func TestWriteReadRoundTrip(t *testing.T) {
	for _, ch := range []int{1, 2, 6} {
		in := testsig.Noise(8000, 999*ch, uint64(ch))
		var b bytes.Buffer
		if err := Write(&b, 8000, ch, in); err != nil {
			t.Fatal(err)
		}
		if b.Len() != 44+2*len(in) {
			t.Fatalf("%d ch: file is %d bytes, want %d", ch, b.Len(), 44+2*len(in))
		}
		f, got, err := ReadAll(&b)
		if err != nil {
			t.Fatal(err)
		}
		want := Format{Encoding: PCM, Channels: ch, SampleRate: 8000, BitsPerSample: 16}
		if f != want {
			t.Errorf("format %+v, want %+v", f, want)
		}
		if !slices.Equal(got, in) {
			t.Errorf("%d ch: samples differ after round trip", ch)
		}
	}
	var b bytes.Buffer
	if err := Write(&b, 8000, 2, make([]int16, 3)); err == nil {
		t.Error("odd sample count for stereo accepted")
	}
	if err := Write(&b, 8000, 9, make([]int16, 9)); err == nil {
		t.Error("9 channels accepted")
	}
}

// TestReadFFmpegFiles reads WAV files ffmpeg writes in every supported
// encoding (plain, WAVE_FORMAT_EXTENSIBLE, with LIST and fact chunks) and
// compares the samples with ffmpeg's own 16-bit decoding of the same files.
// Two ffmpeg runs in all (one writes every file, one decodes them) keep the
// test fast.
func TestReadFFmpegFiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	in := testsig.Sweep(22050, 22050/2, 100, 10000, 30000)
	stereo := make([]int16, 0, 2*len(in))
	for i, v := range in {
		stereo = append(stereo, v, in[len(in)-1-i]/2)
	}
	var raw bytes.Buffer
	_ = binary.Write(&raw, binary.LittleEndian, stereo)
	if err := os.WriteFile(src, raw.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		codec string
		ch    int
		enc   Encoding
		bits  int
		// tolerance is the |ours - ffmpeg| allowed: we round the extra bits
		// of 24/32-bit and float samples, ffmpeg truncates.
		tolerance int
	}{
		{"pcm_u8", 1, PCM, 8, 0},
		{"pcm_s16le", 2, PCM, 16, 0},
		{"pcm_s24le", 1, PCM, 24, 1},
		{"pcm_s32le", 1, PCM, 32, 1},
		{"pcm_f32le", 2, Float, 32, 1},
		{"pcm_f64le", 1, Float, 64, 1},
		{"pcm_alaw", 1, ALaw, 8, 0},
		{"pcm_mulaw", 2, MuLaw, 8, 0},
	}
	encArgs := []string{"-f", "s16le", "-ar", "22050", "-ac", "2", "-i", src}
	var decArgs, decMaps []string
	for i, tc := range tests {
		w := filepath.Join(dir, tc.codec+".wav")
		encArgs = append(encArgs, "-ac", itoa(tc.ch), "-c:a", tc.codec, w)
		decArgs = append(decArgs, "-i", w)
		decMaps = append(decMaps, "-map", itoa(i), "-f", "s16le", "-c:a", "pcm_s16le", filepath.Join(dir, tc.codec+".raw"))
	}
	ffmpegtest.Run(t, encArgs...)
	ffmpegtest.Run(t, append(decArgs, decMaps...)...)

	for _, tc := range tests {
		want := ffmpegtest.ReadS16(t, filepath.Join(dir, tc.codec+".raw"))
		fh, err := os.Open(filepath.Join(dir, tc.codec+".wav"))
		if err != nil {
			t.Fatal(err)
		}
		f, got, err := ReadAll(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.codec, err)
		}
		wantF := Format{Encoding: tc.enc, Channels: tc.ch, SampleRate: 22050, BitsPerSample: tc.bits}
		if f != wantF {
			t.Errorf("%s: format %+v, want %+v", tc.codec, f, wantF)
		}
		if len(got) != len(want) || len(got) != len(in)*tc.ch {
			t.Fatalf("%s: %d samples, ffmpeg %d, written %d", tc.codec, len(got), len(want), len(in)*tc.ch)
		}
		worst, differ := 0, 0
		for i := range got {
			d := int(got[i]) - int(want[i])
			if d != 0 {
				differ++
			}
			worst = max(worst, d, -d)
		}
		t.Logf("%s/%dch: %d of %d samples differ from ffmpeg, max %d", tc.codec, tc.ch, differ, len(got), worst)
		if worst > tc.tolerance {
			t.Errorf("%s: samples differ from ffmpeg by up to %d, want <= %d", tc.codec, worst, tc.tolerance)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestFFmpegReadsOurFiles: what we write, ffmpeg reads back unchanged.
func TestFFmpegReadsOurFiles(t *testing.T) {
	dir := t.TempDir()
	in := testsig.Noise(16000, 3200, 7)
	path := filepath.Join(dir, "ours.wav")
	if err := WriteFile(path, 16000, 2, in); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.raw")
	ffmpegtest.Run(t, "-i", path, "-f", "s16le", "-ar", "16000", "-ac", "2", out)
	if got := ffmpegtest.ReadS16(t, out); !slices.Equal(got, in) {
		t.Fatalf("ffmpeg read %d samples that differ from the %d written", len(got), len(in))
	}
}

// TestLoad16kMono converts stereo files at the common rates to 16 kHz mono
// and checks a 1 kHz tone's level and frequency (the left channel carries
// the tone, the right its inverse at half level, so the mix is half-level
// tone minus a quarter: 0.25 of the left level).
func TestLoad16kMono(t *testing.T) {
	const amp = 20000
	for _, rate := range []int{8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000} {
		tone := testsig.Tone(rate, rate, 1000, amp) // 1 s
		st := make([]int16, 0, 2*len(tone))
		for _, v := range tone {
			st = append(st, v, -v/2)
		}
		var b bytes.Buffer
		if err := Write(&b, rate, 2, st); err != nil {
			t.Fatal(err)
		}
		pcm, err := Load16kMono(&b)
		if err != nil {
			t.Fatalf("%d Hz: %v", rate, err)
		}
		if len(pcm) != 16000 {
			t.Errorf("%d Hz: %d samples, want 16000", rate, len(pcm))
		}
		mid := pcm[800 : len(pcm)-800]
		level := testsig.ToneLevel(mid, 16000, 1000)
		f := testsig.Frequency(mid, 16000)
		db := 20 * math.Log10(level/(amp/4))
		if math.Abs(db) > 0.1 || math.Abs(f-1000) > 0.2 {
			t.Errorf("%d Hz: level %.3f dB off, frequency %.3f Hz", rate, db, f)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chime.wav")
	ffmpegtest.Run(t, "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000:duration=0.5", "-ac", "2", "-c:a", "pcm_s24le", path)
	pcm, err := LoadFile16kMono(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pcm) != 8000 {
		t.Errorf("%d samples, want 8000", len(pcm))
	}
	if f := testsig.Frequency(pcm[400:7600], 16000); math.Abs(f-880) > 0.5 {
		t.Errorf("frequency %.2f Hz, want 880", f)
	}
	if _, err := LoadFile16kMono(filepath.Join(dir, "missing.wav")); err == nil {
		t.Error("missing file loaded")
	}
}

// header builds a WAV header with the given fmt fields and data size.
func header(tag uint16, ch, rate, bits int, dataSize uint32) []byte {
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+dataSize))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), tag, uint16(ch), uint32(rate),
		uint32(rate * ch * bits / 8), uint16(ch * bits / 8), uint16(bits)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, dataSize)
	return b.Bytes()
}

func TestReadErrors(t *testing.T) {
	ok := header(1, 1, 8000, 16, 4)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotWAV},
		{"mp3", []byte("ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00"), ErrNotWAV},
		{"rf64", append([]byte("RF64\xff\xff\xff\xffWAVE"), ok[12:]...), ErrUnsupported},
		{"adpcm", header(2, 1, 8000, 4, 4), ErrUnsupported},
		{"pcm12", header(1, 1, 8000, 12, 4), ErrUnsupported},
		{"9ch", header(1, 9, 8000, 16, 4), ErrUnsupported},
		{"0ch", header(1, 0, 8000, 16, 4), ErrUnsupported},
		{"rate0", header(1, 1, 0, 16, 4), ErrMalformed},
		{"no fmt", []byte("RIFF\x0c\x00\x00\x00WAVEdata\x00\x00\x00\x00"), ErrMalformed},
		{"no data", ok[:36], ErrMalformed},
		{"short fmt", []byte("RIFF\x0c\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00"), ErrMalformed},
		{"truncated data", append(slices.Clone(ok), 1, 2), io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		_, _, err := ReadAll(bytes.NewReader(tc.data))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	// Open-ended data size (streaming writers): read to EOF, drop a
	// trailing partial frame.
	open := append(header(1, 2, 8000, 16, 0xffffffff), 1, 0, 2, 0, 3, 0, 4, 0, 5)
	f, pcm, err := ReadAll(bytes.NewReader(open))
	if err != nil || !slices.Equal(pcm, []int16{1, 2, 3, 4}) || f.Channels != 2 {
		t.Errorf("open-ended data: %v, %v, %v", f, pcm, err)
	}
	rd, err := NewReader(bytes.NewReader(open))
	if err != nil {
		t.Fatal(err)
	}
	if rd.Frames() != -1 {
		t.Errorf("open-ended Frames() = %d, want -1", rd.Frames())
	}
	if _, err := rd.Read(make([]int16, 1)); err == nil {
		t.Error("read into a buffer smaller than a stereo frame succeeded")
	}
}

// FuzzReader: arbitrary bytes never panic the parser or the sample
// decoder, and a parsed file never yields more samples than it holds.
func FuzzReader(f *testing.F) {
	var b bytes.Buffer
	_ = Write(&b, 8000, 2, testsig.Noise(8000, 64, 3))
	f.Add(b.Bytes())
	f.Add(header(1, 1, 44100, 24, 6))
	f.Add(append(header(3, 1, 48000, 32, 8), 0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f))
	f.Add(append(header(7, 1, 8000, 8, 3), 0xff, 0x00, 0x7f))
	f.Add(append(header(1, 2, 8000, 16, 0xffffffff), 1, 2, 3))
	seeds, _ := filepath.Glob("testdata/*.wav")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		fm := rd.Format()
		if fm.Channels < 1 || fm.Channels > MaxChannels || fm.SampleRate <= 0 {
			t.Fatalf("accepted format %+v", fm)
		}
		buf := make([]int16, 7*fm.Channels)
		total := 0
		for {
			n, err := rd.Read(buf)
			if n%fm.Channels != 0 {
				t.Fatalf("read %d samples, not whole %d-channel frames", n, fm.Channels)
			}
			total += n
			if err != nil {
				break
			}
			if n == 0 {
				t.Fatal("Read returned 0 samples and no error")
			}
		}
		if total*fm.BitsPerSample/8 > len(data) {
			t.Fatalf("%d samples from %d bytes", total, len(data))
		}
	})
}

// TestGoldenFiles reads small files written by ffmpeg 5.1 and sox 14.4
// (fact and LIST chunks, WAVE_FORMAT_EXTENSIBLE, odd data size with pad
// byte) and checks format, length and that the 1 kHz tone in them decodes.
func TestGoldenFiles(t *testing.T) {
	tests := []struct {
		file   string
		format Format
		frames int
	}{
		{"ffmpeg_mulaw_8k.wav", Format{MuLaw, 1, 8000, 8}, 40},
		{"ffmpeg_s24_ext_48k_stereo.wav", Format{PCM, 2, 48000, 24}, 96},
		{"ffmpeg_f32_ext_44k.wav", Format{Float, 1, 44100, 32}, 88},
		{"sox_u8_11k.wav", Format{PCM, 1, 11025, 8}, 55},
		{"sox_alaw_22k_stereo.wav", Format{ALaw, 2, 22050, 8}, 66},
	}
	for _, tc := range tests {
		fh, err := os.Open(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		f, pcm, err := ReadAll(fh)
		fh.Close()
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if f != tc.format || len(pcm) != tc.frames*f.Channels {
			t.Errorf("%s: %+v, %d frames; want %+v, %d", tc.file, f, len(pcm)/max(f.Channels, 1), tc.format, tc.frames)
			continue
		}
		left := make([]int16, 0, tc.frames)
		for i := 0; i < len(pcm); i += f.Channels {
			left = append(left, pcm[i])
		}
		// ffmpeg's sine source is at 1/8 of full scale, sox's at full scale.
		level := testsig.ToneLevel(left, f.SampleRate, 1000)
		if level < 2000 { // 2 ms files smear the single-bin estimate
			t.Errorf("%s: 1 kHz tone at level %.0f, want a clear tone", tc.file, level)
		}
	}
}

// Chunks of odd size carry a pad byte that must be skipped.
func TestOddChunkPadding(t *testing.T) {
	h := header(1, 1, 8000, 16, 4)
	var b bytes.Buffer
	b.Write(h[:36]) // RIFF header and fmt chunk
	b.WriteString("LIST\x03\x00\x00\x00abc\x00")
	b.Write(h[36:])
	b.Write([]byte{1, 0, 0xff, 0xff})
	_, pcm, err := ReadAll(&b)
	if err != nil || !slices.Equal(pcm, []int16{1, -1}) {
		t.Fatalf("got %v, %v; want [1 -1]", pcm, err)
	}
}

// Hold music and chimes are an installer's choice; a broken WAV must give
// an error, never a panic or a runaway allocation.
func FuzzLoad16kMono(f *testing.F) {
	f.Add(append(header(1, 1, 16000, 16, 640), make([]byte, 640)...))
	f.Add(append(header(1, 2, 44100, 16, 1764), make([]byte, 1764)...))
	f.Add(append(header(1, 1, 8000, 8, 160), make([]byte, 160)...))
	f.Add(header(1, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		pcm, err := Load16kMono(bytes.NewReader(data))
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			if pcm != nil {
				t.Fatalf("%d samples and error %v", len(pcm), err)
			}
			return
		}
		// 16 kHz mono from at most len(data) bytes of at least 8-bit
		// samples at a rate of at least 1 Hz.
		if len(pcm) > 16000*len(data)+16000 {
			t.Fatalf("%d samples from %d bytes", len(pcm), len(data))
		}
	})
}
