package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"golang.org/x/net/ipv4"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/pacer"
)

// FrameDuration is the packet time parkpage sends.
const FrameDuration = pacer.Frame

// Config configures an Engine.
type Config struct {
	// IP is the local address RTP sockets bind to. An unspecified address
	// (0.0.0.0) binds all; then Advertise (or a leg's own) must be set.
	IP netip.Addr
	// Advertise is the address written in SDP. Default: IP.
	Advertise netip.Addr
	// PortMin and PortMax bound the RTP ports (sip.rtp_ports).
	PortMin, PortMax int
	// Codecs limits what is offered and accepted. Empty: all of
	// codec.All() (G.722, Opus, PCMU, PCMA in that preference).
	Codecs []codec.Name
	// Music is a WAV file or a directory of WAV files for hold music.
	// Empty: the built-in default.
	Music string
	// Pacer is the appliance's sending loop, shared with the other
	// senders (multicast pages); its owner runs it. Nil: the engine makes
	// its own and Run runs it.
	Pacer *pacer.Pacer
	// Realtime asks for SCHED_FIFO priority for the engine's own pacer
	// thread (ignored with a shared Pacer, which has its own setting).
	Realtime bool
	// ReadEveryPacket makes every leg read each received packet as it
	// arrives, as a listened-to leg does, instead of polling the socket of
	// a leg nobody listens to (recv.go). It costs more CPU per leg; the
	// load benchmark's baseline uses it.
	ReadEveryPacket bool
	// PacerOptions are options for the engine's own pacer (ignored with a
	// shared Pacer).
	PacerOptions []pacer.Option
}

// Engine owns the RTP port range and the hold music shared by all legs,
// and sends every leg's packets through one Pacer.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	ports    *portPool
	pacer    *pacer.Pacer
	ownPacer bool
	music    *Music

	mu   sync.Mutex
	legs map[*Leg]struct{}
}

// NewEngine checks cfg and loads the hold music. Run must be running for
// legs to send anything.
func NewEngine(cfg Config, log *slog.Logger) (*Engine, error) {
	if !cfg.IP.IsValid() {
		return nil, errors.New("media: no local IP address")
	}
	if !cfg.Advertise.IsValid() {
		cfg.Advertise = cfg.IP
	}
	ports, err := newPortPool(cfg.IP, cfg.PortMin, cfg.PortMax)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	music, err := LoadMusic(cfg.Music)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	e := &Engine{cfg: cfg, log: log, ports: ports, pacer: cfg.Pacer, music: music, legs: map[*Leg]struct{}{}}
	if e.pacer == nil {
		prio := 0
		if cfg.Realtime {
			prio = pacer.DefaultPriority
		}
		e.pacer, e.ownPacer = pacer.New(log, append([]pacer.Option{pacer.WithPriority(prio)}, cfg.PacerOptions...)...), true
	}
	return e, nil
}

// Run runs the engine's own pacer until ctx ends. With a shared Pacer
// (Config.Pacer) its owner runs it, and Run just waits for ctx.
func (e *Engine) Run(ctx context.Context) error {
	if !e.ownPacer {
		<-ctx.Done()
		return nil
	}
	return e.pacer.Run(ctx)
}

// PacerStats are the counters of the pacer the engine sends through.
type PacerStats struct {
	Ticks   uint64        // wake-ups that sent packets
	Missed  uint64        // wake-ups that came too late for their packets
	MaxWork time.Duration // longest time one wake-up took
	Streams int           // streams sending (legs, and pages on a shared pacer)
}

// Stats returns the pacer's counters. With a shared Pacer they cover
// every stream it sends, not only this engine's legs.
func (e *Engine) Stats() PacerStats {
	c := e.pacer.Counters()
	return PacerStats{Ticks: c.Wakeups, Missed: c.LateWakeups, MaxWork: c.MaxWork, Streams: c.Streams}
}

// Music returns the engine's hold music.
func (e *Engine) Music() *Music { return e.music }

