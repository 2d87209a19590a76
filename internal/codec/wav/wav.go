// Package wav reads and writes RIFF WAVE files and turns any supported WAV
// into parkpage's internal audio (16 kHz mono int16). It is used for
// installer-supplied chimes, recorded announcements and hold music.
//
// Reading supports integer PCM (8, 16, 24 and 32 bit), IEEE float (32 and
// 64 bit), G.711 A-law and µ-law, plain or wrapped in WAVE_FORMAT_EXTENSIBLE,
// with 1 to 8 channels at any rate. Writing produces 16-bit PCM.
package wav

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/parkpage/parkpage/internal/codec"
)

// Encoding is the sample encoding of a WAV file (its wFormatTag, after
// unwrapping WAVE_FORMAT_EXTENSIBLE).
type Encoding uint16

// Supported encodings.
const (
	PCM   Encoding = 1 // WAVE_FORMAT_PCM: integer samples
	Float Encoding = 3 // WAVE_FORMAT_IEEE_FLOAT
	ALaw  Encoding = 6 // WAVE_FORMAT_ALAW: G.711 A-law
	MuLaw Encoding = 7 // WAVE_FORMAT_MULAW: G.711 µ-law

	extensible = 0xfffe // WAVE_FORMAT_EXTENSIBLE
)

func (e Encoding) String() string {
	switch e {
	case PCM:
		return "PCM"
	case Float:
		return "float"
	case ALaw:
		return "A-law"
	case MuLaw:
		return "µ-law"
	}
	return fmt.Sprintf("format 0x%04x", uint16(e))
}

// Format describes the audio in a WAV file.
type Format struct {
	Encoding      Encoding
	Channels      int // 1–8
	SampleRate    int // Hz
	BitsPerSample int // container size: 8, 16, 24, 32 or 64
}

// Errors callers may want to tell apart; every error wraps one of these or
// an I/O error, with details.
var (
	// ErrNotWAV means the input is not a RIFF WAVE file at all.
	ErrNotWAV = errors.New("not a RIFF/WAVE file")
	// ErrUnsupported means a WAV whose encoding or layout this package
	// cannot read (e.g. ADPCM, more than 8 channels, RF64).
	ErrUnsupported = errors.New("unsupported WAV format")
	// ErrMalformed means a WAV file with missing or inconsistent chunks.
	ErrMalformed = errors.New("malformed WAV file")
)

// MaxChannels is the most channels Reader accepts.
const MaxChannels = 8

// The GUID tail shared by the KSDATAFORMAT_SUBTYPE_* GUIDs of
// WAVE_FORMAT_EXTENSIBLE: the sub-format is the first two bytes.
var subtypeTail = [14]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71}

// Reader decodes the samples of a WAV file as interleaved int16.
type Reader struct {
	r         *bufio.Reader
	f         Format
	bytesPer  int   // bytes per sample
	remaining int64 // data bytes left; -1 = unknown, read to EOF
	dataSize  int64
	buf       []byte
	err       error // sticky end-of-data or read error
}

// unknownSize is the data chunk size streaming writers (ffmpeg on a pipe,
// sox) put in when they cannot seek back: read to the end of the input.
const unknownSize = 0xffffffff

