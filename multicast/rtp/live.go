package rtp

import (
	"fmt"
	"time"
)

// FrameSource supplies the audio of a live page one frame at a time, as
// the frames fall due (package multicast's LiveFeed has the same methods).
type FrameSource interface {
	// Frame appends the next 20 ms payload to dst. It must not block.
	Frame(dst []byte) []byte
	// Over reports whether the page has ended: no frame follows.
	Over() bool
}

// LiveStream is a Stream whose frames are not known in advance: one packet
// per FrameInterval with the next frame from a FrameSource, until the source
// is over or Stop.
type LiveStream struct {
	cfg     Config
	src     FrameSource
	i       int
	stopped bool
	buf     []byte
}

// NewLiveStream validates cfg and prepares a live stream reading src.
func NewLiveStream(cfg Config, src FrameSource) (*LiveStream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rtp live stream: %w", err)
	}
	if src == nil {
		return nil, fmt.Errorf("rtp live stream: no frame source")
	}
	return &LiveStream{cfg: cfg, src: src}, nil
}

// Due reports when the next packet is due; ok is false once the source is
// over or after Stop.
func (s *LiveStream) Due() (time.Duration, bool) {
	if !s.stopped && s.src.Over() {
		s.stopped = true
	}
	return time.Duration(s.i) * FrameInterval, !s.stopped
}

// Append appends the next packet to dst and advances.
func (s *LiveStream) Append(dst []byte) []byte {
	if s.stopped {
		return dst
	}
	s.buf = s.src.Frame(s.buf[:0])
	h := s.cfg.Header(s.i)
	s.i++
	return AppendPacket(dst, &h, s.buf)
}

// Stop ends the stream now (RTP has no end-of-page packet).
func (s *LiveStream) Stop() { s.stopped = true }

// Packets returns how many packets have been appended.
func (s *LiveStream) Packets() int { return s.i }
