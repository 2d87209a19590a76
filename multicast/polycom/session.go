package polycom

import (
	"errors"
	"fmt"
	"time"
)

// Timing is the cadence of a page. The defaults follow EA 70568 and its
// capture; the counts and intervals are partly inferred (the advisory's prose
// and capture disagree), so they are configurable.
type Timing struct {
	AlertCount    int           // Alert packets before the audio (default 31)
	AlertInterval time.Duration // between Alerts, and from the last Alert to the first Transmit (default 30 ms)
	FrameInterval time.Duration // between Transmits = frame duration (default 20 ms)
	EndDelay      time.Duration // from the last Transmit to the first End (default 50 ms)
	EndCount      int           // End packets (default 12)
	EndInterval   time.Duration // between Ends (default 30 ms)
}

// DefaultTiming returns the cadence real phones use.
func DefaultTiming() Timing {
	return Timing{
		AlertCount:    31,
		AlertInterval: 30 * time.Millisecond,
		FrameInterval: 20 * time.Millisecond,
		EndDelay:      50 * time.Millisecond,
		EndCount:      12,
		EndInterval:   30 * time.Millisecond,
	}
}

// Preamble is how long a page sends Alerts before its first Transmit (the
// first audio): AlertCount × AlertInterval, 0.93 s with the phones'
// cadence. Zero fields take the defaults.
func (t Timing) Preamble() time.Duration {
	t = t.withDefaults()
	return time.Duration(t.AlertCount) * t.AlertInterval
}

// withDefaults fills zero fields from DefaultTiming.
func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	if t.AlertCount == 0 {
		t.AlertCount = d.AlertCount
	}
	if t.AlertInterval == 0 {
		t.AlertInterval = d.AlertInterval
	}
	if t.FrameInterval == 0 {
		t.FrameInterval = d.FrameInterval
	}
	if t.EndDelay == 0 {
		t.EndDelay = d.EndDelay
	}
	if t.EndCount == 0 {
		t.EndCount = d.EndCount
	}
	if t.EndInterval == 0 {
		t.EndInterval = d.EndInterval
	}
	return t
}

// Config describes one page on one channel. Zero values take the defaults
// given per field.
type Config struct {
	Channel    int    // 1–50, required
	HostSerial uint32 // sender identity, used as given (phones use the last 4 bytes of their MAC)
	CallerID   string // shown on the phones; truncated to 13 bytes; "" = DefaultCallerID
	Codec      Codec  // CodecG711U (default, zero) or CodecG722; CodecG711A needs AllowG711A
	// AllowG711A permits CodecG711A (0x08), which only one open-source sender uses.
	AllowG711A bool
	// FirstSampleCount is the sample count of the first frame. Phones start at
	// a random value; callers should pass one (e.g. rand.Uint32()).
	FirstSampleCount uint32
	Timing           Timing // zero fields = DefaultTiming
}

// Validate checks the fields a sender controls; each error names its field.
func (c *Config) Validate() error {
	var errs []error
	if !validChannel(c.Channel) {
		errs = append(errs, fmt.Errorf("channel %d: must be %d-%d", c.Channel, MinChannel, MaxChannel))
	}
	switch c.Codec {
	case CodecG711U, CodecG722:
	case CodecG711A:
		if !c.AllowG711A {
			errs = append(errs, fmt.Errorf("codec %s: phones do not document 0x08; set allow_g711a to send it anyway", c.Codec))
		}
	default:
		errs = append(errs, fmt.Errorf("codec %s: can send g711u or g722 only", c.Codec))
	}
	t := c.Timing.withDefaults()
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"alert_interval", t.AlertInterval}, {"frame_interval", t.FrameInterval}, {"end_delay", t.EndDelay}, {"end_interval", t.EndInterval}} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("timing.%s %v: must not be negative", f.name, f.d))
		}
	}
	if t.FrameInterval > 0 && t.FrameInterval%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("timing.frame_interval %v: must be whole milliseconds", t.FrameInterval))
	}
	if t.AlertCount < 0 {
		errs = append(errs, fmt.Errorf("timing.alert_count %d: must not be negative", t.AlertCount))
	}
	if t.EndCount < 0 {
		errs = append(errs, fmt.Errorf("timing.end_count %d: must not be negative", t.EndCount))
	}
	return errors.Join(errs...)
}

