package polycom

import (
	"fmt"
	"time"
)

// FrameSource supplies the audio of a live page one frame at a time, as
// the frames fall due (package multicast's LiveFeed has the same methods).
type FrameSource interface {
	// Frame appends the next frame to dst: 20 ms of the session's codec
	// (160 bytes), or a whole FrameInterval frame. A 30 ms session reads
	// three 20 ms frames per two Transmits. It must not block.
	Frame(dst []byte) []byte
	// Over reports whether the page has ended: no frame follows.
	Over() bool
}

// LiveSession is a Session whose frames are not known in advance: Alerts,
// then one Transmit per FrameInterval with the next frame from a
// FrameSource (and the previous one as the redundant copy) until the source
// is over, then the End burst. Stop behaves as Session.Stop.
type LiveSession struct {
	hdr   [HeaderLen]byte
	codec Codec
	t     Timing
	step  uint32
	count uint32 // sample count of the next frame
	src   FrameSource
	size  int // bytes per frame

	ph      phase
	i       int
	due     time.Duration
	lastDue time.Duration
	emitted bool
	prev    []byte // previous frame, the next packet's redundant copy
	cur     []byte
	pend    []byte // source audio not yet sent (30 ms frames from 20 ms ones)
	chunk   []byte
	sent    int // Transmits sent
}

// NewLiveSession validates cfg and prepares a live page reading src.
func NewLiveSession(cfg Config, src FrameSource) (*LiveSession, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("polycom live session: %w", err)
	}
	if src == nil {
		return nil, fmt.Errorf("polycom live session: no frame source")
	}
	id := cfg.CallerID
	if id == "" {
		id = DefaultCallerID
	}
	t := cfg.Timing.withDefaults()
	s := &LiveSession{codec: cfg.Codec, t: t, count: cfg.FirstSampleCount, src: src,
		size: FrameBytes(cfg.Codec, t.FrameInterval)}
	appendHeader(s.hdr[:0], OpAlert, uint8(cfg.Channel), cfg.HostSerial, id)
	s.step = uint32(t.FrameInterval / time.Millisecond * SampleRate / 1000)
	s.ph, s.due = phaseAlert, 0
	return s, nil
}

// Due reports when the next packet is due, as an offset from the start of
// the page; ok is false once the session is over.
func (s *LiveSession) Due() (time.Duration, bool) {
	if s.ph == phaseTransmit && len(s.pend) == 0 && s.src.Over() {
		s.toEnd()
	}
	return s.due, s.ph != phaseDone
}

func (s *LiveSession) toEnd() {
	if !s.emitted {
		s.ph = phaseDone
		return
	}
	s.ph, s.i, s.due = phaseEnd, 0, s.lastDue+s.t.EndDelay
}

// Append appends the next packet to dst and advances.
func (s *LiveSession) Append(dst []byte) []byte {
	if s.ph == phaseDone {
		return dst
	}
	s.lastDue, s.emitted = s.due, true
	switch s.ph {
	case phaseAlert:
		dst = appendPrebuilt(dst, &s.hdr, OpAlert)
		s.i++
		s.due += s.t.AlertInterval
		if s.i >= s.t.AlertCount {
			s.ph, s.i = phaseTransmit, 0
		}
	case phaseTransmit:
		s.cur = s.nextFrame(s.cur[:0])
		dst = appendPrebuilt(dst, &s.hdr, OpTransmit)
		c := s.count
		dst = append(dst, byte(s.codec), 0, byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
		if s.sent > 0 {
			dst = append(dst, s.prev...)
		}
		dst = append(dst, s.cur...)
		s.prev, s.cur = s.cur, s.prev
		s.sent++
		s.count += s.step
		s.due += s.t.FrameInterval
	case phaseEnd:
		dst = appendPrebuilt(dst, &s.hdr, OpEnd)
		s.i++
		s.due += s.t.EndInterval
		if s.i >= s.t.EndCount {
			s.ph = phaseDone
		}
	}
	return dst
}

// nextFrame appends the next frame of s.size bytes to dst. It reads the
// source's 20 ms frames (or frames of s.size) as needed: one per 20 ms
// Transmit, three per two 30 ms Transmits. A source chunk of another size
// counts as 20 ms of silence, so it cannot break the packet's framing
// (receivers split the payload in halves).
func (s *LiveSession) nextFrame(dst []byte) []byte {
	for len(s.pend) < s.size {
		s.chunk = s.src.Frame(s.chunk[:0])
		if n := len(s.chunk); n != renderedFrame && n != s.size {
			s.chunk = s.chunk[:0]
			for range min(renderedFrame, s.size) {
				s.chunk = append(s.chunk, idleByte(s.codec))
			}
		}
		s.pend = append(s.pend, s.chunk...)
	}
	dst = append(dst, s.pend[:s.size]...)
	s.pend = append(s.pend[:0], s.pend[s.size:]...)
	return dst
}

// Stop ends the page early: the End burst starts EndDelay after the last
// packet (nothing is sent if nothing was).
func (s *LiveSession) Stop() {
	if s.ph == phaseEnd || s.ph == phaseDone {
		return
	}
	s.toEnd()
}

// Transmits returns how many Transmit packets have been appended.
func (s *LiveSession) Transmits() int { return s.sent }