// Codecs returns the codecs legs offer and accept.
func (e *Engine) Codecs() []codec.Name {
	if len(e.cfg.Codecs) > 0 {
		return append([]codec.Name(nil), e.cfg.Codecs...)
	}
	var ns []codec.Name
	for _, c := range codec.All() {
		ns = append(ns, c.Name)
	}
	return ns
}

// Legs is the number of open legs.
func (e *Engine) Legs() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.legs)
}

// LegOptions tunes one leg.
type LegOptions struct {
	// Advertise overrides the engine's SDP address for this leg (e.g. the
	// address the INVITE arrived on).
	Advertise netip.Addr
}

// Leg is one RTP endpoint of a call: a UDP socket, its negotiated codec
// and a continuous outgoing stream. It is safe for concurrent use.
type Leg struct {
	e     *Engine
	conn  *net.UDPConn
	port  int
	local netip.AddrPort
	log   *slog.Logger

	recvDone chan struct{}
	kick     chan struct{} // wakes a polling reader (recv.go)
	lastRecv atomic.Int64  // unix ns of the last RTP packet
	received atomic.Uint64
	sentPkts atomic.Uint64

	mu         sync.Mutex
	w          sdpWriter
	neg        Negotiated
	negotiated bool
	// remoteSDP is the remote's last accepted offer (or its answer to our
	// offer when remoteAnswer), kept for State.
	remoteSDP    []byte
	remoteAnswer bool
	paced        bool // registered with the pacer
	unpace       context.CancelFunc
	paceDone     <-chan pacer.Result // the pacer's end of the leg's stream
	closed       bool
	out          outStream
	buf          []byte
	music        *musicStream
	queue        []outFrame
	bridge       *bridgeDir // set while bridged: packets from this leg go there

	encMu   sync.Mutex // the encoder keeps state across Play/WritePCM calls
	enc     codec.Encoder
	encName codec.Name
	batch   atomic.Uint64

	// Sending through the pacer.
	pc  *ipv4.PacketConn            // conn wrapped for sendmmsg
	dst atomic.Pointer[net.UDPAddr] // the remote, nil until negotiated
	src legSource

	cbMu    sync.Mutex
	onAudio func([]int16)
	onDTMF  func(Digit)
	dec     codec.Decoder
	decName codec.Name
	dtmfIn  dtmfDetector
}

// outFrame is one queued packet (or pause) for the pacer.
type outFrame struct {
	payload []byte
	dtmf    bool   // telephone-event payload
	cont    bool   // same timestamp as the previous packet (event update)
	skip    bool   // no packet: let the timestamp advance (pause)
	live    bool   // live audio: continues the previous packet's timestamp after a short wait (outStream.follow)
	done    func() // called when this frame has been sent (or dropped)
	batch   uint64 // the Play call that queued it
	// notBefore holds the frame (and the queue behind it) until the
	// pacer's frame of that number (PlayEncodedAt); 0: none.
	notBefore uint64
}

// NewLeg opens an RTP socket from the port range.
func (e *Engine) NewLeg(o LegOptions) (*Leg, error) {
	conn, port, err := e.ports.listen()
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return e.newLeg(o, conn, port), nil
}

