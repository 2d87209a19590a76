// Package labelrec lets a person record a slot's label, or its whole
// announcement, from any phone parkpage lets in: dial *7 + slot (label) or
// *8 + slot (announcement), hear the prompt and the tone, speak, press #,
// hear it back, press 1 to keep it or 2 to record again. Recordings are
// checked, trimmed and levelled by internal/labels; a silent, clipped, too
// short or too long one is refused with the reason spoken, and the caller
// tries again.
package labelrec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/gateway/livepage"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/labels"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// SIP routes INVITEs for extensions; *sipstack.Stack is one.
type SIP interface {
	Handle(ext string, h sipstack.InviteHandler)
	Unhandle(ext string)
}

// Legs opens RTP legs; *media.Engine is one.
type Legs interface {
	NewLeg(o media.LegOptions) (*media.Leg, error)
}

// Speaker synthesises prompts; *announce.Service is one.
type Speaker interface {
	Synthesize(ctx context.Context, text string) ([]int16, error)
}

// Options are a Server's collaborators.
type Options struct {
	SIP     SIP           // required
	Media   Legs          // required
	Store   *labels.Store // required
	Speaker Speaker       // required
	Logger  *slog.Logger
	// MenuWait is how long the keep/record-again menu waits for a key
	// before asking again (twice, then the call ends unsaved). Default 8 s.
	MenuWait time.Duration
	// Saved, if set, is told of each recording kept (for the event bus).
	Saved func(labels.Recording)
	// Metrics, if set, counts recordings by result
	// (parkpage_label_recordings_total).
	Metrics *metrics.Set
}

// Attempts is how many recordings one call may try before it is ended.
const Attempts = 3

// Server answers the record extensions of the config.
type Server struct {
	opts Options
	log  *slog.Logger
	cfg  atomic.Pointer[config.Config]

	mu      sync.Mutex
	exts    map[string]Target
	ctx     context.Context
	stopped bool
	calls   sync.WaitGroup
}

// Target is what a record extension records.
type Target struct {
	Slot string
	Kind labels.Kind
}

// New makes the server; Start registers the extensions.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.SIP == nil || opts.Media == nil || opts.Store == nil || opts.Speaker == nil {
		return nil, errors.New("labelrec: SIP, Media, Store and Speaker are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MenuWait <= 0 {
		opts.MenuWait = 8 * time.Second
	}
	s := &Server{opts: opts, log: opts.Logger, exts: map[string]Target{}, ctx: context.Background()}
	s.cfg.Store(cfg)
	return s, nil
}

// Name implements app.Part.
func (s *Server) Name() string { return "label recording" }

// Start routes the record extensions here.
func (s *Server) Start(context.Context) error {
	s.sync()
	return nil
}

// Run serves until ctx ends, then ends the calls in progress.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	exts := s.exts
	s.exts = map[string]Target{}
	s.mu.Unlock()
	for e := range exts {
		s.opts.SIP.Unhandle(e)
	}
	s.calls.Wait()
	return nil
}

// Reload applies a new config: slots and prefixes added or removed.
func (s *Server) Reload(cfg *config.Config) error {
	s.cfg.Store(cfg)
	s.sync()
	return nil
}

// Extensions maps each record extension of cfg to its slot and kind.
func Extensions(cfg *config.Config) map[string]Target {
	out := map[string]Target{}
	for _, k := range []struct {
		prefix string
		kind   labels.Kind
	}{{cfg.Labels.RecordPrefix, labels.KindLabel}, {cfg.Labels.AnnouncementPrefix, labels.KindAnnouncement}} {
		if k.prefix == "" || k.prefix == "off" {
			continue
		}
		for _, l := range cfg.Park.Lots {
			for n := l.Slots.First; n <= l.Slots.Last && n-l.Slots.First < 1000; n++ {
				slot := strconv.Itoa(n)
				out[k.prefix+slot] = Target{slot, k.kind}
			}
		}
	}
	return out
}

func (s *Server) sync() {
	want := Extensions(s.cfg.Load())
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	var add, remove []string
	for e := range want {
		if _, ok := s.exts[e]; !ok {
			add = append(add, e)
		}
	}
	for e := range s.exts {
		if _, ok := want[e]; !ok {
			remove = append(remove, e)
		}
	}
	s.exts = want
	s.mu.Unlock()
	for _, e := range remove {
		s.opts.SIP.Unhandle(e)
	}
	for _, e := range add {
		s.opts.SIP.Handle(e, s.onInvite)
	}
}

// call is one recording call.
type call struct {
	s      *Server
	slot   string
	kind   labels.Kind
	who    string
	in     *sipstack.IncomingCall
	leg    *media.Leg
	digits chan media.Digit
	ended  chan struct{}
	once   sync.Once
	target float64
}

func (c *call) hungUp() { c.once.Do(func() { close(c.ended) }) }

func (c *call) digit(d media.Digit) {
	select {
	case c.digits <- d:
	default: // a caller hammering keys: drop the excess
	}
}

