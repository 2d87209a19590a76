// Package phonepage receives the pages phones send themselves, a Poly VVX's
// group page or push-to-talk on a Polycom channel, a Yealink's RTP
// multicast page on a group, and relays each to the mapped zones' SIP
// amplifiers, line outs and relays (config phone_pages), so a phone's own
// paging key reaches the ceiling speakers too.
//
// Loops are impossible by construction: a relayed page plays only on
// non-multicast outputs (paging.Page.OutputTypes), and datagrams that
// parkpage itself sent (Options.Own: its multicast sockets looping back) are
// ignored, so a park announcement on the group is not relayed as a phone
// page either.
//
// Polycom pages are followed with multicast/polycom's Reassembler (Alert
// starts a page, the redundant copy fills a lost packet, End or 500 ms of
// silence ends it, the lowest host serial wins a collision). Frames of 20
// or 30 ms are accepted (the size follows from the packet length), in
// G.711µ, G.722 or G.726-QI (old SoundPoint IP 450/550 phones). RTP pages
// start with the first packet of a stream and end after RTPTimeout of
// silence (Yealink sends no end packet). The audio streams through a
// paging.LiveBuffer, so the amplifiers follow the phone as it talks.
package phonepage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	pionrtp "github.com/pion/rtp"
	"golang.org/x/net/ipv4"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/g726"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/multicast/netif"
	"github.com/parkpage/parkpage/multicast/polycom"
)

// Pager plays pages; *gateway.Gateway is one.
type Pager interface {
	Submit(ctx context.Context, pg paging.Page) (*paging.Handle, error)
}

// DefaultRTPTimeout is the silence that ends a received RTP page.
const DefaultRTPTimeout = time.Second

// relayTypes are the outputs a phone's page is relayed to.
var relayTypes = []string{config.OutputSIP, config.OutputLineOut}

// Options are a Receiver's collaborators.
type Options struct {
	Pager Pager // required
	// Own reports datagrams parkpage sent itself (multicast.Outputs'
	// OwnSource); nil: none are recognised.
	Own func(src netip.AddrPort) bool
	// DefaultInterface is joined for entries without interface; "":
	// netif.Default, the interface the zones' multicast outputs use too.
	DefaultInterface string
	RTPTimeout       time.Duration // default DefaultRTPTimeout
	Logger           *slog.Logger
}

// Receiver listens for the configured phone pages.
type Receiver struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	cfg    []*config.PhonePage
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes a receiver for config section phone_pages; Start opens the
// sockets.
func New(cfg []*config.PhonePage, opts Options) (*Receiver, error) {
	if opts.Pager == nil {
		return nil, errors.New("phonepage: no pager")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RTPTimeout <= 0 {
		opts.RTPTimeout = DefaultRTPTimeout
	}
	return &Receiver{opts: opts, log: opts.Logger, cfg: cfg}, nil
}

// Name implements app.Part.
func (r *Receiver) Name() string { return "phone pages" }

// Start joins the configured groups; a group that cannot be joined fails
// start-up with one line.
func (r *Receiver) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startLocked(ctx, r.cfg)
}

// Run serves until ctx ends, then leaves the groups and ends pages being
// relayed.
func (r *Receiver) Run(ctx context.Context) error {
	<-ctx.Done()
	r.mu.Lock()
	r.stopLocked()
	r.mu.Unlock()
	return nil
}

// Reload re-reads phone_pages: every listener is restarted (a page being
// relayed at that moment ends). On error the receiver keeps nothing open
// for the entries that failed and reports them.
func (r *Receiver) Reload(cfg []*config.PhonePage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
	r.cfg = cfg
	return r.startLocked(context.Background(), cfg)
}

func (r *Receiver) stopLocked() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.cancel = nil
}

// socketKey groups entries that share one socket.
type socketKey struct {
	group, iface string
	port         int
}

func (r *Receiver) startLocked(_ context.Context, cfg []*config.PhonePage) error {
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx, r.cancel = ctx, cancel
	byKey := map[socketKey][]*config.PhonePage{}
	var keys []socketKey
	for _, p := range cfg {
		iface := p.Interface
		if iface == "" {
			iface = r.opts.DefaultInterface
		}
		k := socketKey{p.Group, iface, p.Port}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], p)
	}
	var errs []error
	for _, k := range keys {
		conn, err := listen(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("phone pages on %s:%d: %w", k.group, k.port, err))
			continue
		}
		l := &listener{r: r, conn: conn, key: k, entries: byKey[k]}
		r.wg.Go(func() { l.run(ctx) })
		r.log.Info("listening for phone pages", "group", k.group, "port", k.port, "interface", k.iface, "entries", len(byKey[k]))
	}
	return errors.Join(errs...)
}