// NewReader parses the WAV header from r up to the start of the sample data.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReader(r)
	var hdr [12]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		if !isEOF(err) {
			return nil, fmt.Errorf("wav: read header: %w", err)
		}
		return nil, fmt.Errorf("wav: %w: input too short for a RIFF header", ErrNotWAV)
	}
	switch {
	case string(hdr[0:4]) == "RF64" || string(hdr[0:4]) == "BW64":
		return nil, fmt.Errorf("wav: %w: %s (64-bit) files are not supported", ErrUnsupported, hdr[0:4])
	case string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE":
		return nil, fmt.Errorf("wav: %w: header is %q", ErrNotWAV, hdr[:])
	}
	rd := &Reader{r: br}
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(br, ch[:]); err != nil {
			if !isEOF(err) {
				return nil, fmt.Errorf("wav: read chunk header: %w", err)
			}
			if !haveFmt {
				return nil, fmt.Errorf("wav: %w: no fmt chunk", ErrMalformed)
			}
			return nil, fmt.Errorf("wav: %w: no data chunk", ErrMalformed)
		}
		id := string(ch[0:4])
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch id {
		case "fmt ":
			if haveFmt {
				return nil, fmt.Errorf("wav: %w: two fmt chunks", ErrMalformed)
			}
			if err := rd.parseFmt(size); err != nil {
				return nil, err
			}
			haveFmt = true
			continue
		case "data":
			if !haveFmt {
				return nil, fmt.Errorf("wav: %w: data chunk before fmt chunk", ErrMalformed)
			}
			rd.remaining, rd.dataSize = size, size
			if size == unknownSize {
				rd.remaining, rd.dataSize = -1, -1
			}
			return rd, nil
		}
		// Skip LIST, fact, cue, bext, ... (chunks are padded to even sizes).
		if _, err := br.Discard(int(min(size+size&1, math.MaxInt32))); err != nil {
			return nil, fmt.Errorf("wav: %w: %q chunk of %d bytes truncated", ErrMalformed, id, size)
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// parseFmt reads a fmt chunk of the given size.
func (rd *Reader) parseFmt(size int64) error {
	if size < 16 {
		return fmt.Errorf("wav: %w: fmt chunk of %d bytes, want at least 16", ErrMalformed, size)
	}
	var b [40]byte
	n := min(size, int64(len(b)))
	if _, err := io.ReadFull(rd.r, b[:n]); err != nil {
		return fmt.Errorf("wav: %w: fmt chunk truncated", ErrMalformed)
	}
	if _, err := rd.r.Discard(int(min(size-n+size&1, math.MaxInt32))); err != nil {
		return fmt.Errorf("wav: %w: fmt chunk truncated", ErrMalformed)
	}
	tag := binary.LittleEndian.Uint16(b[0:2])
	f := Format{
		Encoding:      Encoding(tag),
		Channels:      int(binary.LittleEndian.Uint16(b[2:4])),
		SampleRate:    int(binary.LittleEndian.Uint32(b[4:8])),
		BitsPerSample: int(binary.LittleEndian.Uint16(b[14:16])),
	}
	if tag == extensible {
		if n < 40 {
			return fmt.Errorf("wav: %w: WAVE_FORMAT_EXTENSIBLE fmt chunk of %d bytes, want 40", ErrMalformed, size)
		}
		if [14]byte(b[26:40]) != subtypeTail {
			return fmt.Errorf("wav: %w: extensible sub-format GUID % x", ErrUnsupported, b[24:40])
		}
		f.Encoding = Encoding(binary.LittleEndian.Uint16(b[24:26]))
	}
	switch {
	case f.Channels < 1 || f.Channels > MaxChannels:
		return fmt.Errorf("wav: %w: %d channels, want 1–%d", ErrUnsupported, f.Channels, MaxChannels)
	case f.SampleRate <= 0:
		return fmt.Errorf("wav: %w: sample rate %d Hz", ErrMalformed, f.SampleRate)
	}
	ok := false
	switch f.Encoding {
	case PCM:
		ok = f.BitsPerSample == 8 || f.BitsPerSample == 16 || f.BitsPerSample == 24 || f.BitsPerSample == 32
	case Float:
		ok = f.BitsPerSample == 32 || f.BitsPerSample == 64
	case ALaw, MuLaw:
		ok = f.BitsPerSample == 8
	default:
		return fmt.Errorf("wav: %w: encoding %v (want PCM, float, A-law or µ-law)", ErrUnsupported, f.Encoding)
	}
	if !ok {
		return fmt.Errorf("wav: %w: %d-bit %v", ErrUnsupported, f.BitsPerSample, f.Encoding)
	}
	rd.f = f
	rd.bytesPer = f.BitsPerSample / 8
	return nil
}

// Format returns the format of the file.
func (rd *Reader) Format() Format { return rd.f }

// Frames returns the number of sample frames (samples per channel) the
// data chunk declares, or -1 when the writer left the size open.
func (rd *Reader) Frames() int64 {
	if rd.dataSize < 0 {
		return -1
	}
	return rd.dataSize / int64(rd.bytesPer*rd.f.Channels)
}

// Read decodes up to len(dst) interleaved samples into dst, whole frames
// only (len(dst) must be at least Channels). It returns io.EOF after the
// last sample, and an error wrapping io.ErrUnexpectedEOF if the input ends
// before the size its data chunk declares. A trailing partial frame is
// ignored.
func (rd *Reader) Read(dst []int16) (int, error) {
	if rd.err != nil {
		return 0, rd.err
	}
	frameBytes := rd.bytesPer * rd.f.Channels
	frames := len(dst) / rd.f.Channels
	if frames == 0 {
		if len(dst) == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("wav: read buffer of %d samples is smaller than one %d-channel frame", len(dst), rd.f.Channels)
	}
	want := int64(frames * frameBytes)
	if rd.remaining >= 0 {
		want = min(want, rd.remaining/int64(frameBytes)*int64(frameBytes))
		if want == 0 {
			rd.err = io.EOF
			return 0, rd.err
		}
	}
	if cap(rd.buf) < int(want) {
		rd.buf = make([]byte, want)
	}
	n, err := io.ReadFull(rd.r, rd.buf[:want])
	if rd.remaining >= 0 {
		rd.remaining -= int64(n)
	}
	switch {
	case err == nil:
	case isEOF(err):
		rd.err = io.EOF
		if rd.remaining > 0 {
			rd.err = fmt.Errorf("wav: data chunk ends early, %d of %d bytes missing: %w",
				rd.remaining, rd.dataSize, io.ErrUnexpectedEOF)
		}
	default:
		rd.err = fmt.Errorf("wav: read samples: %w", err)
	}
	n -= n % frameBytes
	rd.decode(dst, rd.buf[:n])
	if n == 0 && rd.err != nil {
		return 0, rd.err
	}
	return n / rd.bytesPer, nil
}

// decode converts raw little-endian samples to int16.
func (rd *Reader) decode(dst []int16, b []byte) {
	switch rd.f.Encoding {
	case PCM:
		switch rd.bytesPer {
		case 1:
			for i, v := range b {
				dst[i] = int16(int(v)-128) << 8 // 8-bit WAV is unsigned
			}
		case 2:
			for i := range len(b) / 2 {
				dst[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
			}
		case 3:
			for i := range len(b) / 3 {
				v := int32(uint32(b[3*i])<<8|uint32(b[3*i+1])<<16|uint32(b[3*i+2])<<24) >> 8
				dst[i] = round16(int64(v), 8)
			}
		case 4:
			for i := range len(b) / 4 {
				dst[i] = round16(int64(int32(binary.LittleEndian.Uint32(b[4*i:]))), 16)
			}
		}
	case Float:
		if rd.bytesPer == 4 {
			for i := range len(b) / 4 {
				dst[i] = floatTo16(float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))))
			}
		} else {
			for i := range len(b) / 8 {
				dst[i] = floatTo16(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
			}
		}
	case ALaw:
		for i, v := range b {
			dst[i] = codec.ALawToLinear(v)
		}
	case MuLaw:
		for i, v := range b {
			dst[i] = codec.ULawToLinear(v)
		}
	}
}

