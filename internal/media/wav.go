package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/parkpage/parkpage/internal/codec"
)

// readWAVFile loads a PCM WAV file (8/16-bit, any channel count and rate)
// as 16 kHz mono.
func readWAVFile(path string) ([]int16, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pcm, err := decodeWAV(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pcm, nil
}

// decodeWAV parses a RIFF/WAVE PCM file into 16 kHz mono samples.
func decodeWAV(data []byte) ([]int16, error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, errors.New("not a RIFF/WAVE file")
	}
	var (
		format, channels, bits uint16
		rate                   uint32
		haveFmt                bool
		samples                []byte
	)
	for p := 12; p+8 <= len(data); {
		id := string(data[p : p+4])
		size := int(binary.LittleEndian.Uint32(data[p+4 : p+8]))
		body := data[p+8:]
		if size < 0 || size > len(body) {
			size = len(body) // truncated files: take what is there
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, errors.New("fmt chunk too short")
			}
			format = binary.LittleEndian.Uint16(body[0:2])
			channels = binary.LittleEndian.Uint16(body[2:4])
			rate = binary.LittleEndian.Uint32(body[4:8])
			bits = binary.LittleEndian.Uint16(body[14:16])
			if format == 0xFFFE && size >= 26 { // WAVE_FORMAT_EXTENSIBLE: sub-format GUID starts with the tag
				format = binary.LittleEndian.Uint16(body[24:26])
			}
			haveFmt = true
		case "data":
			samples = body
		}
		p += 8 + size + size%2
	}
	if !haveFmt || samples == nil {
		return nil, errors.New("missing fmt or data chunk")
	}
	if format != 1 {
		return nil, fmt.Errorf("WAV format %d is not PCM (convert with: sox in.wav -b 16 out.wav)", format)
	}
	if channels == 0 || channels > 8 || rate < 4000 || rate > 192000 || (bits != 8 && bits != 16) {
		return nil, fmt.Errorf("unsupported WAV: %d channels, %d Hz, %d bits (want 8/16-bit PCM)", channels, rate, bits)
	}
	bps := int(bits/8) * int(channels)
	frames := len(samples) / bps
	mono := make([]float64, frames)
	for i := 0; i < frames; i++ {
		sum := 0.0
		for c := 0; c < int(channels); c++ {
			o := i*bps + c*int(bits/8)
			if bits == 16 {
				sum += float64(int16(binary.LittleEndian.Uint16(samples[o:])))
			} else {
				sum += float64(int(samples[o])-128) * 256
			}
		}
		mono[i] = sum / float64(channels)
	}
	if rate == codec.SampleRate {
		out := make([]int16, frames)
		for i, v := range mono {
			out[i] = int16(v)
		}
		return out, nil
	}
	// Linear interpolation, with a crude moving-average low-pass when
	// shrinking the rate; good enough for music on hold.
	if rate > codec.SampleRate {
		k := int(rate / codec.SampleRate)
		if k > 1 {
			sm := make([]float64, len(mono))
			acc := 0.0
			for i, v := range mono {
				acc += v
				if i >= k {
					acc -= mono[i-k]
				}
				sm[i] = acc / float64(min(i+1, k))
			}
			mono = sm
		}
	}
	n := int(int64(frames) * codec.SampleRate / int64(rate))
	out := make([]int16, n)
	step := float64(rate) / codec.SampleRate
	for i := range out {
		x := float64(i) * step
		j := int(x)
		f := x - float64(j)
		a := mono[min(j, frames-1)]
		b := mono[min(j+1, frames-1)]
		v := a + (b-a)*f
		out[i] = int16(max(-32768, min(32767, v)))
	}
	return out, nil
}
