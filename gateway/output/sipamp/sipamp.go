package sipamp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// Errors a failed page wraps (besides a *sipstack.StatusError for a
// refusal such as 486 Busy Here or 603 Decline).
var (
	// ErrNoAnswer: the device did not answer within answer_timeout.
	ErrNoAnswer = errors.New("no answer")
	// ErrHungUp: the device ended the call before the page was played.
	ErrHungUp = errors.New("device hung up during the page")
	// ErrClosed: Play was called after Close.
	ErrClosed = errors.New("sip output closed")
)

// Dialer places calls; *sipstack.Stack is one.
type Dialer interface {
	Dial(ctx context.Context, r sipstack.DialRequest) (*sipstack.Dialog, []byte, error)
}

// LegMaker opens RTP legs; *media.Engine is one.
type LegMaker interface {
	NewLeg(o media.LegOptions) (*media.Leg, error)
}

// Options are an Output's collaborators.
type Options struct {
	SIP    Dialer       // required: the appliance's SIP stack
	Media  LegMaker     // required: the appliance's RTP engine
	Logger *slog.Logger // default: discard
	// RetryDelay is the pause before a retry (outputs with retry > 0).
	// Default 1s.
	RetryDelay time.Duration
	// Tail is how long the call stays up after the last audio packet, so
	// the device's jitter buffer plays out before the BYE. Default 200ms.
	Tail time.Duration
}

// byeTimeout bounds the wait for the answer to a BYE; the BYE itself is
// sent at once.
const byeTimeout = 5 * time.Second

// Output pages through a SIP call: a paging amplifier's or SIP speaker's
// extension, a Bogen Nyquist or Valcom gateway, an ATA in front of a
// UTI312. It implements output.Output; Close waits for calls it is still
// hanging up.
type Output struct {
	name    string
	cfg     config.Output
	headers []sip.Header
	sip     Dialer
	media   LegMaker
	log     *slog.Logger
	delay   time.Duration
	tail    time.Duration

	mu      sync.Mutex
	closed  bool
	closing chan struct{}  // closed by Close: stop waiting for late provisionals
	wg      sync.WaitGroup // CANCEL and BYE exchanges finishing after Play returned
}

// provisionalGrace is how long an abandoned call that has had no
// provisional response yet waits for one, so that it can be CANCELled (RFC
// 3261 9.1 forbids a CANCEL before one). A device that answers that late
// (a busy device, a lost INVITE retransmitted) would otherwise ring on;
// one silent for longer is taken as dead and dropped without CANCEL. It
// covers the INVITE's first three retransmissions (0.5 + 1 + 2 s).
const provisionalGrace = 4 * time.Second

// New makes the SIP output called name (output.Name) from its
// config: uri, preset, headers, username/password, zone_code, dtmf,
// settle, digit_on, digit_gap, after_code, answer_timeout and retry.
func New(name string, o *config.Output, opts Options) (*Output, error) {
	if opts.SIP == nil || opts.Media == nil {
		return nil, fmt.Errorf("output %s: sip output needs the SIP stack and the RTP engine", name)
	}
	var uri sip.Uri
	if err := sip.ParseUri(o.URI, &uri); err != nil || uri.Host == "" {
		return nil, fmt.Errorf("output %s: %q is not a SIP URI", name, o.URI)
	}
	hdrs, err := Headers(o.Preset, uri.Host, o.Headers)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", name, err)
	}
	switch o.DTMF {
	case "rfc4733", "inband", "info":
	default:
		return nil, fmt.Errorf("output %s: dtmf %q is not rfc4733, inband or info", name, o.DTMF)
	}
	for _, d := range o.ZoneCode {
		if _, _, ok := keyFreqs(d); !ok {
			return nil, fmt.Errorf("output %s: zone_code %q: %q is not a DTMF key", name, o.ZoneCode, d)
		}
	}
	if o.Answer <= 0 {
		return nil, fmt.Errorf("output %s: answer_timeout must be positive", name)
	}
	out := &Output{
		name: name, cfg: *o, headers: hdrs, sip: opts.SIP, media: opts.Media,
		log: opts.Logger, delay: opts.RetryDelay, tail: opts.Tail,
		closing: make(chan struct{}),
	}
	if out.log == nil {
		out.log = slog.New(slog.DiscardHandler)
	}
	out.log = out.log.With("output", name, "uri", o.URI)
	if out.delay <= 0 {
		out.delay = time.Second
	}
	if out.tail <= 0 {
		out.tail = 200 * time.Millisecond
	}
	return out, nil
}