// listen binds group:port and joins the group on the interface.
func listen(k socketKey) (*ipv4.PacketConn, error) {
	ifi, err := netif.Find(k.iface)
	if errors.Is(err, netif.ErrNoDefaultRoute) {
		return nil, fmt.Errorf("%w: set phone_pages[].interface", err)
	}
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: reuseAddr}
	c, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(k.group, fmt.Sprint(k.port)))
	if err != nil {
		return nil, err
	}
	pc := ipv4.NewPacketConn(c)
	if err := pc.JoinGroup(ifi, &net.UDPAddr{IP: net.ParseIP(k.group)}); err != nil {
		c.Close()
		return nil, fmt.Errorf("join on %s: %w", ifi.Name, err)
	}
	return pc, nil
}

// listener serves one socket: every entry on one group and port. All page
// state lives on its goroutine.
type listener struct {
	r       *Receiver
	conn    *ipv4.PacketConn
	key     socketKey
	entries []*config.PhonePage

	polycom map[int]*polycomPage // by channel
	rtp     *rtpPage
	seq     int
}

func (l *listener) run(ctx context.Context) {
	defer l.conn.Close()
	l.polycom = map[int]*polycomPage{}
	for _, e := range l.entries {
		if e.Type == config.PhonePagePolycom {
			l.polycom[e.Channel] = &polycomPage{entry: e, re: &polycom.Reassembler{Channel: e.Channel}}
		}
	}
	buf := make([]byte, 2048)
	var events []polycom.Event
	for ctx.Err() == nil {
		_ = l.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, src, err := l.conn.ReadFrom(buf)
		now := time.Now()
		if err == nil {
			if ua, ok := src.(*net.UDPAddr); ok {
				l.packet(ctx, now, ua.AddrPort(), buf[:n], &events)
			}
		} else if !isTimeout(err) {
			if !errors.Is(err, net.ErrClosed) {
				l.r.log.Warn("phone page receive", "group", l.key.group, "err", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		l.tick(ctx, now, &events)
	}
	for _, p := range l.polycom {
		p.end()
	}
	if l.rtp != nil {
		l.rtp.end()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// packet handles one datagram.
func (l *listener) packet(ctx context.Context, now time.Time, src netip.AddrPort, b []byte, events *[]polycom.Event) {
	if own := l.r.opts.Own; own != nil && own(src) {
		return // parkpage's own page looping back
	}
	if len(l.polycom) > 0 {
		pk, err := polycom.Parse(b)
		if err == nil {
			if p := l.polycom[int(pk.Channel)]; p != nil {
				*events = p.re.Push((*events)[:0], now, &pk)
				p.handle(ctx, l.r, *events)
			}
			return
		}
	}
	for _, e := range l.entries {
		if e.Type == config.PhonePageRTP {
			l.rtpPacket(ctx, now, e, b)
			return
		}
	}
}

func (l *listener) tick(ctx context.Context, now time.Time, events *[]polycom.Event) {
	for _, p := range l.polycom {
		*events = p.re.Tick((*events)[:0], now)
		p.handle(ctx, l.r, *events)
	}
	if l.rtp != nil && now.Sub(l.rtp.last) > l.r.opts.RTPTimeout {
		l.rtp.end()
		l.rtp = nil
	}
}

// relay is one page being relayed.
type relay struct {
	buf *paging.LiveBuffer
	dec codec.Decoder
	dn  codec.Name
	// G.726-QI (old SoundPoints): 8 kHz ADPCM, brought to 16 kHz here.
	qi   *g726.Decoder
	up   codec.Upsampler
	pcm8 []int16
	pcm  []int16
}

func startRelay(ctx context.Context, r *Receiver, e *config.PhonePage, id, who, text string) *relay {
	prio, err := output.ParsePriority(e.Priority)
	if err != nil {
		prio = output.PriorityLive
	}
	buf := paging.NewLiveBuffer()
	buf.Go(nil)
	_, err = r.opts.Pager.Submit(ctx, paging.Page{ID: id, Priority: prio, Zones: e.Zones, Audio: buf,
		Text: text, CallerID: who, OutputTypes: relayTypes})
	if err != nil {
		r.log.Warn("phone page not relayed", "page", id, "err", err)
		buf.Close()
		return nil
	}
	r.log.Info("relaying phone page", "page", id, "zones", e.Zones, "from", who)
	return &relay{buf: buf}
}

func (rl *relay) write(c codec.Name, payload []byte) {
	if rl.dec == nil || rl.dn != c {
		d, err := codec.NewDecoder(c)
		if err != nil {
			return
		}
		rl.dec, rl.dn = d, c
	}
	pcm, err := rl.dec.Decode(nil, payload)
	if err == nil {
		rl.buf.Write(pcm)
	}
}

// writeG726QI decodes a Polycom G.726-QI frame (24 kbit/s, 60 bytes per
// 20 ms) and writes it at the internal rate.
func (rl *relay) writeG726QI(payload []byte) {
	if rl.qi == nil {
		rl.qi = g726.NewDecoder(g726.PackQI)
	}
	rl.pcm8 = rl.qi.Decode(rl.pcm8[:0], payload)
	rl.pcm = rl.up.Process(rl.pcm[:0], rl.pcm8)
	rl.buf.Write(rl.pcm)
}

type polycomPage struct {
	entry *config.PhonePage
	re    *polycom.Reassembler
	cur   *relay
	warn  bool
	n     int
}

func (p *polycomPage) end() {
	if p.cur != nil {
		p.cur.buf.Close()
		p.cur = nil
	}
}

func (p *polycomPage) handle(ctx context.Context, r *Receiver, evs []polycom.Event) {
	for _, ev := range evs {
		switch ev.Kind {
		case polycom.EventStart:
			p.end()
			p.n++
			id := fmt.Sprintf("phone-polycom-%d-%08x-%d", p.entry.Channel, ev.HostSerial, p.n)
			p.cur = startRelay(ctx, r, p.entry, id, ev.CallerID,
				fmt.Sprintf("Polycom page on channel %d from %s", p.entry.Channel, strings.TrimSpace(ev.CallerID)))
		case polycom.EventFrame:
			if p.cur == nil {
				continue
			}
			switch ev.Codec {
			case polycom.CodecG711U:
				p.cur.write(codec.PCMU, ev.Frame)
			case polycom.CodecG711A:
				p.cur.write(codec.PCMA, ev.Frame)
			case polycom.CodecG722:
				p.cur.write(codec.G722, ev.Frame)
			case polycom.CodecG726QI:
				p.cur.writeG726QI(ev.Frame)
			default:
				if !p.warn {
					p.warn = true
					r.log.Warn("phone page codec not supported; set the phones to G.711µ or G.722 (ptt.pageMode.codec)", "codec", ev.Codec, "channel", p.entry.Channel)
				}
			}
		case polycom.EventLost:
			if p.cur != nil {
				// Silence for the lost frames keeps the timing: 20 or 30 ms
				// each (two 16 kHz samples per 8 kHz tick).
				r.log.Debug("phone page frames lost", "channel", p.entry.Channel, "frames", ev.Lost, "sample_count", ev.SampleCount)
				p.cur.buf.Write(make([]int16, min(ev.Lost*int(ev.FrameTicks)*2, codec.SampleRate)))
			}
		case polycom.EventEnd:
			p.end()
		}
	}
}

// rtpPage is the RTP stream being relayed on a listener.
type rtpPage struct {
	cur     *relay
	ssrc    uint32
	lastSeq uint16
	last    time.Time
}

func (p *rtpPage) end() {
	if p.cur != nil {
		p.cur.buf.Close()
		p.cur = nil
	}
}

func (l *listener) rtpPacket(ctx context.Context, now time.Time, e *config.PhonePage, b []byte) {
	var pk pionrtp.Packet
	if pk.Unmarshal(b) != nil || pk.Version != 2 || len(pk.Payload) == 0 {
		return
	}
	var c codec.Name
	switch pk.PayloadType {
	case 0:
		c = codec.PCMU
	case 8:
		c = codec.PCMA
	case 9:
		c = codec.G722
	default:
		return
	}
	p := l.rtp
	if p != nil && p.ssrc != pk.SSRC {
		p.end() // a new talker (or the same phone's next page)
		p = nil
	}
	if p == nil {
		l.seq++
		id := fmt.Sprintf("phone-rtp-%s-%d-%08x-%d", e.Group, e.Port, pk.SSRC, l.seq)
		p = &rtpPage{ssrc: pk.SSRC, lastSeq: pk.SequenceNumber - 1}
		p.cur = startRelay(ctx, l.r, e, id, "", fmt.Sprintf("multicast page on %s:%d", e.Group, e.Port))
		l.rtp = p
	}
	p.last = now
	d := int16(pk.SequenceNumber - p.lastSeq)
	if d <= 0 {
		return // duplicate or late: already covered
	}
	if p.cur == nil {
		return
	}
	if gap := int(d) - 1; gap > 0 && gap <= 50 {
		p.cur.buf.Write(make([]int16, gap*codec.FrameSamples)) // lost packets: keep the timing
	}
	p.lastSeq = pk.SequenceNumber
	p.cur.write(c, pk.Payload)
}