func (e *Engine) newLeg(o LegOptions, conn *net.UDPConn, port int) *Leg {
	adv := e.cfg.Advertise
	if o.Advertise.IsValid() {
		adv = o.Advertise
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	l := &Leg{
		e:        e,
		conn:     conn,
		port:     port,
		local:    netip.AddrPortFrom(adv, uint16(port)),
		log:      e.log.With("rtp", port),
		recvDone: make(chan struct{}),
		kick:     make(chan struct{}, 1),
		buf:      make([]byte, 0, 1500),
	}
	l.out.ssrc = binary.BigEndian.Uint32(b[:4])
	l.out.seq = binary.BigEndian.Uint16(b[4:6])
	l.out.ts = binary.BigEndian.Uint32(b[:4]) ^ uint32(binary.BigEndian.Uint16(b[6:8]))<<8
	l.w = sdpWriter{sessID: uint64(binary.BigEndian.Uint32(b[4:8])), sessVer: 1, local: l.local}
	// ipv4.PacketConn only wraps the socket for sendmmsg: it sends to IPv6
	// addresses on an IPv6 socket as well.
	l.pc = ipv4.NewPacketConn(conn)
	l.src.l = l
	e.mu.Lock()
	e.legs[l] = struct{}{}
	e.mu.Unlock()
	go l.readLoop()
	return l
}

// LocalAddr is the address and port written in this leg's SDP.
func (l *Leg) LocalAddr() netip.AddrPort { return l.local }

// SSRC is the leg's outgoing synchronisation source.
func (l *Leg) SSRC() uint32 { return l.out.ssrc }

// Offer returns an SDP offer of every allowed codec and telephone-event.
func (l *Leg) Offer() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.build(offerFormats(l.e.cfg.Codecs), SendRecv)
}

// SetAnswer applies the remote's answer to our Offer.
func (l *Leg) SetAnswer(answer []byte) error {
	d, err := ParseSDP(answer)
	if err != nil {
		return err
	}
	n, err := Negotiate(d, l.e.cfg.Codecs)
	if err != nil {
		return err
	}
	l.setNegotiated(n)
	l.keepRemote(answer, true)
	return nil
}

// Answer accepts a remote offer (initial or re-INVITE) and returns our
// answer. A re-offer keeps the current codec when it is still offered, so
// a hold/resume does not switch codecs under a running bridge.
func (l *Leg) Answer(offer []byte) ([]byte, error) {
	d, err := ParseSDP(offer)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	prev, had := l.neg, l.negotiated
	l.mu.Unlock()
	n, err := Negotiate(d, l.e.cfg.Codecs)
	if err != nil {
		return nil, err
	}
	if had {
		for _, f := range d.Formats {
			if c, ok := match(f); ok && c.Name == prev.Codec.Name {
				n.Codec, n.PT = c, f.PT
				break
			}
		}
	}
	l.setNegotiated(n)
	l.keepRemote(offer, false)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.build(answerFormats(n), reverse(d.Direction)), nil
}

// CurrentAnswer rebuilds the last answer (for a session refresh without
// an offer, or a retransmitted re-INVITE).
func (l *Leg) CurrentAnswer() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.negotiated {
		return l.w.build(offerFormats(l.e.cfg.Codecs), SendRecv)
	}
	return l.w.build(answerFormats(l.neg), reverse(l.neg.Direction))
}

func (l *Leg) setNegotiated(n Negotiated) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	changed := !l.negotiated || l.neg.Codec.Name != n.Codec.Name
	if !l.negotiated || n.Remote != l.neg.Remote {
		l.dst.Store(net.UDPAddrFromAddrPort(n.Remote))
	}
	l.neg, l.negotiated = n, true
	l.out.clock = n.Codec.ClockRate
	if changed {
		if l.music != nil {
			l.music.release()
			l.music = l.e.music.stream(n.Codec.Name)
		}
	}
	if !l.paced {
		l.paced = true
		ctx, cancel := context.WithCancel(context.Background())
		l.unpace = cancel
		l.paceDone = l.e.pacer.Play(ctx, &l.src, &l.src) // Close ends it
	}
}

// Negotiated returns the agreed codec and remote address, and whether
// negotiation has happened.
func (l *Leg) Negotiated() (Negotiated, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.neg, l.negotiated
}

// LastReceived is when the last RTP packet arrived (zero if none yet).
func (l *Leg) LastReceived() time.Time {
	ns := l.lastRecv.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Counters returns the packets received and sent.
func (l *Leg) Counters() (received, sent uint64) { return l.received.Load(), l.sentPkts.Load() }

// PlayMusic makes the engine's hold music this leg's background sound.
func (l *Leg) PlayMusic() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.music != nil || l.closed {
		return
	}
	name := codec.PCMU
	if l.negotiated {
		name = l.neg.Codec.Name
	}
	l.music = l.e.music.stream(name)
}

