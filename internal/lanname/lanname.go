// Package lanname makes the appliance reachable by name on the LAN without
// a DNS server: an mDNS responder (RFC 6762, github.com/pion/mdns) that
// answers A/AAAA questions for NAME.local with the box's addresses, so an
// installer can open http://parkpage.local:8080/.
package lanname

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/pion/logging"
	"github.com/pion/mdns/v2"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Responder answers mDNS questions for one name until Close.
type Responder struct {
	conn *mdns.Conn
	Name string // the .local name answered
}

// Options select where the responder answers.
type Options struct {
	// Interfaces limits the responder to these interfaces (default: all
	// multicast-capable ones).
	Interfaces []net.Interface
	// IncludeLoopback answers on loopback too (tests).
	IncludeLoopback bool
	Log             *slog.Logger
}

// Start answers for name (a host name; ".local" is added when missing)
// on UDP 5353, IPv4 and IPv6 (either may be missing on a box).
func Start(name string, o Options) (*Responder, error) {
	name = strings.TrimSuffix(strings.TrimSuffix(name, "."), ".local")
	if name == "" || strings.Contains(name, ".") {
		return nil, fmt.Errorf("mdns: %q is not a single-label host name", name)
	}
	local := name + ".local"
	var (
		c4 *ipv4.PacketConn
		c6 *ipv6.PacketConn
	)
	if a, err := net.ResolveUDPAddr("udp4", mdns.DefaultAddressIPv4); err == nil {
		if l, err := net.ListenUDP("udp4", a); err == nil {
			c4 = ipv4.NewPacketConn(l)
		}
	}
	if a, err := net.ResolveUDPAddr("udp6", mdns.DefaultAddressIPv6); err == nil {
		if l, err := net.ListenUDP("udp6", a); err == nil {
			c6 = ipv6.NewPacketConn(l)
		}
	}
	if c4 == nil && c6 == nil {
		return nil, fmt.Errorf("mdns: cannot listen on UDP port 5353 (IPv4 or IPv6)")
	}
	opts := []mdns.ServerOption{mdns.WithLocalNames(local), mdns.WithName("parkpage"),
		mdns.WithIncludeLoopback(o.IncludeLoopback), mdns.WithLoggerFactory(quietLogs{})}
	if o.Interfaces != nil {
		opts = append(opts, mdns.WithInterfaces(o.Interfaces...))
	}
	conn, err := mdns.NewServer(c4, c6, opts...)
	if err != nil {
		if c4 != nil {
			c4.Close()
		}
		if c6 != nil {
			c6.Close()
		}
		return nil, fmt.Errorf("mdns: %w", err)
	}
	if o.Log != nil {
		o.Log.Info("mdns: answering", "name", local)
	}
	return &Responder{conn: conn, Name: local}, nil
}

// Close stops answering.
func (r *Responder) Close() error { return r.conn.Close() }

// quietLogs drops pion's own log lines (per-packet warnings on a busy LAN).
type quietLogs struct{}

func (quietLogs) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelError, discard{})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
