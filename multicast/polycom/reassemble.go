package polycom

import (
	"time"
)

// EventKind says what a reassembler Event reports.
type EventKind uint8

// Event kinds, in the order a clean page produces them: Start, Frame…, End.
const (
	EventStart EventKind = iota + 1 // a page began (first Alert, or first Transmit if alerts are not required)
	EventFrame                      // one frame of audio, in sample-count order
	EventLost                       // Lost frames are missing: neither they nor their redundant copy arrived
	EventEnd                        // the page is over; Reason says why
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
	case EventEnd:
		return "end"
	}
	return "unknown"
}

// EndReason says why a page ended.
type EndReason uint8

// End reasons.
const (
	EndPacket     EndReason = iota + 1 // End packets arrived
	EndTimeout                         // the channel went silent
	EndSuperseded                      // a sender with a lower host serial took the channel
)

// Event is one step of a received page.
type Event struct {
	Kind       EventKind
	HostSerial uint32
	CallerID   string // set on EventStart
	Codec      Codec  // set on EventFrame
	// SampleCount is the 8 kHz timestamp of Frame, or of the first lost frame.
	SampleCount uint32
	// Frame aliases the packet passed to Push; copy it to keep it.
	Frame     []byte
	Recovered bool // Frame came from the redundant copy in the next packet
	Lost      int  // EventLost: number of frames missing
	// FrameTicks is the length of one frame in 8 kHz sample-count ticks
	// (EventFrame, EventLost): 160 for 20 ms, 240 for 30 ms.
	FrameTicks uint32
	Reason     EndReason // EventEnd
}

// ReassemblerStats counts what a Reassembler has seen.
type ReassemblerStats struct {
	Alerts, Transmits, Ends int
	Frames                  int // frames delivered, including recovered ones
	Recovered               int // frames taken from the redundant copy
	Lost                    int // frames neither received nor recovered
	Duplicates              int // Transmits at or before the last delivered sample count
	Ignored                 int // other channel, losing serial, or Transmit without Alert
}

// Reassembler follows the pages on one channel as a phone would: a page
// starts with an Alert, frames are delivered in sample-count order with the
// redundant copy filling a single lost packet, and it ends on an End packet,
// on silence longer than Timeout, or when a lower host serial takes over.
// It does no I/O and takes the time of every call, so it is deterministic.
type Reassembler struct {
	Channel int           // channel to follow
	Timeout time.Duration // silence that ends a page (default 500 ms)
	// AcceptWithoutAlert starts a page on a Transmit when its Alerts were missed.
	AcceptWithoutAlert bool
	// EndsRequired is how many End packets end a page (default 1; one receiver uses 3).
	EndsRequired int

	Stats ReassemblerStats

	active    bool
	serial    uint32
	lastSeen  time.Time
	haveFrame bool
	lastCount uint32
	ends      int
}

// DefaultReceiveTimeout is the silence after which a page counts as ended.
const DefaultReceiveTimeout = 500 * time.Millisecond

// Active reports whether a page is in progress, and its sender.
func (r *Reassembler) Active() (serial uint32, ok bool) { return r.serial, r.active }

// Tick ends the current page if the channel has been silent for longer than
// Timeout at now, appending the EventEnd to dst.
func (r *Reassembler) Tick(dst []Event, now time.Time) []Event {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultReceiveTimeout
	}
	if r.active && now.Sub(r.lastSeen) > timeout {
		dst = r.end(dst, EndTimeout)
	}
	return dst
}

func (r *Reassembler) end(dst []Event, why EndReason) []Event {
	r.active = false
	return append(dst, Event{Kind: EventEnd, HostSerial: r.serial, Reason: why})
}

func (r *Reassembler) start(dst []Event, p *Packet, now time.Time) []Event {
	r.active, r.serial, r.lastSeen = true, p.HostSerial, now
	r.haveFrame, r.ends = false, 0
	return append(dst, Event{Kind: EventStart, HostSerial: p.HostSerial, CallerID: p.CallerID})
}

// Push feeds one packet received at now and appends the resulting events to dst.
func (r *Reassembler) Push(dst []Event, now time.Time, p *Packet) []Event {
	if int(p.Channel) != r.Channel {
		r.Stats.Ignored++
		return dst
	}
	switch p.Op {
	case OpAlert:
		r.Stats.Alerts++
	case OpTransmit:
		r.Stats.Transmits++
	case OpEnd:
		r.Stats.Ends++
	}
	dst = r.Tick(dst, now)
	if r.active && p.HostSerial != r.serial {
		// EA 70568: on a collision the lowest serial keeps the channel.
		if p.HostSerial > r.serial || p.Op == OpEnd {
			r.Stats.Ignored++
			return dst
		}
		dst = r.end(dst, EndSuperseded)
	}
	switch p.Op {
	case OpAlert:
		if !r.active {
			return r.start(dst, p, now)
		}
		r.lastSeen = now
	case OpTransmit:
		if !r.active {
			if !r.AcceptWithoutAlert {
				r.Stats.Ignored++
				return dst
			}
			dst = r.start(dst, p, now)
		}
		r.lastSeen = now
		return r.transmit(dst, p)
	case OpEnd:
		// Ends after the page already ended are the rest of its burst.
		if !r.active {
			return dst
		}
		r.lastSeen = now
		r.ends++
		need := r.EndsRequired
		if need <= 0 {
			need = 1
		}
		if r.ends >= need {
			return r.end(dst, EndPacket)
		}
	}
	return dst
}

// maxGapFrames bounds the gap reported as lost frames; a larger jump in the
// sample count is a discontinuity, not loss, and restarts the sequence.
const maxGapFrames = 250

func (r *Reassembler) transmit(dst []Event, p *Packet) []Event {
	step := p.Codec.frameTicks(len(p.Current))
	frame := func(count uint32, b []byte, recovered bool) {
		dst = append(dst, Event{Kind: EventFrame, HostSerial: p.HostSerial, Codec: p.Codec, SampleCount: count, Frame: b, Recovered: recovered, FrameTicks: step})
		r.Stats.Frames++
		if recovered {
			r.Stats.Recovered++
		}
	}
	if !r.haveFrame || step == 0 {
		r.haveFrame, r.lastCount = true, p.SampleCount
		frame(p.SampleCount, p.Current, false)
		return dst
	}
	d := int64(int32(p.SampleCount - r.lastCount)) // serial-number arithmetic across the 2^32 wrap
	switch {
	case d <= 0:
		r.Stats.Duplicates++
		return dst
	case d > int64(step)*maxGapFrames:
		// Discontinuity: take the new sequence as it comes.
	case d > int64(step):
		gap := int(d/int64(step)) - 1 // frames between the last delivered one and Current
		recover := gap > 0 && len(p.Redundant) > 0
		lost := gap
		if recover {
			lost-- // the frame just before Current rides along as Redundant
		}
		if lost > 0 {
			dst = append(dst, Event{Kind: EventLost, HostSerial: p.HostSerial, SampleCount: r.lastCount + step, Lost: lost, FrameTicks: step})
			r.Stats.Lost += lost
		}
		if recover {
			frame(p.SampleCount-step, p.Redundant, true)
		}
	}
	r.lastCount = p.SampleCount
	frame(p.SampleCount, p.Current, false)
	return dst
}
