package rtp

import (
	"errors"
	"fmt"

	pionrtp "github.com/pion/rtp"
)

// Receive side: what a multicast paging receiver (a Yealink on a listen
// address) does with the packets on a group. Tests use it to check the
// sender; a monitor can use it to watch a group.

// Parse errors, wrapped with detail; test with errors.Is.
var (
	ErrMalformed = errors.New("malformed rtp packet")
	ErrVersion   = errors.New("rtp version is not 2")
	ErrNoPayload = errors.New("rtp packet without payload")
)

// Parse decodes one RTP packet (RFC 3550 §5.1) and rejects what no audio
// receiver can play: a version other than 2, a header, CSRC list, extension
// or padding longer than the packet (pion checks these), no payload. The
// packet's slices alias b.
func Parse(b []byte) (pionrtp.Packet, error) {
	var p pionrtp.Packet
	if len(b) > 0 && b[0]>>6 != 2 {
		return p, fmt.Errorf("rtp: version %d: %w", b[0]>>6, ErrVersion)
	}
	if err := p.Unmarshal(b); err != nil {
		return p, fmt.Errorf("rtp: %w: %w", ErrMalformed, err)
	}
	if len(p.Payload) == 0 {
		return p, fmt.Errorf("rtp: %w", ErrNoPayload)
	}
	return p, nil
}

// EventKind says what a Follower Event reports.
type EventKind uint8

// Event kinds.
const (
	EventStart EventKind = iota + 1 // a new stream (first packet, new SSRC, or a sequence discontinuity)
	EventFrame                      // one payload, in sequence order
	EventLost                       // Lost packets are missing before the next frame
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case EventStart:
		return "start"
	case EventFrame:
		return "frame"
	case EventLost:
		return "lost"
	}
	return "unknown"
}

// Event is one step of a followed stream.
type Event struct {
	Kind      EventKind
	SSRC      uint32
	Sequence  uint16 // of the frame, or of the first lost packet
	Timestamp uint32
	Marker    bool
	Payload   []byte // EventFrame; aliases the packet
	Lost      int    // EventLost
}

// FollowerStats counts what a Follower has seen.
type FollowerStats struct {
	Packets    int // packets pushed
	Streams    int // EventStarts
	Frames     int // frames delivered
	Lost       int // packets missing from sequence gaps
	Duplicates int // packets at or before the last delivered sequence number (late or repeated)
	Ignored    int // other payload type
	// Markers counts marker bits seen on delivered frames; a sender that
	// follows RFC 3551 §4.1 sets one per talkspurt (parkpage: one per page).
	Markers int
	// TimestampJumps counts frames whose timestamp did not advance by
	// TimestampStep per sequence step.
	TimestampJumps int
}

// maxSeqGap is the largest sequence jump taken as loss; a larger one is a
// new stream (RFC 3550 A.1 uses a similar MAX_DROPOUT).
const maxSeqGap = 100

// Follower follows the RTP stream on one group as a receiver plays it: one
// SSRC at a time (a new SSRC starts a new stream), frames in sequence order,
// late and duplicate packets dropped, gaps reported as loss. It does no I/O
// and is deterministic.
type Follower struct {
	// PayloadType is the only payload type followed; -1 follows any.
	PayloadType int
	// TimestampStep is the RTP clock ticks per packet to expect (160 for
	// 20 ms of G.711/G.722, 960 for Opus); 0 does not check timestamps.
	TimestampStep uint32

	Stats FollowerStats

	active  bool
	ssrc    uint32
	lastSeq uint16
	lastTS  uint32
}

// Push feeds one parsed packet and appends the resulting events to dst.
func (f *Follower) Push(dst []Event, p *pionrtp.Packet) []Event {
	f.Stats.Packets++
	if f.PayloadType >= 0 && int(p.PayloadType) != f.PayloadType {
		f.Stats.Ignored++
		return dst
	}
	h := &p.Header
	if !f.active || h.SSRC != f.ssrc {
		return f.start(dst, p)
	}
	d := int(int16(h.SequenceNumber - f.lastSeq)) // serial arithmetic across the 2^16 wrap
	switch {
	case d <= 0:
		f.Stats.Duplicates++
		return dst
	case d > maxSeqGap:
		return f.start(dst, p)
	case d > 1:
		dst = append(dst, Event{Kind: EventLost, SSRC: h.SSRC, Sequence: f.lastSeq + 1, Lost: d - 1})
		f.Stats.Lost += d - 1
	}
	if f.TimestampStep != 0 && h.Timestamp-f.lastTS != uint32(d)*f.TimestampStep {
		f.Stats.TimestampJumps++
	}
	return f.frame(dst, p)
}

func (f *Follower) start(dst []Event, p *pionrtp.Packet) []Event {
	f.active, f.ssrc = true, p.SSRC
	f.Stats.Streams++
	dst = append(dst, Event{Kind: EventStart, SSRC: p.SSRC, Sequence: p.SequenceNumber, Timestamp: p.Timestamp, Marker: p.Marker})
	return f.frame(dst, p)
}

func (f *Follower) frame(dst []Event, p *pionrtp.Packet) []Event {
	f.lastSeq, f.lastTS = p.SequenceNumber, p.Timestamp
	f.Stats.Frames++
	if p.Marker {
		f.Stats.Markers++
	}
	return append(dst, Event{Kind: EventFrame, SSRC: p.SSRC, Sequence: p.SequenceNumber, Timestamp: p.Timestamp, Marker: p.Marker, Payload: p.Payload})
}
