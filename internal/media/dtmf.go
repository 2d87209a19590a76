package media

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Digit is a DTMF key: '0'-'9', '*', '#' or 'A'-'D'.
type Digit rune

const dtmfKeys = "0123456789*#ABCD"

// EventCode returns the RFC 4733 event code of a key (case-insensitive).
func EventCode(d rune) (uint8, bool) {
	if d >= 'a' && d <= 'd' {
		d -= 'a' - 'A'
	}
	i := strings.IndexRune(dtmfKeys, d)
	if i < 0 {
		return 0, false
	}
	return uint8(i), true
}

// DigitOf returns the key of an RFC 4733 event code (0-15).
func DigitOf(code uint8) (Digit, bool) {
	if int(code) >= len(dtmfKeys) {
		return 0, false
	}
	return Digit(dtmfKeys[code]), true
}

// Event is an RFC 4733 telephone-event payload.
type Event struct {
	Code     uint8
	End      bool
	Volume   uint8  // 0-63, in -dBm0
	Duration uint16 // in RTP clock units since the event started
}

// ParseEvent reads a 4-byte telephone-event payload.
func ParseEvent(b []byte) (Event, error) {
	if len(b) < 4 {
		return Event{}, errors.New("telephone-event: payload shorter than 4 bytes")
	}
	return Event{
		Code:     b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3f,
		Duration: uint16(b[2])<<8 | uint16(b[3]),
	}, nil
}

// Append appends the 4-byte payload of e to dst.
func (e Event) Append(dst []byte) []byte {
	b1 := e.Volume & 0x3f
	if e.End {
		b1 |= 0x80
	}
	return append(dst, e.Code, b1, byte(e.Duration>>8), byte(e.Duration))
}

// dtmfDetector turns a stream of event packets into one report per key
// press: events are told apart by their RTP timestamp.
type dtmfDetector struct {
	lastTS uint32
	seen   bool
}

func (d *dtmfDetector) observe(ts uint32, ev Event) (Digit, bool) {
	if d.seen && ts == d.lastTS {
		return 0, false
	}
	dg, ok := DigitOf(ev.Code)
	if !ok {
		return 0, false
	}
	d.lastTS, d.seen = ts, true
	return dg, true
}

// ErrNoDTMF is returned by SendDTMF when the remote did not agree to
// telephone-event.
var ErrNoDTMF = errors.New("media: remote did not negotiate telephone-event")

// dtmfVolume is the level sent in events (-10 dBm0, a typical phone level).
const dtmfVolume = 10

// SendDTMF sends digits as RFC 4733 events, each held for on and followed
// by gap (both rounded up to 20 ms, on at least 40 ms), paced with the
// leg's other audio, and returns when the last one has been sent.
func (l *Leg) SendDTMF(ctx context.Context, digits string, on, gap time.Duration) error {
	items, err := l.dtmfItems(digits, on, gap)
	if err != nil || len(items) == 0 {
		return err
	}
	return l.enqueueWait(ctx, items)
}

// QueueDTMF queues, without waiting, a pause of before, digits as SendDTMF
// sends them, and a pause of after (pauses rounded up to 20 ms): a SIP
// amplifier's settle, zone code and after_code, timed by the pacer alone,
// so that audio queued behind them (PlayEncodedAt) starts when planned
// whatever the scheduler does to the caller. Cancelling is closing the leg.
func (l *Leg) QueueDTMF(digits string, on, gap, before, after time.Duration) error {
	items, err := l.dtmfItems(digits, on, gap)
	if err != nil {
		return err
	}
	pause := func(d time.Duration) []outFrame { return make([]outFrame, frames(d)) }
	items = append(append(pause(before), items...), pause(after)...)
	for i := range items {
		if items[i].payload == nil {
			items[i].skip = true
		}
	}
	if len(items) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return ErrClosed
	case !l.negotiated:
		return ErrNotNegotiated
	}
	l.queue = append(l.queue, items...)
	return nil
}

// frames is d in 20 ms frames, rounded up.
func frames(d time.Duration) int { return int((d + FrameDuration - 1) / FrameDuration) }

// dtmfItems are the queue items that send digits as RFC 4733 events.
func (l *Leg) dtmfItems(digits string, on, gap time.Duration) ([]outFrame, error) {
	l.mu.Lock()
	neg, ok := l.neg, l.negotiated
	l.mu.Unlock()
	if !ok {
		return nil, ErrNotNegotiated
	}
	if !neg.DTMF {
		return nil, ErrNoDTMF
	}
	onN := max(frames(on), 2)
	gapN := frames(gap)
	per := uint16(neg.DTMFRate / 50) // duration units per 20 ms packet
	var items []outFrame
	for _, r := range digits {
		code, ok := EventCode(r)
		if !ok {
			return nil, fmt.Errorf("media: %q is not a DTMF key", r)
		}
		for i := 0; i < onN; i++ {
			ev := Event{Code: code, Volume: dtmfVolume, Duration: uint16(i+1) * per}
			items = append(items, outFrame{payload: ev.Append(nil), dtmf: true, cont: i > 0})
		}
		end := Event{Code: code, End: true, Volume: dtmfVolume, Duration: uint16(onN) * per}
		for i := 0; i < 3; i++ { // the end packet is sent three times (RFC 4733 2.5.1.4)
			items = append(items, outFrame{payload: end.Append(nil), dtmf: true, cont: true})
		}
		for i := 0; i < gapN; i++ {
			items = append(items, outFrame{skip: true})
		}
	}
	return items, nil
}