// StopMusic silences the background music.
func (l *Leg) StopMusic() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.music != nil {
		l.music.release()
		l.music = nil
	}
}

// ErrClosed is returned by operations on a closed leg.
var ErrClosed = errors.New("media: leg closed")

// ErrNotNegotiated is returned when audio is queued before SDP negotiation.
var ErrNotNegotiated = errors.New("media: leg has no negotiated codec yet")

func (l *Leg) encoder() (codec.Encoder, uint32, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, 0, ErrClosed
	}
	if !l.negotiated {
		l.mu.Unlock()
		return nil, 0, ErrNotNegotiated
	}
	name, step := l.neg.Codec.Name, l.neg.Codec.TimestampStep
	l.mu.Unlock()
	if l.enc == nil || l.encName != name {
		enc, err := codec.NewEncoder(name)
		if err != nil {
			return nil, 0, fmt.Errorf("media: %w", err)
		}
		l.enc, l.encName = enc, name
	}
	return l.enc, step, nil
}

// encodePCM cuts pcm into 20 ms frames (the last one padded with silence)
// and encodes them with the leg's encoder.
func (l *Leg) encodePCM(pcm []int16) ([][]byte, error) {
	l.encMu.Lock()
	defer l.encMu.Unlock()
	enc, _, err := l.encoder()
	if err != nil {
		return nil, err
	}
	var frames [][]byte
	var frame [codec.FrameSamples]int16
	for off := 0; off < len(pcm); off += codec.FrameSamples {
		n := copy(frame[:], pcm[off:])
		clear(frame[n:])
		p, err := enc.Encode(nil, frame[:])
		if err != nil {
			return nil, fmt.Errorf("media: encode: %w", err)
		}
		frames = append(frames, p)
	}
	return frames, nil
}

// Play sends pcm (16 kHz mono) paced at 20 ms, after anything already
// queued, in front of the background music, and returns when the last
// frame has gone out or ctx ends (the rest is then dropped).
func (l *Leg) Play(ctx context.Context, pcm []int16) error {
	frames, err := l.encodePCM(pcm)
	if err != nil {
		return err
	}
	return l.PlayEncoded(ctx, frames)
}

// PlayEncoded sends pre-encoded 20 ms payloads in the leg's negotiated
// codec, paced, and waits like Play.
func (l *Leg) PlayEncoded(ctx context.Context, frames [][]byte) error {
	if len(frames) == 0 {
		return nil
	}
	return l.PlayEncodedAt(ctx, frames, time.Time{})
}

// PlayEncodedAt is PlayEncoded with the first frame sent in the pacer's
// frame that begins at at (rounded to the nearest frame; zero or past: the
// next frame). Queued ahead, it leaves in the same wake-up of the pacer as
// other streams started for that moment (a zone's multicast outputs),
// whatever the scheduler does to the caller; the leg sends its hold music,
// or nothing, until then.
func (l *Leg) PlayEncodedAt(ctx context.Context, frames [][]byte, at time.Time) error {
	if len(frames) == 0 {
		return nil
	}
	items := make([]outFrame, len(frames))
	for i, f := range frames {
		items[i] = outFrame{payload: f}
	}
	if a := pacer.At(at); a > 0 {
		items[0].notBefore = uint64((a + int64(FrameDuration)/2) / int64(FrameDuration))
	}
	return l.enqueueWait(ctx, items)
}

// WritePCM queues one frame of live audio (codec.FrameSamples samples)
// without waiting. If more than maxLive frames are waiting (the producer
// runs ahead of the clock) the oldest are dropped to bound latency.
func (l *Leg) WritePCM(frame []int16) error {
	frames, err := l.encodePCM(frame)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	for _, f := range frames {
		l.queue = append(l.queue, outFrame{payload: f, live: true})
	}
	if over := len(l.queue) - maxLive; over > 0 {
		dropFrames(l.queue[:over])
		l.queue = append(l.queue[:0], l.queue[over:]...)
	}
	return nil
}

