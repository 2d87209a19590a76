// Package rtp builds the RTP packets of a multicast page (Yealink multicast
// paging; Algo, CyberData and Valcom multicast receivers): RFC 3550 headers
// with a random SSRC, random initial sequence number and timestamp, the
// marker bit on the first packet only, sequence +1 and timestamp + one
// frame's worth of the codec's RTP clock per packet. It is pure: no sockets,
// no clocks; Stream yields packets with due times for a pacer. The receive
// side (Parse, Follower) checks and follows a stream as a phone would.
//
// Headers are built from pion/rtp's Header type directly: pion's Packetizer
// sets the marker on every single-packet frame (a video convention), which
// audio receivers would take as a new talkspurt each time.
package rtp

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/codec"
)

// FrameInterval is the audio carried per packet; parkpage sends 20 ms frames.
const FrameInterval = 20 * time.Millisecond

// HeaderLen is the size of the headers this package writes (no CSRC, no extension).
const HeaderLen = 12

// Config fixes the header fields of one stream.
type Config struct {
	PayloadType    uint8  // 0–127: PCMU 0, PCMA 8, G.722 9, Opus dynamic (parkpage default 111)
	TimestampStep  uint32 // RTP clock ticks per 20 ms frame: 160 at 8000 Hz (G.711, G.722), 960 for Opus
	SSRC           uint32
	FirstSequence  uint16
	FirstTimestamp uint32
}

// NewConfig returns the Config for a codec with a random SSRC, first sequence
// number and first timestamp, as RFC 3550 §5.1 asks. Override PayloadType for
// a dynamic type other than the codec's default.
func NewConfig(info codec.Info) Config {
	return Config{
		PayloadType:    info.PayloadType,
		TimestampStep:  info.TimestampStep,
		SSRC:           rand.Uint32(),
		FirstSequence:  uint16(rand.Uint32()),
		FirstTimestamp: rand.Uint32(),
	}
}

// Validate checks the fields; each error names its field.
func (c *Config) Validate() error {
	var errs []error
	if c.PayloadType > 127 {
		errs = append(errs, fmt.Errorf("payload_type %d: must be 0-127", c.PayloadType))
	}
	if c.TimestampStep == 0 {
		errs = append(errs, errors.New("timestamp_step: must be > 0"))
	}
	return errors.Join(errs...)
}

// Stream yields one RTP packet per frame, due every FrameInterval from the
// start of the stream. It never modifies its frames, so other streams can
// share them. Not safe for concurrent use.
type Stream struct {
	cfg    Config
	frames [][]byte
	i      int
}

// NewStream validates cfg and prepares a stream for frames (20 ms codec
// payloads each).
func NewStream(cfg Config, frames [][]byte) (*Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rtp stream: %w", err)
	}
	for i, f := range frames {
		if len(f) == 0 {
			return nil, fmt.Errorf("rtp stream: frame %d is empty", i)
		}
	}
	return &Stream{cfg: cfg, frames: frames}, nil
}

// Header returns the header of packet k of the stream.
func (c *Config) Header(k int) pionrtp.Header {
	return pionrtp.Header{
		Version:        2,
		Marker:         k == 0, // start of the talkspurt (RFC 3551 §4.1)
		PayloadType:    c.PayloadType,
		SequenceNumber: c.FirstSequence + uint16(k),                  // wraps at 2^16
		Timestamp:      c.FirstTimestamp + uint32(k)*c.TimestampStep, // wraps at 2^32
		SSRC:           c.SSRC,
	}
}

// AppendPacket appends header h and payload to dst.
func AppendPacket(dst []byte, h *pionrtp.Header, payload []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, h.MarshalSize()+len(payload))
	m, err := h.MarshalTo(dst[n:cap(dst)])
	if err != nil {
		// Unreachable: the buffer was grown to MarshalSize.
		panic(fmt.Sprintf("rtp: marshal header: %v", err))
	}
	dst = dst[:n+m]
	return append(dst, payload...)
}

// Due reports when the next packet is due, as an offset from the start of the
// stream; ok is false when all frames have been sent or after Stop.
func (s *Stream) Due() (due time.Duration, ok bool) {
	return time.Duration(s.i) * FrameInterval, s.i < len(s.frames)
}

// Append appends the next packet to dst and advances; it returns dst
// unchanged when the stream is over.
func (s *Stream) Append(dst []byte) []byte {
	if s.i >= len(s.frames) {
		return dst
	}
	h := s.cfg.Header(s.i)
	dst = AppendPacket(dst, &h, s.frames[s.i])
	s.i++
	return dst
}

// Rewind takes back the last n packets appended (the pacer built them
// ahead of their due time and cancelled them before they left): the stream
// continues from the first of them, same sequence number and timestamp.
func (s *Stream) Rewind(n int) { s.i = max(s.i-n, 0) }

// Stop ends the stream now. RTP paging has no end-of-page packet: receivers
// end the page when packets stop arriving.
func (s *Stream) Stop() { s.frames = s.frames[:s.i] }

// Len returns the number of packets the stream sends if not stopped.
func (s *Stream) Len() int { return len(s.frames) }
