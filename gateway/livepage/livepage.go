// Package livepage answers page extensions: a phone dials one (801 =
// warehouse, its page key is a speed dial to it), parkpage answers at once,
// checks the extension's allow list, and pages the extension's zones with
// the talker's voice at the extension's priority.
//
// Live mode streams the voice through a paging.LiveBuffer: the page is
// submitted on answer so the outputs set up (relays' lead time, Polycom
// Alerts, SIP amplifiers' dial and zone code) while the talker waits; once
// every output is reading (or ReadyWait after the first one), the chime
// plays on the zones and in the talker's ear at the same moment, and the
// talker's voice follows from the end of the chime, each output 0-20 ms
// behind its arrival plus whatever jitter margin the talker's stream needs
// (an output that starts late plays it delayed by as much, from its start).
//
// Store mode records until the talker hangs up (or max_length, when the
// call is ended for them), then plays chime and recording, levelled, as an
// ordinary pre-rendered page that the gateway replays whole if a higher page
// cuts it. The talker hears a beep when recording starts. Nothing is heard
// while they talk, so a talker under a ceiling speaker cannot howl.
package livepage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// SIP routes INVITEs for extensions; *sipstack.Stack is one.
type SIP interface {
	Handle(ext string, h sipstack.InviteHandler)
	Unhandle(ext string)
}

// Legs opens RTP legs; *media.Engine is one (the appliance's one RTP engine).
type Legs interface {
	NewLeg(o media.LegOptions) (*media.Leg, error)
}

// Pager plays pages; *gateway.Gateway is one.
type Pager interface {
	Submit(ctx context.Context, pg paging.Page) (*paging.Handle, error)
	Zones() []paging.ZoneInfo
}

// Defaults for Options.
const (
	DefaultReadyWait = 2 * time.Second
	DefaultQueueWait = 10 * time.Second
)

// Options are a Server's collaborators.
type Options struct {
	SIP   SIP   // required
	Media Legs  // required
	Pager Pager // required
	// Chime renders a chime by config name ("" = the announce default,
	// "none" = nil). Default: announce.ChimePCM with the config's announce
	// loudness and peak.
	Chime  func(cfg *config.Config, name string) ([]int16, error)
	Logger *slog.Logger
	// ReadyWait is how long a live page waits for its slower outputs once
	// the first is ready (a SIP amplifier that does not answer must not
	// hold up the others). Default DefaultReadyWait.
	ReadyWait time.Duration
	// QueueWait is how long a live page may wait for its zones (another
	// page of equal or higher priority playing) before the talker hears
	// busy. Default DefaultQueueWait.
	QueueWait time.Duration
}

// Server answers the page extensions of the config.
type Server struct {
	opts Options
	log  *slog.Logger
	cfg  atomic.Pointer[config.Config]

	mu      sync.Mutex
	exts    map[string]bool
	ctx     context.Context // the Run context once running
	stopped bool
	calls   sync.WaitGroup
	active  atomic.Int32
	seq     atomic.Uint64
}

// New makes the server for cfg.Pages. Start registers the extensions.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.SIP == nil || opts.Media == nil || opts.Pager == nil {
		return nil, errors.New("livepage: SIP, Media and Pager are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Chime == nil {
		opts.Chime = defaultChime
	}
	if opts.ReadyWait <= 0 {
		opts.ReadyWait = DefaultReadyWait
	}
	if opts.QueueWait <= 0 {
		opts.QueueWait = DefaultQueueWait
	}
	s := &Server{opts: opts, log: opts.Logger, exts: map[string]bool{}, ctx: context.Background()}
	s.cfg.Store(cfg)
	return s, nil
}

func defaultChime(cfg *config.Config, name string) ([]int16, error) {
	return announce.ChimePCM(announce.Config{Chime: cfg.Announce.Chime, TargetDBFS: cfg.Announce.Loudness, CeilingDBFS: cfg.Announce.Peak}, name)
}

// Name implements app.Part.
func (s *Server) Name() string { return "live pages" }

// Start routes the configured page extensions here.
func (s *Server) Start(ctx context.Context) error {
	s.sync()
	return nil
}

// Run serves until ctx ends, then stops answering, ends every live page
// and call, and waits for them.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	s.sync()
	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	exts := s.exts
	s.exts = map[string]bool{}
	s.mu.Unlock()
	for e := range exts {
		s.opts.SIP.Unhandle(e)
	}
	s.calls.Wait()
	return nil
}