func (s *Server) onInvite(in *sipstack.IncomingCall) {
	cfg := s.cfg.Load()
	s.mu.Lock()
	e, ok := s.exts[in.Ext]
	stopped, ctx := s.stopped, s.ctx
	s.mu.Unlock()
	if !ok || stopped {
		_ = in.Respond(404, "")
		return
	}
	user := in.AuthUser
	if user == "" {
		user = sipstack.CallerIdentity(in.Request).User
	}
	if !livepage.Allowed(cfg.Labels.Allow, user, cfg) {
		s.log.Info("label recording refused: not in labels.allow", "ext", in.Ext, "user", user, "source", in.Source)
		_ = in.Respond(403, "Recording Not Allowed")
		return
	}
	leg, err := s.opts.Media.NewLeg(media.LegOptions{})
	if err != nil {
		s.log.Error("label recording: no RTP port", "ext", in.Ext, "err", err)
		_ = in.Respond(503, "")
		return
	}
	var sdp []byte
	if body := in.Request.Body(); len(body) == 0 {
		sdp = leg.Offer()
	} else if sdp, err = leg.Answer(body); err != nil {
		leg.Close()
		code := 400
		if errors.Is(err, media.ErrNoCodec) {
			code = 488
		}
		_ = in.Respond(code, "")
		return
	}
	c := &call{s: s, slot: e.Slot, kind: e.Kind, who: user, in: in, leg: leg,
		digits: make(chan media.Digit, 8), ended: make(chan struct{}), target: cfg.Announce.Loudness}
	leg.OnDTMF(c.digit)
	in.SetHandler(sipstack.DialogHandler{
		Reinvite: func(req *sip.Request) sipstack.Reply {
			if len(req.Body()) == 0 {
				return sipstack.Reply{Code: 200, SDP: leg.CurrentAnswer()}
			}
			ans, err := leg.Answer(req.Body())
			if err != nil {
				return sipstack.Reply{Code: 488}
			}
			return sipstack.Reply{Code: 200, SDP: ans}
		},
		Request: func(req *sip.Request) sipstack.Reply {
			if req.Method == sip.INFO {
				if d, ok := InfoDigit(req); ok {
					c.digit(d)
				}
				return sipstack.Reply{Code: 200}
			}
			return sipstack.Reply{Code: 405}
		},
		Ack: func(req *sip.Request) {
			if len(req.Body()) > 0 {
				if _, ok := leg.Negotiated(); !ok {
					_ = leg.SetAnswer(req.Body())
				}
			}
		},
		Ended: func(string) { c.hungUp() },
	})
	s.calls.Add(1)
	if err := in.Answer(sdp); err != nil {
		s.log.Warn("label recording: answer failed", "ext", in.Ext, "err", err)
		leg.Close()
		s.calls.Done()
		return
	}
	s.log.Info("label recording call answered", "slot", e.Slot, "kind", e.Kind, "user", user)
	go func() {
		defer s.calls.Done()
		defer leg.Close()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { // ends with the call: cancel is deferred
			select {
			case <-c.ended:
				cancel()
			case <-cctx.Done():
			}
		}()
		c.run(cctx)
		c.hangup()
	}()
}

// InfoDigit reads a key from a SIP INFO (application/dtmf-relay
// "Signal=#" or application/dtmf "#"), as phones set to SIP INFO DTMF send.
func InfoDigit(req *sip.Request) (media.Digit, bool) {
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = strings.ToLower(strings.TrimSpace(h.Value()))
	}
	body := strings.TrimSpace(string(req.Body()))
	var sig string
	switch {
	case strings.HasPrefix(ct, "application/dtmf-relay"):
		for _, line := range strings.Split(body, "\n") {
			k, v, ok := strings.Cut(line, "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "signal") {
				sig = strings.TrimSpace(v)
			}
		}
	case strings.HasPrefix(ct, "application/dtmf"):
		sig = body
	default:
		return 0, false
	}
	if len(sig) != 1 {
		return 0, false
	}
	if _, ok := media.EventCode(rune(sig[0])); !ok {
		return 0, false
	}
	r := rune(sig[0])
	if r >= 'a' && r <= 'd' {
		r -= 'a' - 'A'
	}
	return media.Digit(r), true
}

