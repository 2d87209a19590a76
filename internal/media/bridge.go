package media

import (
	"errors"
	"sync"
	"time"

	"github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/codec"
)

// Bridge relays RTP both ways between two legs (see the package doc for
// why parkpage bridges rather than re-INVITEs). Close it to unbridge;
// closing either leg closes the bridge.
type Bridge struct {
	a, b   *Leg
	ab, ba *bridgeDir
	once   sync.Once
	done   chan struct{}
}

// bridgeDir relays packets received on from to to.
type bridgeDir struct {
	br       *Bridge
	from, to *Leg

	mu        sync.Mutex // one receive goroutine calls forward; Close may race it
	transcode bool
	dec       codec.Decoder
	enc       codec.Encoder
	pcm       []int16
	payload   []byte
	// Event timestamp mapping when transcoding (different clocks/streams).
	evIn    uint32
	evOut   uint32
	evValid bool
	// The last audio packet in, when transcoding: a packet that follows
	// it in the sender's own sequence and timestamps continues the output
	// stream (+1 frame) however late it arrived, so a stall on our side
	// (or the network's) does not put a jump into the callers' audio.
	inSSRC  uint32
	inSeq   uint16
	inTS    uint32
	inStep  uint32 // the sender's timestamp step per packet, once seen
	inValid bool
}

// continues reports whether audio packet h follows the last one in the
// sender's stream, and records it as the last.
func (d *bridgeDir) continues(h *rtp.Header) bool {
	next := d.inValid && h.SSRC == d.inSSRC && h.SequenceNumber == d.inSeq+1
	cont := next && (d.inStep == 0 || h.Timestamp-d.inTS == d.inStep)
	if next {
		d.inStep = h.Timestamp - d.inTS
	}
	d.inSSRC, d.inSeq, d.inTS, d.inValid = h.SSRC, h.SequenceNumber, h.Timestamp, true
	return cont
}

// ErrBridged is returned when a leg is already in a bridge.
var ErrBridged = errors.New("media: leg is already bridged")

// NewBridge connects a and b. Both must be negotiated. Their music and
// queued audio stop; each leg's outgoing stream continues (same SSRC, next
// sequence number, wall-clock timestamp, marker set) with the other's audio.
func NewBridge(a, b *Leg) (*Bridge, error) {
	if a == b {
		return nil, errors.New("media: cannot bridge a leg to itself")
	}
	na, oka := a.Negotiated()
	nb, okb := b.Negotiated()
	if !oka || !okb {
		return nil, ErrNotNegotiated
	}
	br := &Bridge{a: a, b: b, done: make(chan struct{})}
	transcode := na.Codec.Name != nb.Codec.Name
	br.ab = &bridgeDir{br: br, from: a, to: b, transcode: transcode}
	br.ba = &bridgeDir{br: br, from: b, to: a, transcode: transcode}
	if transcode {
		for _, d := range []*bridgeDir{br.ab, br.ba} {
			fn, _ := d.from.Negotiated()
			tn, _ := d.to.Negotiated()
			dec, err := codec.NewDecoder(fn.Codec.Name)
			if err != nil {
				return nil, err
			}
			enc, err := codec.NewEncoder(tn.Codec.Name)
			if err != nil {
				return nil, err
			}
			d.dec, d.enc = dec, enc
		}
	}
	// Lock in address order so two bridges built at once cannot deadlock.
	first, second := a, b
	if a.port > b.port {
		first, second = b, a
	}
	first.mu.Lock()
	second.mu.Lock()
	if a.closed || b.closed {
		second.mu.Unlock()
		first.mu.Unlock()
		return nil, ErrClosed
	}
	if a.bridge != nil || b.bridge != nil {
		second.mu.Unlock()
		first.mu.Unlock()
		return nil, ErrBridged
	}
	var dropped []outFrame
	for _, l := range []*Leg{a, b} {
		if l.music != nil {
			l.music.release()
			l.music = nil
		}
		dropped = append(dropped, l.queue...)
		l.queue = nil
		l.out.relayValid = false
		l.out.mark = true
	}
	a.bridge, b.bridge = br.ab, br.ba
	second.mu.Unlock()
	first.mu.Unlock()
	a.kickReader()
	b.kickReader()
	dropFrames(dropped)
	return br, nil
}

// Transcoding reports whether the legs use different codecs.
func (br *Bridge) Transcoding() bool { return br.ab.transcode }

// Done is closed when the bridge is closed.
func (br *Bridge) Done() <-chan struct{} { return br.done }

// Close unbridges the legs; they stay open and silent.
func (br *Bridge) Close() {
	br.once.Do(func() {
		for _, d := range []*bridgeDir{br.ab, br.ba} {
			l := d.from
			l.mu.Lock()
			if l.bridge == d {
				l.bridge = nil
			}
			l.mu.Unlock()
			d.to.mu.Lock()
			d.to.out.relayValid = false
			d.to.out.lastTick = 0
			d.to.mu.Unlock()
		}
		close(br.done)
	})
}

// forward relays one packet received on d.from.
func (d *bridgeDir) forward(h *rtp.Header, payload []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fn, _ := d.from.Negotiated()
	to := d.to
	now := time.Now()
	to.mu.Lock()
	defer to.mu.Unlock()
	if to.closed || to.bridge == nil {
		return
	}
	tn := to.neg
	switch {
	case fn.DTMF && h.PayloadType == fn.DTMFPT:
		if !tn.DTMF {
			return // the other side cannot take telephone-event
		}
		if !d.transcode {
			seq, ts, m := to.out.relay(now, h.SSRC, h.SequenceNumber, h.Timestamp)
			_ = to.sendLocked(tn.DTMFPT, seq, ts, m || h.Marker, payload)
			return
		}
		ev, err := ParseEvent(payload)
		if err != nil {
			return
		}
		if !d.evValid || h.Timestamp != d.evIn {
			d.evIn, d.evValid = h.Timestamp, true
			seq, ts, _ := to.out.next(now, tn.Codec.TimestampStep, false)
			d.evOut = ts
			_ = to.sendLocked(tn.DTMFPT, seq, ts, true, rescaleEvent(ev, fn.DTMFRate, tn.DTMFRate).Append(d.payload[:0]))
			return
		}
		seq, _, _ := to.out.same(now)
		_ = to.sendLocked(tn.DTMFPT, seq, d.evOut, false, rescaleEvent(ev, fn.DTMFRate, tn.DTMFRate).Append(d.payload[:0]))
	case h.PayloadType == fn.PT:
		if !d.transcode {
			seq, ts, m := to.out.relay(now, h.SSRC, h.SequenceNumber, h.Timestamp)
			_ = to.sendLocked(tn.PT, seq, ts, m || h.Marker, payload)
			return
		}
		cont := d.continues(h)
		pcm, err := d.dec.Decode(d.pcm, payload)
		if err != nil {
			return
		}
		d.pcm = pcm
		for len(d.pcm) >= codec.FrameSamples {
			p, err := d.enc.Encode(d.payload[:0], d.pcm[:codec.FrameSamples])
			d.pcm = append(d.pcm[:0], d.pcm[codec.FrameSamples:]...)
			if err != nil {
				continue
			}
			d.payload = p
			seq, ts, m := to.out.next(now, tn.Codec.TimestampStep, cont)
			cont = true // the frames of one packet follow each other
			_ = to.sendLocked(tn.PT, seq, ts, m, p)
		}
	}
}

func rescaleEvent(ev Event, from, to uint32) Event {
	if from == to || from == 0 {
		return ev
	}
	ev.Duration = uint16(uint64(ev.Duration) * uint64(to) / uint64(from))
	return ev
}