// WritePCMWait is WritePCM for audio that must not be dropped: a live page
// that joined late and plays from its start, delayed. While maxLive frames
// are waiting it waits for the oldest to leave (or be dropped), so the
// producer runs at the leg's pace and the delay stays in the producer's
// buffer instead of being cut here. It returns ctx's error if ctx ends
// first (nothing of frame is queued then).
func (l *Leg) WritePCMWait(ctx context.Context, frame []int16) error {
	frames, err := l.encodePCM(frame)
	if err != nil {
		return err
	}
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		if len(l.queue)+len(frames) <= maxLive || len(l.queue) == 0 {
			for _, f := range frames {
				l.queue = append(l.queue, outFrame{payload: f, live: true})
			}
			l.mu.Unlock()
			return nil
		}
		// Woken when the head leaves: sent, dropped, flushed or closed.
		left := make(chan struct{})
		var once sync.Once
		prev := l.queue[0].done
		l.queue[0].done = func() {
			if prev != nil {
				prev()
			}
			once.Do(func() { close(left) })
		}
		l.mu.Unlock()
		select {
		case <-left:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Drain waits until everything queued so far has been sent, sending nothing
// itself: the end of a live stream, whose last packet must be the last
// frame (a closing packet queued after a pause would jump the timestamp).
func (l *Leg) Drain(ctx context.Context) error {
	return l.enqueueWait(ctx, []outFrame{{skip: true}})
}

// maxLive bounds live-audio latency to 200 ms.
const maxLive = 10

// Flush drops queued audio and DTMF (waiters of Play return nil).
func (l *Leg) Flush() {
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	dropFrames(q)
}

func dropFrames(q []outFrame) {
	for _, f := range q {
		if f.done != nil {
			f.done()
		}
	}
}

// enqueueWait queues items and waits until the last is sent.
func (l *Leg) enqueueWait(ctx context.Context, items []outFrame) error {
	done := make(chan struct{})
	var once sync.Once
	batch := l.batch.Add(1)
	for i := range items {
		items[i].batch = batch
	}
	items[len(items)-1].done = func() { once.Do(func() { close(done) }) }
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if !l.negotiated {
		l.mu.Unlock()
		return ErrNotNegotiated
	}
	l.queue = append(l.queue, items...)
	l.mu.Unlock()
	select {
	case <-done:
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return ErrClosed
		}
		return nil
	case <-ctx.Done():
		// Remove what is still queued of ours.
		l.mu.Lock()
		kept := l.queue[:0]
		var dropped []outFrame
		for _, f := range l.queue {
			if f.batch == batch {
				dropped = append(dropped, f)
			} else {
				kept = append(kept, f)
			}
		}
		l.queue = kept
		l.mu.Unlock()
		dropFrames(dropped)
		return ctx.Err()
	}
}

// legSource is a leg as the pacer sees it: a Clocked stream of one
// packet per 20 ms frame for as long as the leg is negotiated, on the
// pacer's global frame grid so hold music is produced once per frame for
// every leg. Its fields are the pacer thread's.
type legSource struct {
	l        *Leg
	start    uint64 // frame of offset 0
	k        uint64 // frames since start
	skipped  uint64 // frames skipped after stalls of the loop
	stopped  bool
	sentDone func() // done of the packet in flight
}

// Start implements pacer.Clocked.
func (s *legSource) Start(frame uint64) { s.start = frame }

// Stop implements pacer.Source: the leg is closed.
func (s *legSource) Stop() { s.stopped = true }

// Due implements pacer.Source. After a stall of the loop a leg does not
// send the frames it missed in a burst: it skips to the current frame, so
// every leg asks for the same frame of hold music on each wake-up. The
// skipped frames do not count in the RTP timestamp (as with the old
// per-tick counter): the audio is delayed by the stall, not cut.
func (s *legSource) Due() (time.Duration, bool) {
	if s.stopped {
		return 0, false
	}
	if behind := pacer.Now()/int64(FrameDuration) - int64(s.start+s.k); behind > 0 {
		s.k += uint64(behind)
		s.skipped += uint64(behind)
		s.l.elapse(int(behind))
	}
	return time.Duration(s.k) * FrameDuration, true
}

// elapse drops up to n pauses (skip frames) from the head of the queue:
// after a stall of the loop, pauses (a SIP amplifier's settle, after_code,
// the gaps between digits) have passed in real time, so what follows them
// (audio held for a zone's first-audio frame) is not pushed later.
func (l *Leg) elapse(n int) {
	l.mu.Lock()
	i := 0
	for i < n && i < len(l.queue) && l.queue[i].skip {
		i++
	}
	var dropped []outFrame
	if i > 0 {
		dropped = slices.Clone(l.queue[:i])
		l.queue = l.queue[i:]
	}
	l.mu.Unlock()
	dropFrames(dropped)
}

// Conn implements pacer.Sink.
func (s *legSource) Conn() (*ipv4.PacketConn, net.Addr) {
	return s.l.pc, s.l.dst.Load()
}

// Sent implements pacer.Reporter: send errors do not end a leg.
func (s *legSource) Sent(err error) {
	if err == nil {
		s.l.sentPkts.Add(1)
	} else if !errors.Is(err, net.ErrClosed) {
		s.l.log.Debug("rtp send failed", "error", err)
	}
	if f := s.sentDone; f != nil {
		s.sentDone = nil
		f()
	}
}

// Append implements pacer.Source: the leg's packet for the next frame, if
// it has one: queued audio or DTMF first, else its hold music.
func (s *legSource) Append(dst []byte) []byte {
	n := s.start + s.k // the pacer's frame: the music's clock
	v := n - s.skipped // the leg's own frame count: its timestamps' clock
	s.k++
	l := s.l
	l.mu.Lock()
	if l.closed || !l.negotiated {
		l.mu.Unlock()
		return dst
	}
	if l.bridge != nil {
		// The bridge owns the outgoing stream; queued audio is dropped.
		q := l.queue
		l.queue = nil
		l.mu.Unlock()
		dropFrames(q)
		return dst
	}
	now := time.Now()
	var f outFrame
	have := false
	if len(l.queue) > 0 && l.queue[0].notBefore <= n {
		f, have = l.queue[0], true
		l.queue[0] = outFrame{}
		l.queue = l.queue[1:]
		if len(l.queue) == 0 {
			l.queue = nil
		}
	} else if l.music != nil {
		if p, ok := l.music.current(n); ok {
			f, have = outFrame{payload: p}, true
		}
	}
	if !have {
		l.mu.Unlock()
		return dst
	}
	if f.skip {
		l.mu.Unlock()
		if f.done != nil {
			f.done()
		}
		return dst
	}
	pt := l.neg.PT
	var seq uint16
	var ts uint32
	var marker bool
	if f.dtmf {
		pt = l.neg.DTMFPT
	}
	switch {
	case f.cont:
		seq, ts, marker = l.out.same(now)
	case f.live:
		seq, ts, marker = l.out.follow(now, v, l.neg.Codec.TimestampStep)
	default:
		seq, ts, marker = l.out.advance(now, v, l.neg.Codec.TimestampStep)
	}
	if f.dtmf && !f.cont {
		marker = true
	}
	out := dst
	if l.neg.Receives() {
		h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: l.out.ssrc, Marker: marker}
		out = appendHeader(dst, &h)
		out = append(out, f.payload...)
	}
	l.mu.Unlock()
	if len(out) == len(dst) {
		if f.done != nil {
			f.done()
		}
		return dst
	}
	s.sentDone = f.done
	return out
}