type phase uint8

const (
	phaseAlert phase = iota
	phaseTransmit
	phaseEnd
	phaseDone
)

// Session yields the packets of one page in order with their due times
// (offsets from the start of the page): AlertCount Alerts, one Transmit per
// frame, then after EndDelay EndCount Ends. Stop cuts the audio short and goes
// straight to the End burst. A Session is not safe for concurrent use; it
// never modifies the frames it is given, so several sessions (and other
// outputs) can share them.
type Session struct {
	hdr    [HeaderLen]byte // prebuilt header; byte 0 is rewritten per op
	codec  Codec
	t      Timing
	step   uint32 // sample-count ticks per frame
	count0 uint32
	frames [][]byte

	ph      phase
	i       int           // index within the phase
	due     time.Duration // due time of the next packet
	lastDue time.Duration // due time of the last packet appended
	emitted bool
	stopped bool   // Stop was called: Rewind cannot replay past it
	n       int    // packets appended
	scratch []byte // Rewind's replay buffer
}

// FrameBytes is the size of one frame of d of codec c: G.711 and G.722
// (64 kbit/s) carry 8 bytes per ms (160 per 20 ms, 240 per 30 ms), G.726-QI
// at 24 kbit/s 3 bytes per ms (60, 90).
func FrameBytes(c Codec, d time.Duration) int {
	ms := int(d / time.Millisecond)
	if c == CodecG726QI {
		return ms * 3
	}
	return ms * 8
}

// idleByte is a byte of silence in codec c, to pad a frame: µ-law and A-law
// zero, and the byte G.722's encoder emits for silence from its reset state.
func idleByte(c Codec) byte {
	switch c {
	case CodecG711U:
		return 0xFF
	case CodecG711A:
		return 0xD5
	case CodecG722:
		return 0xFA
	}
	return 0
}

// renderedFrame is the frame size parkpage renders audio in: 20 ms of G.711
// or G.722.
const renderedFrame = 160

// Reframe cuts the audio of frames (any sizes, in order) into frames of size
// bytes, padding the last with silence of codec c. A page rendered in 20 ms
// frames goes out in 30 ms frames this way: three become two.
func Reframe(c Codec, frames [][]byte, size int) [][]byte {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	if n == 0 || size <= 0 {
		return nil
	}
	all := make([]byte, 0, (n+size-1)/size*size)
	for _, f := range frames {
		all = append(all, f...)
	}
	for len(all)%size != 0 {
		all = append(all, idleByte(c))
	}
	out := make([][]byte, 0, len(all)/size)
	for i := 0; i < len(all); i += size {
		out = append(out, all[i:i+size:i+size])
	}
	return out
}

// NewSession validates cfg and prepares the page for frames, each one frame
// of FrameInterval of cfg.Codec audio (160 bytes for 20 ms of G.711 or
// G.722, 240 for 30 ms). With a 30 ms FrameInterval, 20 ms frames are also
// accepted and regrouped (Reframe); then the frames are copied.
func NewSession(cfg Config, frames [][]byte) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("polycom session: %w", err)
	}
	t := cfg.Timing.withDefaults()
	want := FrameBytes(cfg.Codec, t.FrameInterval)
	if want != renderedFrame && allSized(frames, renderedFrame) {
		frames = Reframe(cfg.Codec, frames, want)
	}
	for i, f := range frames {
		if len(f) != want {
			return nil, fmt.Errorf("polycom session: frame %d: %d bytes, want %d for %v of %s", i, len(f), want, t.FrameInterval, cfg.Codec)
		}
	}
	id := cfg.CallerID
	if id == "" {
		id = DefaultCallerID
	}
	s := &Session{
		codec:  cfg.Codec,
		t:      t,
		count0: cfg.FirstSampleCount,
		frames: frames,
	}
	appendHeader(s.hdr[:0], OpAlert, uint8(cfg.Channel), cfg.HostSerial, id)
	s.step = uint32(s.t.FrameInterval / time.Millisecond * SampleRate / 1000)
	s.enter(phaseAlert, 0)
	return s, nil
}