// round16 drops shift low bits with rounding, saturating at full scale.
func round16(v int64, shift uint) int16 {
	v = (v + 1<<(shift-1)) >> shift
	return int16(max(min(v, math.MaxInt16), math.MinInt16))
}

func floatTo16(f float64) int16 {
	if math.IsNaN(f) {
		return 0
	}
	v := math.Round(f * 32768)
	return int16(max(min(v, math.MaxInt16), math.MinInt16))
}

// ReadAll reads a whole WAV file: its format and interleaved samples.
func ReadAll(r io.Reader) (Format, []int16, error) {
	rd, err := NewReader(r)
	if err != nil {
		return Format{}, nil, err
	}
	var out []int16
	if n := rd.Frames(); n > 0 {
		// Trust the declared size only up to a point: it may be a lie.
		out = make([]int16, 0, min(n*int64(rd.f.Channels), 1<<20))
	}
	buf := make([]int16, 4096*rd.f.Channels)
	for {
		n, err := rd.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return rd.f, out, nil
		}
		if err != nil {
			return rd.f, out, err
		}
	}
}

// Write writes samples (interleaved if channels > 1) as a 16-bit PCM WAV.
func Write(w io.Writer, sampleRate, channels int, samples []int16) error {
	if channels < 1 || channels > MaxChannels {
		return fmt.Errorf("wav: write %d channels, want 1–%d", channels, MaxChannels)
	}
	if sampleRate <= 0 || sampleRate > math.MaxUint32/(2*MaxChannels) {
		return fmt.Errorf("wav: write sample rate %d Hz", sampleRate)
	}
	if len(samples)%channels != 0 {
		return fmt.Errorf("wav: write %d samples, not a whole number of %d-channel frames", len(samples), channels)
	}
	dataBytes := int64(len(samples)) * 2
	if dataBytes > math.MaxUint32-36 {
		return fmt.Errorf("wav: write %d samples: too long for a RIFF file", len(samples))
	}
	var h [44]byte
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+dataBytes))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], uint16(PCM))
	binary.LittleEndian.PutUint16(h[22:], uint16(channels))
	binary.LittleEndian.PutUint32(h[24:], uint32(sampleRate))
	binary.LittleEndian.PutUint32(h[28:], uint32(sampleRate*channels*2))
	binary.LittleEndian.PutUint16(h[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(dataBytes))
	bw := bufio.NewWriter(w)
	if _, err := bw.Write(h[:]); err != nil {
		return fmt.Errorf("wav: write header: %w", err)
	}
	var b [2]byte
	for _, s := range samples {
		binary.LittleEndian.PutUint16(b[:], uint16(s))
		if _, err := bw.Write(b[:]); err != nil {
			return fmt.Errorf("wav: write samples: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("wav: write samples: %w", err)
	}
	return nil
}
