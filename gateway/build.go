package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/multicast"
	"github.com/parkpage/parkpage/multicast/polycom"
)

// Builder makes zone outputs from config; its Output method is the
// OutputFactory for Options.Outputs. Polycom and RTP outputs are built here
// on package multicast; SIP and line-out outputs come from the SIP and
// LineOut hooks (internal/sipout, internal/lineout), which cmd wiring sets.
type Builder struct {
	// Pacer sends every multicast stream; required for polycom and rtp
	// outputs. Its owner runs and stops it.
	Pacer *multicast.Pacer
	// SIP and LineOut make outputs of those types; nil makes such an output
	// a build error.
	SIP, LineOut OutputFactory
	// HostSerial is the Polycom sender identity for outputs without
	// host_serial; 0: the last 4 bytes of the sending interface's MAC (as
	// phones do), or a hash of the host name when it has none.
	HostSerial uint32
	// DefaultInterface is the interface for multicast outputs that name none;
	// "": the interface of the default route.
	DefaultInterface string
	// PolycomTiming overrides the Polycom session cadence (zero fields: the
	// phones' defaults). Tests shorten it.
	PolycomTiming polycom.Timing
	Logger        *slog.Logger

	mu      sync.Mutex
	sockets map[socketKey]*multicast.Sender
}

// socketKey is what Senders must agree on to share a socket.
type socketKey struct {
	iface    string
	ttl      int
	loopback bool
	srcPort  int // polycom source_port; 0: random
}

// Output makes the output for output i of zone. Outputs are named
// OutputName(zone, i).
func (b *Builder) Output(zone string, i int, o *config.Output) (Output, error) {
	switch o.Type {
	case config.OutputPolycom:
		return b.polycom(OutputName(zone, i), o)
	case config.OutputRTP:
		return b.rtp(OutputName(zone, i), o)
	case config.OutputSIP:
		if b.SIP == nil {
			return nil, errors.New("sip outputs are not available in this build")
		}
		return b.SIP(zone, i, o)
	case config.OutputLineOut:
		if b.LineOut == nil {
			return nil, errors.New("lineout outputs are not available in this build")
		}
		return b.LineOut(zone, i, o)
	}
	return nil, fmt.Errorf("unknown output type %q", o.Type)
}

func (b *Builder) logger() *slog.Logger {
	if b.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Logger
}

// sender opens (or shares) a socket for a multicast output.
func (b *Builder) sender(o *config.Output) (*multicast.Sender, string, error) {
	if b.Pacer == nil {
		return nil, "", errors.New("no multicast pacer")
	}
	iface := o.Interface
	if iface == "" {
		iface = b.DefaultInterface
	}
	if iface == "" {
		var err error
		if iface, err = defaultRouteInterface(); err != nil {
			return nil, "", fmt.Errorf("no interface configured and %w", err)
		}
	}
	ttl := multicast.DefaultTTL
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
		// One socket per interface/TTL/loopback lets the Pacer send a tick's
		// packets for all of them with one sendmmsg.
		if s, err := base.Share(o.Group, o.Port); err == nil {
			return s, iface, nil
		}
		// Every user of that socket has closed it: open a new one.
	}
	s, err := multicast.NewSender(multicast.SenderConfig{
		Group: o.Group, Port: o.Port, Interface: iface, TTL: ttl, Loopback: o.Loopback, SourcePort: srcPort,
	})
	if err != nil {
		return nil, "", err
	}
	if b.sockets == nil {
		b.sockets = map[socketKey]*multicast.Sender{}
	}
	b.sockets[key] = s
	return s, iface, nil
}

func (b *Builder) polycom(name string, o *config.Output) (Output, error) {
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
		serial = b.HostSerial
	}
	if serial == 0 {
		serial = hostSerial(iface)
	}
	p := &polycomOutput{
		name:   name,
		pacer:  b.Pacer,
		sender: s,
		codec:  codec.Name(o.Codec),
		log:    b.logger(),
		opts: multicast.PolycomOptions{
			CallerID: o.CallerID, Codec: pc, AllowG711A: o.AllowG711A,
			HostSerial: serial, Timing: b.PolycomTiming,
		},
		channels: [PriorityEmergency + 1]int{
			PriorityTest: o.Channel, PriorityPark: o.Channel,
			PriorityLive: o.PriorityCh, PriorityEmergency: o.EmergencyCh,
		},
	}
	if o.Frame > 0 {
		p.opts.Timing.FrameInterval = o.Frame.D()
	}
	// Check every channel now, so a bad config fails at load, not mid-page.
	for _, ch := range p.channels {
		opts := p.opts
		opts.Channel = ch
		if _, err := multicast.NewPolycomOutput(b.Pacer, s, opts); err != nil {
			s.Close()
			return nil, err
		}
	}
	return p, nil
}

func (b *Builder) rtp(name string, o *config.Output) (Output, error) {
	opts := multicast.RTPOptions{Codec: codec.Name(o.Codec)}
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
	out, err := multicast.NewRTPOutput(b.Pacer, s, opts)
	if err != nil {
		s.Close()
		return nil, err
	}
	return &rtpOutput{name: name, sender: s, out: out, codec: opts.Codec, log: b.logger()}, nil
}