// appendHeader appends h's wire form (12 bytes; no CSRCs or extensions).
func appendHeader(dst []byte, h *rtp.Header) []byte {
	off := len(dst)
	dst = append(dst, make([]byte, h.MarshalSize())...)
	if _, err := h.MarshalTo(dst[off:]); err != nil {
		return dst[:off]
	}
	return dst
}

// sendLocked writes one relayed packet to the remote (the bridge's path,
// outside the pacer); l.mu held.
func (l *Leg) sendLocked(pt uint8, seq uint16, ts uint32, marker bool, payload []byte) error {
	if !l.neg.Receives() {
		return nil
	}
	h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: l.out.ssrc, Marker: marker}
	b := appendHeader(l.buf[:0], &h)
	b = append(b, payload...)
	l.buf = b[:0]
	_, err := l.conn.WriteToUDPAddrPort(b, l.neg.Remote)
	if err == nil {
		l.sentPkts.Add(1)
	}
	return err
}

// OnAudio sets a callback receiving decoded 16 kHz audio from the remote
// (nil removes it). It runs on the leg's receive goroutine and must not
// block. Audio is not decoded while the leg is bridged.
func (l *Leg) OnAudio(f func(pcm []int16)) {
	l.cbMu.Lock()
	l.onAudio = f
	l.cbMu.Unlock()
	l.kickReader()
}