// Name identifies the output in logs, events and metrics.
func (o *Output) Name() string { return o.name }

// Close waits for CANCEL and BYE exchanges still running after their
// Play returned (each bounded by the SIP timers), and makes further Play
// calls fail.
func (o *Output) Close() error {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.closing)
	}
	o.mu.Unlock()
	o.wg.Wait()
	return nil
}

// spawn runs f on a goroutine Close waits for.
func (o *Output) spawn(f func()) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		f()
	}()
	return true
}

// setupError is a call that never got to play: busy, rejected, not
// answered. Only those are retried.
type setupError struct{ err error }

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// Play calls the device, sends the zone code after the settle time, plays
// the page in the negotiated codec and hangs up. A busy, rejecting or
// silent device is an error (retried output.retry times); when ctx ends
// the call is CANCELled if still ringing or ended with a BYE if answered,
// and Play returns ctx.Err() at once: the SIP exchanges finish on their
// own goroutines.
func (o *Output) Play(ctx context.Context, p *output.Playback) error {
	var err error
	for attempt := 0; attempt <= o.cfg.Retry; attempt++ {
		if attempt > 0 {
			o.log.Warn("sip page failed, retrying", "page", p.ID, "err", err, "attempt", attempt+1)
			if err := output.Sleep(ctx, o.delay); err != nil {
				return err
			}
		}
		err = o.call(ctx, p)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var se *setupError
		if err == nil || !errors.As(err, &se) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("call %s: %w", o.cfg.URI, err)
	}
	return nil
}

// call is one attempt.
func (o *Output) call(ctx context.Context, p *output.Playback) error {
	leg, err := o.media.NewLeg(media.LegOptions{})
	if err != nil {
		return &setupError{fmt.Errorf("rtp: %w", err)}
	}
	defer leg.Close()
	offer := leg.Offer()
	if o.cfg.DTMF == "inband" {
		// In-band digits survive only G.711 (paging-formats.md 4.2).
		offer = keepFormats(offer, 0, 8, 101)
	}
	d, answer, target, err := o.dial(ctx, offer, p)
	if err != nil {
		return err
	}
	// From here on the call ends with a BYE, whatever happens.
	defer o.hangup(d)
	if err := leg.SetAnswer(answer); err != nil {
		return &setupError{fmt.Errorf("device's SDP answer: %w", err)}
	}
	cctx, cancel := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() { // ends the page if the device hangs up
		defer close(watched)
		select {
		case <-d.Done():
			cancel(ErrHungUp)
		case <-cctx.Done():
		}
	}()
	defer func() { cancel(nil); <-watched }()
	err = o.page(cctx, d, target, leg, p)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(cctx), ErrHungUp) {
		return ErrHungUp
	}
	return err
}

type dialResult struct {
	d      *sipstack.Dialog
	answer []byte
	err    error
}