// polycomOutput plays pages as Polycom group pages. The channel follows the
// page's priority, so phones rank pages as the gateway does: test and park
// on the output's channel, live on its priority_channel (interrupts normal
// pages and calls; set it equal to channel to keep live pages normal),
// emergency on its emergency_channel (plays through DND).
type polycomOutput struct {
	name     string
	pacer    *multicast.Pacer
	sender   *multicast.Sender
	codec    codec.Name
	opts     multicast.PolycomOptions
	channels [PriorityEmergency + 1]int
	log      *slog.Logger
}

func (o *polycomOutput) Name() string { return o.name }

// Channel is the channel a page of priority p goes out on.
func (o *polycomOutput) Channel(p Priority) int {
	if p < 0 || int(p) >= len(o.channels) {
		return o.channels[PriorityPark]
	}
	return o.channels[p]
}

func (o *polycomOutput) Play(ctx context.Context, pb *Playback) error {
	if la, ok := pb.Audio.(LiveAudio); ok {
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
	st, err := out.Play(ctx, frames)
	logStats(o.log, o.name, pb.ID, st)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return err
}

// session makes the Polycom sender of one page: the channel of its
// priority, its caller ID.
func (o *polycomOutput) session(pb *Playback) (*multicast.PolycomOutput, error) {
	opts := o.opts
	opts.Channel = o.Channel(pb.Priority)
	if pb.CallerID != "" {
		opts.CallerID = pb.CallerID
	}
	out, err := multicast.NewPolycomOutput(o.pacer, o.sender, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return out, nil
}

func (o *polycomOutput) Close() error { return o.sender.Close() }

// rtpOutput plays pages as RTP multicast streams.
type rtpOutput struct {
	name   string
	sender *multicast.Sender
	out    *multicast.RTPOutput
	codec  codec.Name
	log    *slog.Logger
}

func (o *rtpOutput) Name() string { return o.name }

func (o *rtpOutput) Play(ctx context.Context, pb *Playback) error {
	if la, ok := pb.Audio.(LiveAudio); ok {
		return o.playLive(ctx, pb, la)
	}
	frames, err := pb.Audio.Frames(o.codec)
	if err != nil {
		return fmt.Errorf("%s: render %s: %w", o.name, o.codec, err)
	}
	st, err := o.out.Play(ctx, frames)
	logStats(o.log, o.name, pb.ID, st)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return err
}

func (o *rtpOutput) Close() error { return o.sender.Close() }

func logStats(log *slog.Logger, name, page string, st multicast.Stats) {
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
	if ifi := findInterface(iface); ifi != nil && len(ifi.HardwareAddr) >= 4 {
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

// findInterface finds an interface by name or by one of its addresses.
func findInterface(s string) *net.Interface {
	if ifi, err := net.InterfaceByName(s); err == nil {
		return ifi
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for i := range ifs {
		addrs, _ := ifs[i].Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return &ifs[i]
			}
		}
	}
	return nil
}

// defaultRouteInterface is the interface of the IPv4 default route, what
// config's "interface: empty" means. An appliance may start before DHCP has
// given it a route: then the one multicast-capable Ethernet-like interface
// that is up will do (the socket is bound to the interface, not to an
// address, so it works once the address arrives).
func defaultRouteInterface() (string, error) {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("find the default route: %w", err)
	}
	name, err := parseDefaultRoute(string(data))
	if err == nil {
		return name, nil
	}
	// A route for the multicast range itself (224.0.0.0/4) is where the
	// kernel would send the pages: a lab network, or a private namespace
	// with "ip route add 224.0.0.0/4 dev lo".
	if name := multicastRoute(string(data)); name != "" {
		return name, nil
	}
	ifs, ierr := net.Interfaces()
	if ierr != nil {
		return "", err
	}
	var up []string
	for _, i := range ifs {
		if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0 && i.Flags&net.FlagLoopback == 0 {
			up = append(up, i.Name)
		}
	}
	if len(up) == 1 {
		return up[0], nil
	}
	return "", err
}

// multicastRoute returns the interface of an up route for 224.0.0.0/4 in
// /proc/net/route text (addresses in host byte order hex), or "".
func multicastRoute(s string) string {
	const rtfUp = 0x1
	for i, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		mask, err3 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || flags&rtfUp == 0 {
			continue
		}
		// Little-endian on the machines parkpage runs on: 224.0.0.0 is
		// 000000E0, 240.0.0.0 is 000000F0.
		if dst == 0x000000E0 && mask == 0x000000F0 {
			return f[0]
		}
	}
	return ""
}

// parseDefaultRoute picks the up default route with the lowest metric from
// /proc/net/route text.
func parseDefaultRoute(s string) (string, error) {
	const rtfUp = 0x1
	best, bestMetric := "", -1
	for i, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 8 {
			continue // header, blank or short line
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		metric, err3 := strconv.Atoi(f[6])
		mask, err4 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		if dst != 0 || mask != 0 || flags&rtfUp == 0 {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	if best == "" {
		return "", errors.New("no IPv4 default route: set the output's interface")
	}
	return best, nil
}