// OnDTMF sets a callback for RFC 4733 digits received (once per key press).
func (l *Leg) OnDTMF(f func(Digit)) {
	l.cbMu.Lock()
	l.onDTMF = f
	l.cbMu.Unlock()
	l.kickReader()
}

func (l *Leg) handle(h *rtp.Header, payload []byte, _ netip.AddrPort) {
	l.mu.Lock()
	neg, ok := l.neg, l.negotiated
	br := l.bridge
	l.mu.Unlock()
	if !ok {
		return
	}
	if br != nil {
		br.forward(h, payload)
		return
	}
	if neg.DTMF && h.PayloadType == neg.DTMFPT {
		ev, err := ParseEvent(payload)
		if err != nil {
			return
		}
		if d, isNew := l.dtmfIn.observe(h.Timestamp, ev); isNew {
			l.cbMu.Lock()
			f := l.onDTMF
			l.cbMu.Unlock()
			if f != nil {
				f(d)
			}
		}
		return
	}
	if h.PayloadType != neg.PT {
		return
	}
	l.cbMu.Lock()
	defer l.cbMu.Unlock()
	if l.onAudio == nil {
		return
	}
	if l.dec == nil || l.decName != neg.Codec.Name {
		dec, err := codec.NewDecoder(neg.Codec.Name)
		if err != nil {
			return
		}
		l.dec, l.decName = dec, neg.Codec.Name
	}
	pcm, err := l.dec.Decode(nil, payload)
	if err != nil || len(pcm) == 0 {
		return
	}
	l.onAudio(pcm)
}

// Close stops the leg, releases its port and fails pending Play calls.
func (l *Leg) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	q := l.queue
	l.queue = nil
	if l.music != nil {
		l.music.release()
		l.music = nil
	}
	br := l.bridge
	unpace, paceDone := l.unpace, l.paceDone
	l.mu.Unlock()
	if br != nil {
		br.br.Close()
	}
	if unpace != nil {
		unpace() // the pacer drops the leg at its next wake-up, at once
		// ...and lets go of the socket (its io_uring registration), so the
		// port is free again when Close returns.
		if l.e.pacer.Running() {
			select {
			case <-paceDone:
			case <-time.After(time.Second):
			}
		}
	}
	dropFrames(q)
	err := l.conn.Close()
	l.kickReader()
	<-l.recvDone
	l.e.ports.release(l.port)
	l.e.mu.Lock()
	delete(l.e.legs, l)
	l.e.mu.Unlock()
	return err
}