// dial places the INVITE and waits for the answer, at most answer_timeout.
// Giving up (timeout, ctx) returns at once; the CANCEL, or the BYE of an
// answer that crossed it, goes on in the background.
func (o *Output) dial(ctx context.Context, offer []byte, p *output.Playback) (*sipstack.Dialog, []byte, sip.Uri, error) {
	var (
		provisional = make(chan struct{}) // closed at the first 1xx
		provOnce    sync.Once
		target      atomic.Pointer[sip.Uri]
	)
	dctx, cancel := context.WithCancelCause(context.Background())
	req := sipstack.DialRequest{
		Target: o.cfg.URI, Configured: true,
		FromDisplay: p.CallerID,
		SDP:         offer,
		Headers:     o.headers,
		Username:    o.cfg.Username, Password: o.cfg.Password,
		OnProvisional: func(int) { provOnce.Do(func() { close(provisional) }) },
		OnAnswer: func(res *sip.Response) {
			if c := res.Contact(); c != nil {
				u := c.Address
				target.Store(&u)
			}
		},
	}
	res := make(chan dialResult, 1)
	dialed := make(chan struct{}) // closed when Dial has returned
	if !o.spawn(func() {
		d, ans, err := o.sip.Dial(dctx, req)
		res <- dialResult{d, ans, err}
		close(dialed)
	}) {
		cancel(nil)
		return nil, nil, sip.Uri{}, ErrClosed
	}
	timer := time.NewTimer(o.cfg.Answer.D())
	defer timer.Stop()
	var err error
	select {
	case r := <-res:
		cancel(nil)
		if r.err != nil {
			return nil, nil, sip.Uri{}, &setupError{r.err}
		}
		u := sip.Uri{}
		if t := target.Load(); t != nil {
			u = *t
		} else if err := sip.ParseUri(o.cfg.URI, &u); err != nil {
			return nil, nil, sip.Uri{}, err
		}
		return r.d, r.answer, u, nil
	case <-timer.C:
		err = &setupError{fmt.Errorf("%w within %s", ErrNoAnswer, o.cfg.Answer)}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if !o.spawn(func() {
		o.abandon(cancel, provisional, dialed)
		if r := <-res; r.d != nil {
			o.log.Info("device answered after the call was given up; hanging up")
			o.hangupWait(r.d)
		}
	}) {
		cancel(sipgo.WaitAnswerForceCancelErr)
	}
	return nil, nil, sip.Uri{}, err
}

// abandon ends an INVITE that is no longer wanted. After a provisional
// response, cancelling the dial context makes the stack send CANCEL. RFC
// 3261 9.1 allows no CANCEL before one, so without one it waits up to
// provisionalGrace for it; a device silent for that long (dead,
// unreachable), or Close, ends the transaction without a CANCEL.
func (o *Output) abandon(cancel context.CancelCauseFunc, provisional, dialed <-chan struct{}) {
	select {
	case <-provisional:
		cancel(context.Canceled)
		return
	default:
	}
	t := time.NewTimer(provisionalGrace)
	defer t.Stop()
	select {
	case <-provisional:
		cancel(context.Canceled)
	case <-dialed:
		cancel(nil) // a final answer came first: a 2xx is hung up by the caller
	case <-t.C:
		o.log.Debug("no provisional response to the abandoned INVITE; dropping it without CANCEL")
		cancel(sipgo.WaitAnswerForceCancelErr)
	case <-o.closing:
		cancel(sipgo.WaitAnswerForceCancelErr)
	}
}

// hangup sends the BYE now and lets its answer arrive in the background.
func (o *Output) hangup(d *sipstack.Dialog) {
	if !o.spawn(func() { o.hangupWait(d) }) {
		o.hangupWait(d)
	}
}

func (o *Output) hangupWait(d *sipstack.Dialog) {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	if err := d.Hangup(ctx); err != nil {
		o.log.Debug("bye not confirmed", "err", err)
	}
}

// page runs an answered call: settle, zone code, after_code, audio, tail.
func (o *Output) page(ctx context.Context, d *sipstack.Dialog, target sip.Uri, leg *media.Leg, p *output.Playback) error {
	neg, _ := leg.Negotiated()
	o.log.Debug("device answered", "page", p.ID, "codec", neg.Codec.Name, "rfc4733", neg.DTMF)
	// Tell the zone now when the audio can start, so that its other
	// outputs (Polycom's Alerts) can line up while the code goes out.
	ready := time.Now().Add(o.setupTime(neg))
	started := o.report(ctx, p, ready)
	la, live := p.Audio.(output.LiveAudio)
	code := o.cfg.ZoneCode
	if !live && (code == "" || o.cfg.DTMF == "rfc4733" && neg.DTMF) {
		// Settle, code and after_code are queued on the leg at once and
		// timed by the pacer, the audio behind them held for its moment:
		// a busy scheduler cannot delay the audio past it.
		if code != "" {
			if err := leg.QueueDTMF(code, o.cfg.DigitOn.D(), o.cfg.DigitGap.D(), o.cfg.Settle.D(), o.cfg.AfterCode.D()); err != nil {
				return fmt.Errorf("send zone code: %w", err)
			}
		}
	} else {
		if err := output.Sleep(ctx, o.cfg.Settle.D()); err != nil {
			return err
		}
		if code != "" {
			if err := o.sendCode(ctx, d, target, leg, neg, code); err != nil {
				return err
			}
			if err := output.Sleep(ctx, o.cfg.AfterCode.D()); err != nil {
				return err
			}
		}
	}
	if live {
		at, err := decided(ctx, started)
		if err != nil {
			return err
		}
		// The leg sends queued audio on its next 20 ms tick; the zone's
		// moment is on that grid, so queueing a little before it makes the
		// first frame leave on it. Not lined up (zero): at once.
		if !at.IsZero() {
			if err := output.Sleep(ctx, time.Until(at)-queueEarly); err != nil {
				return err
			}
		}
		return o.playLive(ctx, leg, la)
	}
	frames, err := p.Audio.Frames(neg.Codec.Name)
	if err != nil {
		return fmt.Errorf("page audio in %s: %w", neg.Codec.Name, err)
	}
	at, err := decided(ctx, started)
	if err != nil {
		return err
	}
	if at.IsZero() {
		at = ready // not lined up: as soon as the set-up allows
	}
	// Queued now, held by the leg until the zone's first-audio frame (at
	// once if that has passed: the call joins late).
	if err := leg.PlayEncodedAt(ctx, frames, at); err != nil {
		return err
	}
	// The audio has gone out; a cut now would only clip the device's buffer.
	_ = output.Sleep(ctx, o.tail)
	return nil
}

// AlignsStart implements output.Aligned: the zone's faster outputs wait for
// the call to be answered and the zone code sent (up to align_wait).
func (o *Output) AlignsStart() {}

// setupTime is how long after the answer the audio can start: settle, the
// zone code as neg sends it, after_code.
func (o *Output) setupTime(neg media.Negotiated) time.Duration {
	settle, after := o.cfg.Settle.D(), o.cfg.AfterCode.D()
	code := o.cfg.ZoneCode
	if code == "" {
		return settle
	}
	on, gap := o.cfg.DigitOn.D(), o.cfg.DigitGap.D()
	frames := func(x time.Duration) time.Duration {
		return (x + media.FrameDuration - 1) / media.FrameDuration * media.FrameDuration
	}
	n := time.Duration(len(code))
	switch {
	case o.cfg.DTMF == "rfc4733" && neg.DTMF:
		// Queued on the leg (media.Leg.QueueDTMF): from its next tick,
		// settle, per digit on (at least two packets), three end packets
		// and gap, after_code, each in whole frames.
		return media.FrameDuration + frames(settle) +
			n*(max(frames(on), 2*media.FrameDuration)+3*media.FrameDuration+frames(gap)) + frames(after)
	case o.cfg.DTMF == "info":
		return settle + n*(on+gap) - gap + after + setupSlack
	default: // in-band tones
		return settle + frames(n*(on+gap)) + after + setupSlack
	}
}

// setupSlack is added to the set-up estimate of a code sent by goroutines
// that sleep (SIP INFO, in-band tones): the tones' first frame waits for
// the leg's next 20 ms tick and the timers fire a little late; without
// slack the audio misses the zone's first-audio tick and leaves a frame
// after the other outputs' (measured: 19 ms). One frame of slack leaves a
// frame's worth for the timers.
const setupSlack = media.FrameDuration

// started is the zone's answer to a report: when the first audio frame
// leaves.
type started struct {
	at  time.Time
	err error
}

// report tells the page's Starter (if any) that the audio can start at
// ready; the channel gets the zone's first-audio moment. The goroutine ends
// with the decision or with ctx.
func (o *Output) report(ctx context.Context, p *output.Playback, ready time.Time) <-chan started {
	if p.Start == nil {
		return nil
	}
	ch := make(chan started, 1)
	go func() {
		at, err := p.Start.Start(ctx, output.Ready{At: ready})
		ch <- started{at, err}
	}()
	return ch
}

// decided waits for the zone's decision and returns its first-audio moment
// (zero without a Starter: now).
func decided(ctx context.Context, ch <-chan started) (time.Time, error) {
	if ch == nil {
		return time.Time{}, nil
	}
	select {
	case s := <-ch:
		return s.at, s.err
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// queueEarly is how long before the zone's first-audio moment an aligned
// live page queues its first frame: less than a frame, more than a
// timer's slack.
const queueEarly = 8 * time.Millisecond

// sendCode sends the zone code the configured way. RFC 4733 falls back to
// in-band tones when the device did not accept telephone-event.
func (o *Output) sendCode(ctx context.Context, d *sipstack.Dialog, target sip.Uri, leg *media.Leg, neg media.Negotiated, code string) error {
	on, gap := o.cfg.DigitOn.D(), o.cfg.DigitGap.D()
	mode := o.cfg.DTMF
	if mode == "rfc4733" {
		err := leg.SendDTMF(ctx, code, on, gap)
		if !errors.Is(err, media.ErrNoDTMF) {
			if err != nil {
				return fmt.Errorf("send zone code: %w", err)
			}
			return nil
		}
		o.log.Warn("device did not accept telephone-event; sending the zone code as tones", "codec", neg.Codec.Name)
		mode = "inband"
	}
	if mode == "inband" {
		pcm, err := InbandTones(code, on, gap)
		if err != nil {
			return err
		}
		if err := leg.Play(ctx, pcm); err != nil {
			return fmt.Errorf("send zone code: %w", err)
		}
		return nil
	}
	// SIP INFO, one request per digit, paced like the tones would be.
	for i, r := range code {
		req := sip.NewRequest(sip.INFO, target)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
		req.SetBody(infoBody(r, on))
		res, err := d.Request(ctx, req)
		if err != nil {
			return fmt.Errorf("send zone code: info %c: %w", r, err)
		}
		if !res.IsSuccess() {
			return fmt.Errorf("send zone code: info %c: %d %s", r, res.StatusCode, res.Reason)
		}
		wait := on + gap
		if i == len(code)-1 {
			wait = on
		}
		if err := output.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	return nil
}

// keepFormats removes every payload type but keep from our SDP offer (the
// m=audio line and its rtpmap/fmtp attributes).
func keepFormats(offer []byte, keep ...uint8) []byte {
	kept := map[string]bool{}
	for _, pt := range keep {
		kept[fmt.Sprint(pt)] = true
	}
	lines := strings.Split(strings.TrimRight(string(offer), "\r\n"), "\r\n")
	var out []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "m=audio "):
			f := strings.Fields(l)
			if len(f) < 4 {
				out = append(out, l)
				continue
			}
			m := f[:3]
			for _, pt := range f[3:] {
				if kept[pt] {
					m = append(m, pt)
				}
			}
			out = append(out, strings.Join(m, " "))
			continue
		case strings.HasPrefix(l, "a=rtpmap:"), strings.HasPrefix(l, "a=fmtp:"):
			pt, _, _ := strings.Cut(l[strings.IndexByte(l, ':')+1:], " ")
			if !kept[pt] {
				continue
			}
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\r\n") + "\r\n")
}

// Factory returns the output.Factory for config type sip: output i of zone
// is New(output.Name(zone, i), o, opts).
func Factory(opts Options) output.Factory {
	return func(zone string, i int, o *config.Output) (output.Output, error) {
		return New(output.Name(zone, i), o, opts)
	}
}
