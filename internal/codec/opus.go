package codec

import (
	"fmt"
	"slices"

	"github.com/hraban/opus"
)

// OpusOptions tunes the Opus encoder. Zero fields take the defaults.
type OpusOptions struct {
	// Bitrate in bit/s (6000–510000); default 32000, transparent for
	// wideband speech.
	Bitrate int
	// Complexity 1–10 trades CPU for quality; 0 means the default, 5, a
	// fair balance on a Raspberry Pi.
	Complexity int
	// FEC adds in-band forward error correction, used by receivers that
	// support it when PacketLossPercent > 0.
	FEC bool
	// PacketLossPercent is the expected loss rate (0–100) FEC is sized for.
	PacketLossPercent int
	// DTX sends almost nothing during silence.
	DTX bool
}

const (
	opusDefaultBitrate    = 32000
	opusDefaultComplexity = 5
	// opusMaxPacket bounds one encoded packet: up to 3 frames of at most
	// 1275 bytes plus framing (RFC 6716 §3.2.5).
	opusMaxPacket = 3*1275 + 7
	// opusMaxSamples is 120 ms at 16 kHz, the longest packet a decoder may
	// be handed (RFC 6716 §3.2.5).
	opusMaxSamples = 120 * SampleRate / 1000
)

type opusEncoder struct{ enc *opus.Encoder }

func newOpusEncoder(o OpusOptions) (*opusEncoder, error) {
	if o.Bitrate == 0 {
		o.Bitrate = opusDefaultBitrate
	}
	if o.Complexity == 0 {
		o.Complexity = opusDefaultComplexity
	}
	// libopus silently clamps out-of-range values: refuse them instead so a
	// config typo is reported.
	switch {
	case o.Bitrate < 6000 || o.Bitrate > 510000:
		return nil, fmt.Errorf("opus encoder: bitrate %d bit/s outside 6000–510000", o.Bitrate)
	case o.Complexity < 0 || o.Complexity > 10:
		return nil, fmt.Errorf("opus encoder: complexity %d outside 0–10", o.Complexity)
	case o.PacketLossPercent < 0 || o.PacketLossPercent > 100:
		return nil, fmt.Errorf("opus encoder: packet loss %d%% outside 0–100", o.PacketLossPercent)
	}
	enc, err := opus.NewEncoder(SampleRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus encoder: %w", err)
	}
	if err := enc.SetBitrate(o.Bitrate); err != nil {
		return nil, fmt.Errorf("opus encoder: bitrate %d: %w", o.Bitrate, err)
	}
	if err := enc.SetComplexity(o.Complexity); err != nil {
		return nil, fmt.Errorf("opus encoder: complexity %d: %w", o.Complexity, err)
	}
	if err := enc.SetInBandFEC(o.FEC); err != nil {
		return nil, fmt.Errorf("opus encoder: fec: %w", err)
	}
	if err := enc.SetPacketLossPerc(o.PacketLossPercent); err != nil {
		return nil, fmt.Errorf("opus encoder: packet loss %d%%: %w", o.PacketLossPercent, err)
	}
	if err := enc.SetDTX(o.DTX); err != nil {
		return nil, fmt.Errorf("opus encoder: dtx: %w", err)
	}
	return &opusEncoder{enc: enc}, nil
}

func (e *opusEncoder) Encode(dst []byte, pcm []int16) ([]byte, error) {
	switch len(pcm) {
	case 40, 80, 160, 320, 640, 960:
	default:
		return dst, fmt.Errorf("opus encode: %d samples is not a 2.5, 5, 10, 20, 40 or 60 ms frame", len(pcm))
	}
	dst = slices.Grow(dst, opusMaxPacket)
	n, err := e.enc.Encode(pcm, dst[len(dst):len(dst)+opusMaxPacket])
	if err != nil {
		return dst, fmt.Errorf("opus encode: %w", err)
	}
	return dst[:len(dst)+n], nil
}

type opusDecoder struct{ dec *opus.Decoder }

func newOpusDecoder() (*opusDecoder, error) {
	dec, err := opus.NewDecoder(SampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus decoder: %w", err)
	}
	return &opusDecoder{dec: dec}, nil
}

func (d *opusDecoder) Decode(dst []int16, payload []byte) ([]int16, error) {
	if len(payload) == 0 {
		return dst, nil
	}
	dst = slices.Grow(dst, opusMaxSamples)
	// hraban/opus sizes the output by cap(pcm): cap it at the slot we grew.
	out := dst[len(dst) : len(dst)+opusMaxSamples : len(dst)+opusMaxSamples]
	n, err := d.dec.Decode(payload, out)
	if err != nil {
		return dst, fmt.Errorf("opus decode %d bytes: %w", len(payload), err)
	}
	return dst[:len(dst)+n], nil
}

// Conceal implements Concealer with libopus packet-loss concealment.
func (d *opusDecoder) Conceal(dst []int16, samples int) ([]int16, error) {
	if samples <= 0 || samples%40 != 0 || samples > opusMaxSamples {
		return dst, fmt.Errorf("opus conceal: %d samples is not a multiple of 2.5 ms up to 120 ms", samples)
	}
	dst = slices.Grow(dst, samples)
	out := dst[len(dst) : len(dst)+samples : len(dst)+samples]
	if err := d.dec.DecodePLC(out); err != nil {
		return dst, fmt.Errorf("opus conceal: %w", err)
	}
	return dst[:len(dst)+samples], nil
}
