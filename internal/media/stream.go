package media

import (
	"time"
)

// outStream is the sending side of a leg: one SSRC whose sequence number
// and timestamp run on whatever the leg plays (prompt, music, DTMF, relayed
// audio), so every switch looks to the receiver like a talkspurt in one
// stream rather than a new stream.
type outStream struct {
	ssrc  uint32
	seq   uint16 // last sequence number sent
	ts    uint32 // last timestamp sent
	clock uint32 // RTP clock rate of the leg's codec
	last  time.Time
	sent  bool // anything sent yet
	// mark sets the marker bit on the next packet (start of a talkspurt).
	mark bool
	// lastTick is the pacer tick of the last paced packet that moved the
	// timestamp (0 after relayed packets).
	lastTick uint64

	// resumed: the stream was taken over from an earlier process; its
	// next paced packet counts the packets of the gap as sent (lost).
	resumed bool

	// Relay anchoring: out = in + offset for the current source.
	relaySSRC  uint32
	relayValid bool
	seqOff     uint16
	tsOff      uint32
}

// advance returns the header fields for the next paced packet, sent on
// pacer tick n, of step timestamp units per tick. Timestamps follow the
// tick count, so pauses (DTMF gaps, an idle leg) keep audio time exact;
// after relayed audio they continue from wall-clock time.
func (o *outStream) advance(now time.Time, n uint64, step uint32) (seq uint16, ts uint32, marker bool) {
	o.relayValid = false
	switch {
	case !o.sent:
		o.mark = true
	case o.lastTick != 0 && n > o.lastTick:
		k := n - o.lastTick
		o.ts += uint32(k) * step
		if k > 3 {
			o.mark = true
		}
	default:
		e := max(o.elapsed(now), step)
		if o.resumed && step > 0 {
			o.seq += uint16(e/step - 1) // emit adds the last one
		}
		o.ts += e
		o.mark = true
	}
	o.resumed = false
	o.lastTick = n
	return o.emit(now)
}

// follow returns the header fields for a paced packet of live audio that
// continues the previous one: the talker's audio is contiguous, so a
// frame that arrived a few ticks late (network jitter, a 30 ms sender's
// frames coming 1.5 at a time, the last frame of a page known only when its
// End comes) keeps the timestamp running (+step) instead of jumping by the
// ticks it waited. After a longer pause (more than maxFollow ticks) it is a
// new talkspurt, as advance makes it.
func (o *outStream) follow(now time.Time, n uint64, step uint32) (seq uint16, ts uint32, marker bool) {
	if !o.sent || o.lastTick == 0 || n <= o.lastTick || n-o.lastTick > maxFollow {
		return o.advance(now, n, step)
	}
	o.relayValid = false
	o.ts += step
	o.lastTick = n
	return o.emit(now)
}

// maxFollow is the longest wait, in ticks (100 ms), after which live audio
// still continues the previous packet's timestamp.
const maxFollow = 5

// same returns header fields for another packet with the last timestamp
// (RFC 4733 event updates). The tick anchor stays at the event start, so
// the audio after the event lands where wall time says.
func (o *outStream) same(now time.Time) (uint16, uint32, bool) {
	return o.emit(now)
}

func (o *outStream) elapsed(now time.Time) uint32 {
	d := now.Sub(o.last)
	if d < 0 {
		d = 0
	}
	return uint32(d.Seconds() * float64(o.clock))
}

func (o *outStream) emit(now time.Time) (uint16, uint32, bool) {
	o.seq++
	o.sent = true
	o.last = now
	m := o.mark
	o.mark = false
	return o.seq, o.ts, m
}

// relay maps a packet from another stream (same clock rate) onto this one,
// keeping the source's sequence gaps and timestamp spacing. The first
// packet of a new source continues this stream where it left off.
func (o *outStream) relay(now time.Time, ssrc uint32, inSeq uint16, inTS uint32) (seq uint16, ts uint32, marker bool) {
	if !o.relayValid || ssrc != o.relaySSRC {
		nextSeq := o.seq + 1
		nextTS := o.ts
		if o.sent {
			e := o.elapsed(now)
			if e == 0 {
				e = 1
			}
			nextTS += e
		}
		o.relaySSRC, o.relayValid = ssrc, true
		o.seqOff = nextSeq - inSeq
		o.tsOff = nextTS - inTS
		o.mark = true
	}
	o.lastTick = 0
	seq, ts = inSeq+o.seqOff, inTS+o.tsOff
	// Only move forward: a reordered late packet keeps its mapped numbers
	// but does not pull the stream back.
	if int16(seq-o.seq) > 0 || !o.sent {
		o.seq = seq
	}
	if int32(ts-o.ts) > 0 || !o.sent {
		o.ts = ts
	}
	o.sent = true
	o.last = now
	marker = o.mark
	o.mark = false
	return seq, ts, marker
}

// next returns header fields for a packet of step units generated as
// audio arrives (transcoded relay): consecutive packets advance by step,
// and after a pause the timestamp catches up with wall time. cont says
// the audio continues the last packet in the sender's own timing: it
// advances by step however long ago that packet went out, unless this
// stream sent something else since (paced audio).
func (o *outStream) next(now time.Time, step uint32, cont bool) (seq uint16, ts uint32, marker bool) {
	paced := o.lastTick != 0
	o.relayValid = false
	o.lastTick = 0
	switch {
	case !o.sent:
		o.mark = true
	case cont && !paced:
		o.ts += step
	case now.Sub(o.last) > 3*FrameDuration:
		o.ts += max(o.elapsed(now), step)
		o.mark = true
	default:
		o.ts += step
	}
	return o.emit(now)
}