// enter moves to phase p with its first packet due at d. Counts are ≥ 1
// (zero means default), so only the Transmit phase can be empty.
func (s *Session) enter(p phase, d time.Duration) {
	s.ph, s.i, s.due = p, 0, d
	if p == phaseTransmit && len(s.frames) == 0 {
		// No audio: the End burst follows the Alerts after EndDelay, as it
		// would follow the last Transmit.
		s.enter(phaseEnd, s.lastDue+s.t.EndDelay)
	}
}

// Due reports when the next packet is due, as an offset from the start of
// the page; ok is false once the session is over.
func (s *Session) Due() (due time.Duration, ok bool) {
	return s.due, s.ph != phaseDone
}

// Append appends the next packet to dst and advances the session. It returns
// dst unchanged when the session is over.
func (s *Session) Append(dst []byte) []byte {
	if s.ph == phaseDone {
		return dst
	}
	s.lastDue, s.emitted = s.due, true
	s.n++
	switch s.ph {
	case phaseAlert:
		dst = appendPrebuilt(dst, &s.hdr, OpAlert)
		s.i++
		s.due += s.t.AlertInterval
		if s.i == s.t.AlertCount {
			s.enter(phaseTransmit, s.due)
		}
	case phaseTransmit:
		dst = appendPrebuilt(dst, &s.hdr, OpTransmit)
		count := s.count0 + uint32(s.i)*s.step // wraps at 2^32 as it should
		dst = append(dst, byte(s.codec), 0, byte(count>>24), byte(count>>16), byte(count>>8), byte(count))
		if s.i > 0 {
			dst = append(dst, s.frames[s.i-1]...)
		}
		dst = append(dst, s.frames[s.i]...)
		s.i++
		s.due += s.t.FrameInterval
		if s.i == len(s.frames) {
			s.enter(phaseEnd, s.lastDue+s.t.EndDelay)
		}
	case phaseEnd:
		dst = appendPrebuilt(dst, &s.hdr, OpEnd)
		s.i++
		s.due += s.t.EndInterval
		if s.i == s.t.EndCount {
			s.ph = phaseDone
		}
	}
	return dst
}

func allSized(frames [][]byte, n int) bool {
	for _, f := range frames {
		if len(f) != n {
			return false
		}
	}
	return len(frames) > 0
}

// appendPrebuilt appends a prebuilt header with its op byte set.
func appendPrebuilt(dst []byte, hdr *[HeaderLen]byte, op Op) []byte {
	n := len(dst)
	dst = append(dst, hdr[:]...)
	dst[n] = byte(op)
	return dst
}

// Stop ends the page early (pickup, pre-emption): no more Alerts or
// Transmits; the End burst starts EndDelay after the last appended packet.
// If nothing was appended yet the session ends silently, and once the End
// burst has begun Stop changes nothing.
func (s *Session) Stop() {
	s.stopped = true
	switch {
	case s.ph == phaseEnd || s.ph == phaseDone:
	case !s.emitted:
		s.ph = phaseDone
	default:
		s.enter(phaseEnd, s.lastDue+s.t.EndDelay)
	}
}

// Rewind takes back the last n packets appended (the pacer built them
// ahead of their due time and cancelled them before they left): the
// session continues from the first of them, as if they had never been
// appended, so a Stop that follows starts the End burst after the last
// packet that really went out. It replays the page from its start (a rare
// event, and a page is short); it is not meant for after Stop.
func (s *Session) Rewind(n int) {
	if n <= 0 || s.stopped {
		return
	}
	keep := max(s.n-n, 0)
	s.n, s.emitted, s.lastDue = 0, false, 0
	s.enter(phaseAlert, 0)
	for s.n < keep {
		s.scratch = s.Append(s.scratch[:0])
	}
}

// Len returns the number of packets a full (unstopped) page sends.
func (s *Session) Len() int { return s.t.AlertCount + len(s.frames) + s.t.EndCount }

// FrameTicks is the sample-count increment per frame (160 for 20 ms).
func (s *Session) FrameTicks() uint32 { return s.step }
