package wav

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parkpage/parkpage/internal/codec"
)

// MaxLoadSeconds bounds Load16kMono: longer audio (a long hold-music file)
// should be streamed through a MonoReader instead of held in memory.
const MaxLoadSeconds = 30 * 60

// MonoReader reads a WAV file of any supported format as parkpage's
// internal audio: 16 kHz mono int16. Channels are mixed down by averaging
// and other rates are converted with codec.Converter (windowed sinc).
type MonoReader struct {
	rd   *Reader
	conv *codec.Converter
	in   []int16 // interleaved read buffer
	mono []int16
	out  []int16 // converted samples not yet returned
	buf  []int16 // backing array of out
	eof  bool
}

// NewMonoReader parses the WAV header from r.
func NewMonoReader(r io.Reader) (*MonoReader, error) {
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	conv, err := codec.NewConverter(rd.f.SampleRate, codec.SampleRate)
	if err != nil {
		return nil, fmt.Errorf("wav: %w: %w", ErrUnsupported, err)
	}
	return &MonoReader{rd: rd, conv: conv, in: make([]int16, 4096*rd.f.Channels)}, nil
}

// Format returns the format of the underlying file.
func (m *MonoReader) Format() Format { return m.rd.f }

// Read fills dst with 16 kHz mono samples; it returns io.EOF after the last.
func (m *MonoReader) Read(dst []int16) (int, error) {
	for len(m.out) == 0 {
		if m.eof {
			return 0, io.EOF
		}
		if err := m.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(dst, m.out)
	m.out = m.out[n:]
	return n, nil
}

// fill reads and converts one buffer of input.
func (m *MonoReader) fill() error {
	n, err := m.rd.Read(m.in)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	ch := m.rd.f.Channels
	m.mono = m.mono[:0]
	for i := 0; i+ch <= n; i += ch {
		sum := 0
		for _, s := range m.in[i : i+ch] {
			sum += int(s)
		}
		m.mono = append(m.mono, int16(divRound(sum, ch)))
	}
	out, perr := m.conv.Process(m.buf[:0], m.mono)
	if perr != nil {
		return perr
	}
	if errors.Is(err, io.EOF) {
		m.eof = true
		out = m.conv.Flush(out)
	}
	m.buf, m.out = out, out
	return nil
}

// divRound divides rounding half away from zero.
func divRound(a, b int) int {
	if a < 0 {
		return -((-a + b/2) / b)
	}
	return (a + b/2) / b
}

// Load16kMono reads a whole WAV file as 16 kHz mono. It refuses audio longer
// than MaxLoadSeconds. When the data chunk ends early (a copy cut short) it
// returns the samples before the cut with an error wrapping
// io.ErrUnexpectedEOF: a caller that would rather play what is there can.
func Load16kMono(r io.Reader) ([]int16, error) {
	m, err := NewMonoReader(r)
	if err != nil {
		return nil, err
	}
	const limit = MaxLoadSeconds * codec.SampleRate
	var out []int16
	if n := m.rd.Frames(); n > 0 {
		out = make([]int16, 0, min(n*codec.SampleRate/int64(m.rd.f.SampleRate)+1, limit))
	}
	buf := make([]int16, 8192)
	for {
		n, err := m.Read(buf)
		out = append(out, buf[:n]...)
		if len(out) > limit {
			return nil, fmt.Errorf("wav: audio longer than %d s: stream it instead", MaxLoadSeconds)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return out, err
		}
		if err != nil {
			return nil, err
		}
	}
}

// LoadFile16kMono is Load16kMono on a file, naming the file in errors (and
// like it returning what precedes a cut with io.ErrUnexpectedEOF).
func LoadFile16kMono(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	pcm, err := Load16kMono(f)
	if err != nil {
		return pcm, fmt.Errorf("load %s: %w", path, err)
	}
	return pcm, nil
}

// WriteFile writes samples as a 16-bit PCM WAV file at path.
func WriteFile(path string, sampleRate, channels int, samples []int16) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := Write(f, sampleRate, channels, samples); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
