package multicast

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/multicast/netif"
	"github.com/parkpage/parkpage/multicast/polycom"
)

// OutputsOptions configure Outputs.
type OutputsOptions struct {
	// Pacer sends every multicast stream; required. Its owner runs and
	// stops it.
	Pacer *Pacer
	// HostSerial is the Polycom sender identity for outputs without
	// host_serial; 0: the last 4 bytes of the sending interface's MAC (as
	// phones do), or a hash of the host name when it has none.
	HostSerial uint32
	// DefaultInterface is the interface for outputs that name none; "":
	// netif.Default (the default route's).
	DefaultInterface string
	// PolycomTiming overrides the Polycom session cadence (zero fields: the
	// phones' defaults). Tests shorten it.
	PolycomTiming polycom.Timing
	// Logger; nil: discard.
	Logger *slog.Logger
}

// Outputs makes the zone outputs that page over multicast: Polycom group
// paging and RTP multicast (config types polycom and rtp). Its Polycom and
// RTP methods are output.Factory values. Outputs on the same interface, TTL
// and loopback share one socket, so the Pacer sends a tick's packets for
// all of them with one sendmmsg.
type Outputs struct {
	opts OutputsOptions
	log  *slog.Logger

	mu      sync.Mutex
	sockets map[socketKey]*Sender
}

// NewOutputs returns the multicast output kinds sending through
// opts.Pacer.
func NewOutputs(opts OutputsOptions) *Outputs {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outputs{opts: opts, log: log}
}

// socketKey is what Senders must agree on to share a socket.
type socketKey struct {
	iface    string
	ttl      int
	loopback bool
	srcPort  int // polycom source_port; 0: random
}

// sender opens (or shares) a socket for a multicast output.
func (b *Outputs) sender(o *config.Output) (*Sender, string, error) {
	if b.opts.Pacer == nil {
		return nil, "", errors.New("no multicast pacer")
	}
	iface := o.Interface
	if iface == "" {
		iface = b.opts.DefaultInterface
	}
	iface, err := netif.Resolve(iface)
	if err != nil {
		return nil, "", fmt.Errorf("no interface configured and %w: set the output's interface", err)
	}
	ttl := DefaultTTL
	if o.TTL != nil {
		ttl = *o.TTL
	}
	srcPort := 0
	if o.Type == config.OutputPolycom && o.SourcePort != nil {
		srcPort = *o.SourcePort
	}
	key := socketKey{iface, ttl, o.Loopback, srcPort}
	b.mu.Lock()
	defer b.mu.Unlock()
	if base := b.sockets[key]; base != nil {
		if s, err := base.Share(o.Group, o.Port); err == nil {
			return s, iface, nil
		}
		// Every user of that socket has closed it: open a new one.
	}
	s, err := NewSender(SenderConfig{
		Group: o.Group, Port: o.Port, Interface: iface, TTL: ttl, Loopback: o.Loopback, SourcePort: srcPort,
	})
	if err != nil {
		return nil, "", err
	}
	if b.sockets == nil {
		b.sockets = map[socketKey]*Sender{}
	}
	b.sockets[key] = s
	return s, iface, nil
}

// Polycom makes output i of zone, a Polycom group page (config type
// polycom): codec pcmu, g722 or (allow_g711a) pcma; channel,
// priority_channel, emergency_channel; caller_id; host_serial.
func (b *Outputs) Polycom(zone string, i int, o *config.Output) (output.Output, error) {
	var pc polycom.Codec
	switch codec.Name(o.Codec) {
	case codec.PCMU:
		pc = polycom.CodecG711U
	case codec.G722:
		pc = polycom.CodecG722
	case codec.PCMA:
		pc = polycom.CodecG711A
	default:
		return nil, fmt.Errorf("codec %q: Polycom paging sends pcmu or g722", o.Codec)
	}
	s, iface, err := b.sender(o)
	if err != nil {
		return nil, err
	}
	serial := o.HostSerial
	if serial == 0 {
		serial = b.opts.HostSerial
	}
	if serial == 0 {
		serial = hostSerial(iface)
	}
	p := &polycomZoneOutput{
		name:   output.Name(zone, i),
		pacer:  b.opts.Pacer,
		sender: s,
		codec:  codec.Name(o.Codec),
		log:    b.log,
		opts: PolycomOptions{
			CallerID: o.CallerID, Codec: pc, AllowG711A: o.AllowG711A,
			HostSerial: serial, Timing: b.opts.PolycomTiming,
		},
		channels: [output.PriorityEmergency + 1]int{
			output.PriorityTest: o.Channel, output.PriorityPark: o.Channel,
			output.PriorityLive: o.PriorityCh, output.PriorityEmergency: o.EmergencyCh,
		},
	}
	if o.Frame > 0 {
		p.opts.Timing.FrameInterval = o.Frame.D()
	}
	// Check every channel now, so a bad config fails at load, not mid-page.
	for _, ch := range p.channels {
		opts := p.opts
		opts.Channel = ch
		if _, err := NewPolycomOutput(b.opts.Pacer, s, opts); err != nil {
			s.Close()
			return nil, err
		}
	}
	return p, nil
}

