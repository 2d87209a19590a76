package multicast

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/multicast/polycom"
	"github.com/parkpage/parkpage/multicast/rtp"
)

// PolycomOptions configures a Polycom group-paging output.
type PolycomOptions struct {
	Channel    int           // 1–50; phone paging group N is channel 25+N
	CallerID   string        // shown on the phones, up to 13 bytes; "" = "Park"
	Codec      polycom.Codec // polycom.CodecG711U (default) or polycom.CodecG722
	AllowG711A bool          // permit polycom.CodecG711A (0x08), undocumented by Poly
	HostSerial uint32        // sender identity; the lowest serial wins a channel collision
	Timing     polycom.Timing
}

// PolycomOutput plays pages in the Polycom PTT / group-paging format.
type PolycomOutput struct {
	pacer *Pacer
	out   Sink
	opts  PolycomOptions
}

// NewPolycomOutput validates opts and returns an output that plays through
// pacer to out (usually a *Sender for 224.0.1.116:5001).
func NewPolycomOutput(pacer *Pacer, out Sink, opts PolycomOptions) (*PolycomOutput, error) {
	cfg := opts.config(0)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("polycom output: %w", err)
	}
	return &PolycomOutput{pacer: pacer, out: out, opts: opts}, nil
}

func (o *PolycomOptions) config(firstCount uint32) polycom.Config {
	return polycom.Config{
		Channel: o.Channel, HostSerial: o.HostSerial, CallerID: o.CallerID, Codec: o.Codec,
		AllowG711A: o.AllowG711A, FirstSampleCount: firstCount, Timing: o.Timing,
	}
}

// Play plays one page of frames (160-byte 20 ms payloads of the output's
// codec; never modified, so other outputs may share them): Alerts,
// Transmits, Ends. It returns when the page is over. If ctx is cancelled the
// audio stops, the End burst still goes out, and the error is ctx's.
func (o *PolycomOutput) Play(ctx context.Context, frames [][]byte) (Stats, error) {
	return o.PlayAt(ctx, frames, time.Time{})
}

// PlayAt is Play with the first Alert at at (zero: at once): the Pacer
// holds the page until then. Cancelled before then, it sends nothing.
func (o *PolycomOutput) PlayAt(ctx context.Context, frames [][]byte, at time.Time) (Stats, error) {
	// Phones start the sample count at a random value.
	s, err := polycom.NewSession(o.opts.config(rand.Uint32()), frames)
	if err != nil {
		return Stats{}, fmt.Errorf("polycom output: %w", err)
	}
	r := <-o.pacer.PlayAt(ctx, o.out, s, pacer.At(at))
	return r.Stats, r.Err
}

// RTPOptions configures an RTP multicast output.
type RTPOptions struct {
	Codec codec.Name // pcmu, pcma, g722 or opus
	// PayloadType overrides Opus's dynamic payload type (96–127; 0 = 111).
	// Static codecs keep their RFC 3551 type.
	PayloadType uint8
}

// RTPOutput plays pages as an RTP stream (Yealink multicast paging, Algo,
// CyberData and Valcom multicast receivers).
type RTPOutput struct {
	pacer *Pacer
	out   Sink
	info  codec.Info
}

// NewRTPOutput validates opts and returns an output that plays through pacer
// to out.
func NewRTPOutput(pacer *Pacer, out Sink, opts RTPOptions) (*RTPOutput, error) {
	info, err := codec.Lookup(string(opts.Codec))
	if err != nil {
		return nil, fmt.Errorf("rtp output: codec: %w", err)
	}
	switch {
	case opts.PayloadType == 0:
	case info.Name != codec.Opus:
		return nil, fmt.Errorf("rtp output: payload_type %d: %s has the static payload type %d", opts.PayloadType, info.Name, info.PayloadType)
	case opts.PayloadType < 96 || opts.PayloadType > 127:
		return nil, fmt.Errorf("rtp output: payload_type %d: dynamic types are 96-127", opts.PayloadType)
	default:
		info.PayloadType = opts.PayloadType
	}
	return &RTPOutput{pacer: pacer, out: out, info: info}, nil
}

// Play plays one page of frames (20 ms payloads of the output's codec; never
// modified) as a new RTP stream: random SSRC, sequence and timestamp, marker
// on the first packet. It returns when the page is over; if ctx is cancelled
// the stream just stops (receivers time out) and the error is ctx's.
func (o *RTPOutput) Play(ctx context.Context, frames [][]byte) (Stats, error) {
	return o.PlayAt(ctx, frames, time.Time{})
}

// PlayAt is Play with the first packet at at (zero: at once).
func (o *RTPOutput) PlayAt(ctx context.Context, frames [][]byte, at time.Time) (Stats, error) {
	s, err := rtp.NewStream(rtp.NewConfig(o.info), frames)
	if err != nil {
		return Stats{}, fmt.Errorf("rtp output: %w", err)
	}
	r := <-o.pacer.PlayAt(ctx, o.out, s, pacer.At(at))
	return r.Stats, r.Err
}
