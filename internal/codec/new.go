package codec

import (
	"fmt"
	"strings"

	"github.com/parkpage/parkpage/internal/codec/g722"
)

// Options tunes encoders. The zero value gives parkpage's defaults.
type Options struct {
	// Opus settings; ignored by the other codecs.
	Opus OpusOptions
}

// NewEncoder returns a fresh encoder for one stream of the named codec
// (case-insensitive), with default Options.
//
// Frame lengths: G.711 and G.722 encoders take any even number of samples
// (20 ms = 320 is the norm; 10, 30 or 40 ms ptimes work too) and return one
// byte per 8 kHz sample (G.711) or per two 16 kHz samples (G.722). The Opus
// encoder takes 2.5, 5, 10, 20, 40 or 60 ms.
func NewEncoder(name Name) (Encoder, error) { return NewEncoderOptions(name, Options{}) }

// NewEncoderOptions is NewEncoder with explicit Options.
func NewEncoderOptions(name Name, o Options) (Encoder, error) {
	switch Name(strings.ToLower(string(name))) {
	case PCMU:
		return &g711Encoder{encode: LinearToULaw}, nil
	case PCMA:
		return &g711Encoder{encode: LinearToALaw}, nil
	case G722:
		return &g722Encoder{enc: g722.NewEncoder()}, nil
	case Opus:
		return newOpusEncoder(o.Opus)
	}
	return nil, fmt.Errorf("new encoder: unknown codec %q (want pcmu, pcma, g722 or opus)", name)
}

// NewDecoder returns a fresh decoder for one stream of the named codec
// (case-insensitive). An empty payload decodes to no samples; the Opus
// decoder also implements Concealer for lost packets.
func NewDecoder(name Name) (Decoder, error) {
	switch Name(strings.ToLower(string(name))) {
	case PCMU:
		return &g711Decoder{table: &ulawTable}, nil
	case PCMA:
		return &g711Decoder{table: &alawTable}, nil
	case G722:
		return &g722Decoder{dec: g722.NewDecoder()}, nil
	case Opus:
		return newOpusDecoder()
	}
	return nil, fmt.Errorf("new decoder: unknown codec %q (want pcmu, pcma, g722 or opus)", name)
}

// Concealer is implemented by decoders that can synthesise audio for a
// lost packet from their state (Opus packet-loss concealment).
type Concealer interface {
	// Conceal appends samples (16 kHz, a multiple of 2.5 ms = 40) of
	// concealment audio to dst.
	Conceal(dst []int16, samples int) ([]int16, error)
}

type g722Encoder struct{ enc *g722.Encoder }

func (e *g722Encoder) Encode(dst []byte, pcm []int16) ([]byte, error) {
	if len(pcm)%2 != 0 {
		return dst, fmt.Errorf("g722 encode: odd frame of %d samples", len(pcm))
	}
	return e.enc.Encode(dst, pcm), nil
}

type g722Decoder struct{ dec *g722.Decoder }

func (d *g722Decoder) Decode(dst []int16, payload []byte) ([]int16, error) {
	return d.dec.Decode(dst, payload), nil
}