func (c *call) hangup() {
	select {
	case <-c.ended:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.in.Hangup(ctx)
	c.hungUp()
}

// what names the recording in prompts.
func (c *call) what() string {
	if c.kind == labels.KindAnnouncement {
		return "the announcement"
	}
	return "the label"
}

func (c *call) run(ctx context.Context) {
	log := c.s.log.With("slot", c.slot, "kind", c.kind, "user", c.who)
	intro := fmt.Sprintf("Record %s for slot %s after the tone. Press pound when you are done.", c.what(), announce.SpeakNumber(c.slot))
	for attempt := 1; attempt <= Attempts; attempt++ {
		if c.say(ctx, intro, false) == gone {
			return
		}
		rec, ok := c.record(ctx)
		if !ok {
			log.Info("label recording: caller hung up while recording; nothing kept")
			return
		}
		log.Debug("label recording taken", "attempt", attempt, "seconds", float64(len(rec))/codec.SampleRate, "loudness_dbfs", announce.Loudness(rec))
		pcm, err := labels.Prepare(rec, c.kind, c.target)
		if err != nil {
			log.Info("label recording refused", "attempt", attempt, "err", err)
			p, _ := labels.AsProblem(err)
			reason := "That recording could not be used."
			if p != nil {
				reason = p.Spoken
				c.s.count(p.Code)
			}
			intro = reason + " " + fmt.Sprintf("Record %s again after the tone, then press pound.", c.what())
			continue
		}
		switch c.confirm(ctx, pcm) {
		case '1':
			r, err := c.s.opts.Store.Save(c.slot, c.kind, pcm, c.who)
			if err != nil {
				log.Error("label recording: saving failed", "err", err)
				c.say(ctx, "Sorry, the recording could not be saved.", false)
				return
			}
			log.Info("label recording saved", "file", r.File, "seconds", fmt.Sprintf("%.2f", r.Seconds))
			c.s.count("saved")
			if c.s.opts.Saved != nil {
				c.s.opts.Saved(r)
			}
			c.say(ctx, "Saved. Goodbye.", false)
			return
		case '2':
			intro = fmt.Sprintf("Record %s again after the tone, then press pound.", c.what())
			attempt-- // a retry the caller chose is not a failure
			continue
		default:
			log.Info("label recording: no choice made; nothing kept")
			return
		}
	}
	log.Info("label recording: too many refused attempts; nothing kept")
	c.say(ctx, "Nothing was saved. Goodbye.", false)
}

func (s *Server) count(result string) {
	if s.opts.Metrics != nil {
		s.opts.Metrics.GetOrCreateCounter(fmt.Sprintf(`parkpage_label_recordings_total{result=%q}`, result)).Inc()
	}
}

const gone media.Digit = -1

// say speaks text; with barge a key pressed meanwhile stops it and is
// returned. It returns gone when the call ended.
func (c *call) say(ctx context.Context, text string, barge bool) media.Digit {
	pcm, err := c.s.opts.Speaker.Synthesize(ctx, text)
	if err != nil {
		c.s.log.Warn("label recording: prompt synthesis failed", "text", text, "err", err)
		pcm = nil
	}
	pcm = announce.Level(pcm, c.target, 0)
	return c.play(ctx, pcm, barge)
}

func (c *call) play(ctx context.Context, pcm []int16, barge bool) media.Digit {
	if !barge {
		c.drain()
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.leg.Play(pctx, pcm)
	}()
	for {
		select {
		case <-done:
			if ctx.Err() != nil {
				return gone
			}
			return 0
		case d := <-c.digits:
			if barge {
				cancel()
				c.leg.Flush()
				<-done
				return d
			}
		case <-ctx.Done():
			<-done
			return gone
		}
	}
}

// drain forgets keys pressed before now (a # pressed during a prompt must
// not end the recording that follows it).
func (c *call) drain() {
	for {
		select {
		case <-c.digits:
		default:
			return
		}
	}
}

// record plays the tone and records until # (or any key), the kind's
// maximum length plus a second, or the caller hangs up (ok false).
func (c *call) record(ctx context.Context) (pcm []int16, ok bool) {
	if c.play(ctx, livepage.Beep(1000, 200*time.Millisecond), false) == gone {
		return nil, false
	}
	c.drain()
	maxN := int((labels.LimitsFor(c.kind).Max + time.Second) * codec.SampleRate / time.Second)
	var mu sync.Mutex
	full := make(chan struct{})
	var fullOnce sync.Once
	c.leg.OnAudio(func(in []int16) {
		mu.Lock()
		defer mu.Unlock()
		room := maxN - len(pcm)
		if room <= 0 {
			fullOnce.Do(func() { close(full) })
			return
		}
		pcm = append(pcm, in[:min(len(in), room)]...)
	})
	defer c.leg.OnAudio(nil)
	// A phone that stops sending RTP (muted, or on hold) must not keep the
	// recording open: the wall clock ends it too.
	limit := time.NewTimer(labels.LimitsFor(c.kind).Max + 4*time.Second)
	defer limit.Stop()
	select {
	case <-c.digits:
	case <-full:
	case <-limit.C:
	case <-ctx.Done():
		return nil, false
	}
	c.leg.OnAudio(nil)
	mu.Lock()
	defer mu.Unlock()
	return pcm, true
}

// confirm plays the recording back and asks whether to keep it; it
// returns '1', '2' or 0 (no answer, or the call ended).
func (c *call) confirm(ctx context.Context, pcm []int16) media.Digit {
	if d := c.say(ctx, "You recorded:", true); d == gone {
		return 0
	} else if d == '1' || d == '2' {
		return d
	}
	if d := c.play(ctx, pcm, true); d == gone {
		return 0
	} else if d == '1' || d == '2' {
		return d
	}
	for range 2 {
		d := c.say(ctx, "Press 1 to keep it, or 2 to record again.", true)
		if d == gone {
			return 0
		}
		if d == 0 {
			t := time.NewTimer(c.s.opts.MenuWait)
			select {
			case d = <-c.digits:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return 0
			}
			t.Stop()
		}
		if d == '1' || d == '2' {
			return d
		}
	}
	return 0
}