// Reload applies a new config: extensions added or removed; pages in
// progress keep the settings they started with.
func (s *Server) Reload(cfg *config.Config) error {
	s.cfg.Store(cfg)
	s.sync()
	return nil
}

// Active is the number of page calls in progress.
func (s *Server) Active() int { return int(s.active.Load()) }

func (s *Server) sync() {
	cfg := s.cfg.Load()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	var add, remove []string
	for e := range cfg.Pages {
		if !s.exts[e] {
			add = append(add, e)
			s.exts[e] = true
		}
	}
	for e := range s.exts {
		if _, ok := cfg.Pages[e]; !ok {
			remove = append(remove, e)
			delete(s.exts, e)
		}
	}
	s.mu.Unlock()
	for _, e := range remove {
		s.opts.SIP.Unhandle(e)
	}
	for _, e := range add {
		s.opts.SIP.Handle(e, s.onInvite)
	}
}

// call is one page call in progress.
type call struct {
	s      *Server
	id     string
	ext    string
	pc     config.PageExt
	cfg    *config.Config
	in     *sipstack.IncomingCall
	leg    *media.Leg
	caller sipstack.Identity
	prio   output.Priority
	ended  chan struct{} // the talker hung up (dialog ended)
	once   sync.Once
}

func (c *call) hungUp() { c.once.Do(func() { close(c.ended) }) }

func (s *Server) onInvite(in *sipstack.IncomingCall) {
	cfg := s.cfg.Load()
	pc := cfg.Pages[in.Ext]
	s.mu.Lock()
	stopped, ctx := s.stopped, s.ctx
	s.mu.Unlock()
	if pc == nil || stopped {
		_ = in.Respond(404, "")
		return
	}
	caller := sipstack.CallerIdentity(in.Request)
	user := in.AuthUser
	if user == "" {
		user = caller.User
	}
	if !Allowed(pc.Allow, user, cfg) {
		s.log.Info("live page refused: not in the extension's allow list", "ext", in.Ext, "user", user, "source", in.Source)
		_ = in.Respond(403, "Paging Not Allowed")
		return
	}
	prio, err := output.ParsePriority(pc.Priority)
	if err != nil || prio < output.PriorityLive {
		prio = output.PriorityLive
	}
	leg, err := s.opts.Media.NewLeg(media.LegOptions{})
	if err != nil {
		s.log.Error("live page: no RTP port", "ext", in.Ext, "err", err)
		_ = in.Respond(503, "")
		return
	}
	var sdp []byte
	if body := in.Request.Body(); len(body) == 0 {
		sdp = leg.Offer() // late offer: the answer comes in the ACK
	} else if sdp, err = leg.Answer(body); err != nil {
		leg.Close()
		code := 400
		if errors.Is(err, media.ErrNoCodec) {
			code = 488
		}
		_ = in.Respond(code, "")
		return
	}
	c := &call{s: s, id: fmt.Sprintf("live-%s-%d", in.Ext, s.seq.Add(1)), ext: in.Ext, pc: *pc, cfg: cfg, in: in,
		leg: leg, caller: caller, prio: prio, ended: make(chan struct{})}
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
	s.active.Add(1)
	if err := in.Answer(sdp); err != nil {
		s.log.Warn("live page: answer failed", "ext", in.Ext, "err", err)
		leg.Close()
		s.active.Add(-1)
		s.calls.Done()
		return
	}
	s.log.Info("live page call answered", "page", c.id, "ext", in.Ext, "caller", caller.String(), "mode", pc.Mode, "zones", pc.Zones, "priority", prio)
	go func() {
		defer s.calls.Done()
		defer s.active.Add(-1)
		defer leg.Close()
		if pc.Mode == "store" {
			c.store(ctx)
		} else {
			c.live(ctx)
		}
	}()
}

// hangup ends the call from our side (idempotent with the talker's BYE).
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