// RTP makes output i of zone, an RTP multicast stream (config type rtp):
// codec, payload_type.
func (b *Outputs) RTP(zone string, i int, o *config.Output) (output.Output, error) {
	opts := RTPOptions{Codec: codec.Name(o.Codec)}
	if o.PayloadType != nil {
		if *o.PayloadType < 0 || *o.PayloadType > 127 {
			return nil, fmt.Errorf("payload_type %d: out of range 0-127", *o.PayloadType)
		}
		opts.PayloadType = uint8(*o.PayloadType)
	}
	s, _, err := b.sender(o)
	if err != nil {
		return nil, err
	}
	out, err := NewRTPOutput(b.opts.Pacer, s, opts)
	if err != nil {
		s.Close()
		return nil, err
	}
	return &rtpZoneOutput{name: output.Name(zone, i), sender: s, out: out, codec: opts.Codec, log: b.log}, nil
}

// polycomZoneOutput plays pages as Polycom group pages. The channel follows
// the page's priority, so phones rank pages as the gateway does: test and
// park on the output's channel, live on its priority_channel (interrupts
// normal pages and calls; set it equal to channel to keep live pages
// normal), emergency on its emergency_channel (plays through DND).
type polycomZoneOutput struct {
	name     string
	pacer    *Pacer
	sender   *Sender
	codec    codec.Name
	opts     PolycomOptions
	channels [output.PriorityEmergency + 1]int
	log      *slog.Logger
}

func (o *polycomZoneOutput) Name() string { return o.name }

// Channel is the channel a page of priority p goes out on.
func (o *polycomZoneOutput) Channel(p output.Priority) int {
	if p < 0 || int(p) >= len(o.channels) {
		return o.channels[output.PriorityPark]
	}
	return o.channels[p]
}

func (o *polycomZoneOutput) Play(ctx context.Context, pb *output.Playback) error {
	if la, ok := pb.Audio.(output.LiveAudio); ok {
		return o.playLive(ctx, pb, la)
	}
	frames, err := pb.Audio.Frames(o.codec)
	if err != nil {
		return fmt.Errorf("%s: render %s: %w", o.name, o.codec, err)
	}
	out, err := o.session(pb)
	if err != nil {
		return err
	}
	begin, err := o.startAt(ctx, pb)
	if err != nil {
		return err
	}
	st, err := out.PlayAt(ctx, frames, begin)
	logStats(o.log, o.name, pb.ID, st)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return err
}

// session makes the Polycom sender of one page: the channel of its
// priority, its caller ID.
func (o *polycomZoneOutput) session(pb *output.Playback) (*PolycomOutput, error) {
	opts := o.opts
	opts.Channel = o.Channel(pb.Priority)
	if pb.CallerID != "" {
		opts.CallerID = pb.CallerID
	}
	out, err := NewPolycomOutput(o.pacer, o.sender, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return out, nil
}

func (o *polycomZoneOutput) Close() error { return o.sender.Close() }

// AlignsStart implements output.Aligned: the zone's other outputs wait
// for the Alerts.
func (o *polycomZoneOutput) AlignsStart() {}

// Preamble is how long a page on this output sends Alerts before audio.
func (o *polycomZoneOutput) Preamble() time.Duration { return o.opts.Timing.Preamble() }

// startAt lines the page up with the zone's other outputs: it returns when
// the Alerts must begin for the first Transmit to leave with their first
// audio frames (zero: at once).
func (o *polycomZoneOutput) startAt(ctx context.Context, pb *output.Playback) (time.Time, error) {
	return output.StartAt(ctx, pb, output.Ready{Lead: o.Preamble()})
}

// rtpZoneOutput plays pages as RTP multicast streams.
type rtpZoneOutput struct {
	name   string
	sender *Sender
	out    *RTPOutput
	codec  codec.Name
	log    *slog.Logger
}

func (o *rtpZoneOutput) Name() string { return o.name }

func (o *rtpZoneOutput) Play(ctx context.Context, pb *output.Playback) error {
	if la, ok := pb.Audio.(output.LiveAudio); ok {
		return o.playLive(ctx, pb, la)
	}
	frames, err := pb.Audio.Frames(o.codec)
	if err != nil {
		return fmt.Errorf("%s: render %s: %w", o.name, o.codec, err)
	}
	begin, err := output.StartAt(ctx, pb, output.Ready{})
	if err != nil {
		return err
	}
	st, err := o.out.PlayAt(ctx, frames, begin)
	logStats(o.log, o.name, pb.ID, st)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return err
}

func (o *rtpZoneOutput) Close() error { return o.sender.Close() }

// AlignsStart implements output.Aligned: the stream waits for the zone's
// slower outputs (Polycom's Alerts, SIP amplifiers' set-up).
func (o *rtpZoneOutput) AlignsStart() {}

func logStats(log *slog.Logger, name, page string, st Stats) {
	lvl := slog.LevelDebug
	if st.Dropped > 0 || st.Late > 0 {
		lvl = slog.LevelWarn
	}
	log.Log(context.Background(), lvl, "multicast page sent", "output", name, "page", page,
		"packets", st.Packets, "late", st.Late, "max_late", st.MaxLate, "dropped", st.Dropped, "stopped", st.Stopped)
}

// hostSerial derives a Polycom host serial the way phones do (last 4 bytes
// of the MAC), falling back to a hash of the host name (loopback, tunnels).
func hostSerial(iface string) uint32 {
	if ifi, err := netif.Find(iface); err == nil && len(ifi.HardwareAddr) >= 4 {
		m := ifi.HardwareAddr[len(ifi.HardwareAddr)-4:]
		if s := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3]); s != 0 {
			return s
		}
	}
	h := fnv.New32a()
	name, _ := os.Hostname()
	h.Write([]byte("parkpage/" + name))
	return h.Sum32()
}