// tell plays pcm to the talker and waits (bounded by ctx and the call).
func (c *call) tell(ctx context.Context, pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends with tell: cancel is deferred
		select {
		case <-c.ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	_ = c.leg.Play(ctx, pcm)
}

func (c *call) page(audio output.Audio, replay bool) paging.Page {
	who := c.caller.Display
	if who == "" {
		who = c.caller.User
	}
	return paging.Page{
		ID: c.id, Priority: c.prio, Zones: slices.Clone(c.pc.Zones), Audio: audio,
		Text:     fmt.Sprintf("live page from %s on %s", who, c.ext),
		CallerID: who, Replay: replay,
	}
}

// expected is how many outputs will read a live page on the extension's
// zones.
func (c *call) expected() int {
	n := 0
	for _, z := range c.s.opts.Pager.Zones() {
		if slices.Contains(c.pc.Zones, z.Name) {
			n += len(z.Outputs)
		}
	}
	return n
}

func (c *call) live(ctx context.Context) {
	s := c.s
	buf := paging.NewLiveBuffer()
	defer buf.Close()
	c.leg.OnAudio(func(pcm []int16) { buf.Write(pcm) })
	defer c.leg.OnAudio(nil)
	pctx, cancelPage := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPage()
	h, err := s.opts.Pager.Submit(pctx, c.page(buf, false))
	if err != nil {
		s.log.Warn("live page refused by the gateway", "page", c.id, "err", err)
		c.tell(ctx, busyTone())
		c.hangup()
		return
	}
	maxLen := time.NewTimer(c.pc.MaxLen.D())
	defer maxLen.Stop()

	switch c.waitReady(ctx, buf, h) {
	case readyGo:
	case readyQueued:
		s.log.Info("live page: zones busy; talker hears busy", "page", c.id, "zones", c.pc.Zones)
		h.Cancel()
		c.tell(ctx, busyTone())
		c.hangup()
		return
	default: // the talker hung up, the page ended or we are stopping
		h.Cancel()
		c.hangup()
		return
	}
	chime, err := s.opts.Chime(c.cfg, c.pc.Chime)
	if err != nil {
		s.log.Warn("live page chime", "page", c.id, "chime", c.pc.Chime, "err", err)
		chime = nil
	}
	buf.Go(chime)
	cue := chime
	if len(cue) == 0 {
		cue = Beep(1000, 150*time.Millisecond)
	}
	var cueing sync.WaitGroup
	defer cueing.Wait()
	cueing.Go(func() { c.tell(ctx, cue) }) // ends with the call at the latest
	s.log.Info("live page on air", "page", c.id, "chime", len(chime) > 0)

	select {
	case <-c.ended:
	case <-maxLen.C:
		s.log.Info("live page reached max_length; ending the call", "page", c.id, "max_length", c.pc.MaxLen)
		buf.Close()
		c.hangup()
	case <-h.Done():
		s.log.Info("live page ended before the talker hung up", "page", c.id)
		c.hangup()
	case <-ctx.Done():
		h.Cancel()
		c.hangup()
	}
	buf.Close()
	select {
	case <-h.Done():
	case <-ctx.Done():
		h.Cancel()
		<-h.Done()
	}
}

type readiness int

const (
	readyGo readiness = iota
	readyQueued
	readyGone
)

// waitReady waits until every output of the page is reading, or ReadyWait
// after the first; readyQueued if none started within QueueWait.
func (c *call) waitReady(ctx context.Context, buf *paging.LiveBuffer, h *paging.Handle) readiness {
	want := c.expected()
	if want == 0 {
		return readyGo // relays only: nothing to wait for
	}
	queued := time.NewTimer(c.s.opts.QueueWait)
	defer queued.Stop()
	var settle <-chan time.Time
	for {
		n, ch := buf.Started()
		if n >= want {
			return readyGo
		}
		if n > 0 && settle == nil {
			t := time.NewTimer(c.s.opts.ReadyWait)
			defer t.Stop()
			settle = t.C
		}
		select {
		case <-ch:
		case <-settle:
			return readyGo
		case <-queued.C:
			if n > 0 {
				continue
			}
			return readyQueued
		case <-c.ended:
			return readyGone
		case <-h.Done():
			return readyGone
		case <-ctx.Done():
			return readyGone
		}
	}
}

func (c *call) store(ctx context.Context) {
	s := c.s
	maxN := int(c.pc.MaxLen.D() * codec.SampleRate / time.Second)
	maxLen := time.NewTimer(c.pc.MaxLen.D() + 150*time.Millisecond)
	defer maxLen.Stop()
	c.tell(ctx, Beep(1000, 150*time.Millisecond)) // "recording"
	var mu sync.Mutex
	var rec []int16
	c.leg.OnAudio(func(pcm []int16) {
		mu.Lock()
		if room := maxN - len(rec); room > 0 {
			rec = append(rec, pcm[:min(len(pcm), room)]...)
		}
		mu.Unlock()
	})
	select {
	case <-c.ended:
	case <-maxLen.C:
		s.log.Info("stored page reached max_length; ending the call", "page", c.id, "max_length", c.pc.MaxLen)
		c.hangup()
	case <-ctx.Done():
		c.hangup()
		return
	}
	c.leg.OnAudio(nil)
	mu.Lock()
	voice := rec
	rec = nil
	mu.Unlock()
	if announce.Loudness(voice) < -60 {
		s.log.Info("stored page was silent; not played", "page", c.id, "samples", len(voice))
		return
	}
	chime, err := s.opts.Chime(c.cfg, c.pc.Chime)
	if err != nil {
		s.log.Warn("stored page chime", "page", c.id, "chime", c.pc.Chime, "err", err)
	}
	pcm := StoredAudio(chime, voice, c.cfg.Announce.Loudness)
	// The page outlives the call: it plays (and replays if cut) on the
	// server's context, not the call's.
	h, err := s.opts.Pager.Submit(context.WithoutCancel(ctx), c.page(storedAudio{&announce.Rendered{PCM: pcm}}, true))
	if err != nil {
		s.log.Warn("stored page refused by the gateway", "page", c.id, "err", err)
		return
	}
	s.log.Info("stored page queued", "page", h.ID(), "seconds", float64(len(voice))/codec.SampleRate)
}

// StoredAudio assembles a stored page: chime, the recording levelled to
// targetDBFS (gain between -12 and +18 dB, never past -1 dBFS peaks), a
// 200 ms tail, padded to whole 20 ms frames.
func StoredAudio(chime, voice []int16, targetDBFS float64) []int16 {
	if targetDBFS == 0 {
		targetDBFS = announce.DefaultTargetDBFS
	}
	gain := 1.0
	if l := announce.Loudness(voice); !math.IsInf(l, -1) {
		gain = math.Pow(10, (targetDBFS-l)/20)
	}
	gain = min(max(gain, math.Pow(10, -12.0/20)), math.Pow(10, 18.0/20))
	peak := 0.0
	for _, v := range voice {
		peak = max(peak, math.Abs(float64(v)))
	}
	if ceil := 32767 * math.Pow(10, -1.0/20); peak*gain > ceil {
		gain = ceil / peak
	}
	out := make([]int16, 0, len(chime)+len(voice)+codec.SampleRate/5+codec.FrameSamples)
	out = append(out, chime...)
	for _, v := range voice {
		out = append(out, int16(math.Round(float64(v)*gain)))
	}
	out = append(out, make([]int16, codec.SampleRate/5)...)
	if rem := len(out) % codec.FrameSamples; rem != 0 {
		out = append(out, make([]int16, codec.FrameSamples-rem)...)
	}
	return out
}

// Allowed reports whether user may page under an allow list of users
// ("1001") and groups ("@reception", from sip.users); an empty list allows
// every caller the SIP stack let in (trusted sources and registered users).
func Allowed(allow []string, user string, cfg *config.Config) bool {
	if len(allow) == 0 {
		return true
	}
	if user == "" {
		return false
	}
	for _, a := range allow {
		if g, ok := strings.CutPrefix(a, "@"); ok {
			if u := cfg.SIP.Users[user]; u != nil && slices.Contains(u.Groups, g) {
				return true
			}
		} else if a == user {
			return true
		}
	}
	return false
}

// Beep is a tone with 10 ms ramps, at -12 dBFS: the cue a caller hears
// before speaking (live and stored pages, label recordings).
func Beep(hz float64, d time.Duration) []int16 {
	n := int(d * codec.SampleRate / time.Second)
	ramp := codec.SampleRate / 100
	out := make([]int16, n)
	for i := range out {
		a := 0.25
		if i < ramp {
			a *= float64(i) / float64(ramp)
		} else if n-i < ramp {
			a *= float64(n-i) / float64(ramp)
		}
		out[i] = int16(32767 * a * math.Sin(2*math.Pi*hz*float64(i)/codec.SampleRate))
	}
	return out
}

// busyTone is three cycles of the North American busy signal (480 + 620 Hz,
// 0.5 s on, 0.5 s off).
func busyTone() []int16 {
	on := int(codec.SampleRate / 2)
	var out []int16
	for range 3 {
		for i := range on {
			t := float64(i) / codec.SampleRate
			out = append(out, int16(32767*0.15*(math.Sin(2*math.Pi*480*t)+math.Sin(2*math.Pi*620*t))))
		}
		out = append(out, make([]int16, on)...)
	}
	return out
}

// storedAudio adapts a recording to output.Audio, encoded once per codec
// (announce.Rendered caches the encodings).
type storedAudio struct{ r *announce.Rendered }

func (a storedAudio) Frames(c codec.Name) ([][]byte, error) { return a.r.Frames(c) }
func (a storedAudio) PCM() []int16                          { return a.r.PCM }
