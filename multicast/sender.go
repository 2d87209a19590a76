package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// SenderConfig describes one multicast output.
type SenderConfig struct {
	Group string // IPv4 multicast address, e.g. 224.0.1.116 (Polycom) or 224.5.6.20 (Yealink)
	Port  int    // UDP port, 1–65535
	// Interface is the interface to send on, by name ("eth0") or by one of its
	// IPv4 addresses. Required: multicast must never leave by whichever
	// interface the routing table happens to pick.
	Interface string
	TTL       int  // 1–255, default 1 (same subnet)
	Loopback  bool // also deliver to listeners on this host (IP_MULTICAST_LOOP)
	// SourcePort is the local UDP port to send from; 0: a random port.
	// Poly phones send group pages from the group's port and some
	// receivers drop anything else. The port is bound with SO_REUSEADDR and
	// SO_REUSEPORT so a receiver on this host (phone_pages) can bind it too.
	SourcePort int
}

// DefaultTTL keeps pages on the local subnet.
const DefaultTTL = 1

// Validate checks the config; every error names its field.
func (c *SenderConfig) Validate() error {
	var errs []error
	if ip := net.ParseIP(c.Group).To4(); ip == nil || !ip.IsMulticast() {
		errs = append(errs, fmt.Errorf("group %q: not an IPv4 multicast address (224.0.0.0/4)", c.Group))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: must be 1-65535", c.Port))
	}
	if c.Interface == "" {
		errs = append(errs, errors.New("interface: required (name or IPv4 address)"))
	} else if ip := net.ParseIP(c.Interface); ip != nil && ip.To4() == nil {
		errs = append(errs, fmt.Errorf("interface %q: not an IPv4 address", c.Interface))
	}
	if c.SourcePort < 0 || c.SourcePort > 65535 {
		errs = append(errs, fmt.Errorf("source port %d: must be 0-65535 (0 = random)", c.SourcePort))
	}
	if c.TTL < 0 || c.TTL > 255 {
		errs = append(errs, fmt.Errorf("ttl %d: must be 1-255 (0 = default %d)", c.TTL, DefaultTTL))
	}
	return errors.Join(errs...)
}

// resolveInterface finds an interface by name or by one of its IPv4 addresses.
func resolveInterface(s string) (*net.Interface, error) {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		ifi, err := net.InterfaceByName(s)
		if err != nil {
			return nil, fmt.Errorf("interface %q: %w", s, err)
		}
		return ifi, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", s, err)
	}
	for i := range ifs {
		addrs, err := ifs[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return &ifs[i], nil
			}
		}
	}
	return nil, fmt.Errorf("interface %q: no interface has this address", s)
}

// socket is a UDP socket shared by the Senders made with Share.
type socket struct {
	pc   *ipv4.PacketConn
	mu   sync.Mutex
	refs int
}

func (s *socket) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs == 0 {
		return s.pc.Close()
	}
	return nil
}

// Sender is one multicast output: a socket whose multicast interface, TTL
// and loopback are set, and a destination group and port. It implements
// Sink for the Pacer.
type Sender struct {
	cfg    SenderConfig
	ifi    *net.Interface
	dst    *net.UDPAddr
	sock   *socket
	closed sync.Once
}

// NewSender validates cfg and opens a socket for it.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("multicast sender: %w", err)
	}
	ifi, err := resolveInterface(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("multicast sender: %w", err)
	}
	lc := net.ListenConfig{Control: sendSocketOptions(cfg.SourcePort != 0)}
	c, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(cfg.SourcePort)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			// Another program holds the port without SO_REUSEADDR.
			return nil, fmt.Errorf("multicast sender: source port %d is taken by a socket that does not share it (set source_port: 0 to send from a random port): %w", cfg.SourcePort, err)
		}
		return nil, fmt.Errorf("multicast sender: open socket from port %d: %w", cfg.SourcePort, err)
	}
	pc := ipv4.NewPacketConn(c)
	if err := configure(pc, ifi, cfg); err != nil {
		c.Close()
		return nil, fmt.Errorf("multicast sender %s:%d: %w", cfg.Group, cfg.Port, err)
	}
	return &Sender{
		cfg:  cfg,
		ifi:  ifi,
		dst:  &net.UDPAddr{IP: net.ParseIP(cfg.Group).To4(), Port: cfg.Port},
		sock: &socket{pc: pc, refs: 1},
	}, nil
}

// sendSocketOptions prepares a sending socket before bind. A fixed source
// port is shared (SO_REUSEADDR, SO_REUSEPORT) with receivers of the same
// port on this host. The socket never reads: IP_MULTICAST_ALL off keeps
// other sockets' group memberships from queueing datagrams on it, and a
// small receive buffer bounds what unicast to the port can queue.
func sendSocketOptions(shared bool) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			set := func(level, opt, v int, name string) {
				if e := unix.SetsockoptInt(int(fd), level, opt, v); e != nil && serr == nil {
					serr = fmt.Errorf("%s: %w", name, e)
				}
			}
			if shared {
				set(unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR")
				set(unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, "SO_REUSEPORT")
			}
			set(unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0, "IP_MULTICAST_ALL")
			set(unix.SOL_SOCKET, unix.SO_RCVBUF, 4096, "SO_RCVBUF")
		})
		if err != nil {
			return err
		}
		return serr
	}
}

func configure(pc *ipv4.PacketConn, ifi *net.Interface, cfg SenderConfig) error {
	if err := pc.SetMulticastInterface(ifi); err != nil {
		return fmt.Errorf("set multicast interface %s: %w", ifi.Name, err)
	}
	if err := pc.SetMulticastTTL(cfg.TTL); err != nil {
		return fmt.Errorf("set multicast ttl %d: %w", cfg.TTL, err)
	}
	if err := pc.SetMulticastLoopback(cfg.Loopback); err != nil {
		return fmt.Errorf("set multicast loopback %v: %w", cfg.Loopback, err)
	}
	return nil
}

// Share returns a Sender to another group and port on s's socket (same
// interface, TTL and loopback). The Pacer sends the due packets of all
// Senders sharing a socket with one sendmmsg call. The socket closes when the
// last Sender sharing it is closed.
func (s *Sender) Share(group string, port int) (*Sender, error) {
	cfg := s.cfg
	cfg.Group, cfg.Port = group, port
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("multicast sender: %w", err)
	}
	s.sock.mu.Lock()
	defer s.sock.mu.Unlock()
	if s.sock.refs == 0 {
		return nil, errors.New("multicast sender: share: socket closed")
	}
	s.sock.refs++
	return &Sender{cfg: cfg, ifi: s.ifi, dst: &net.UDPAddr{IP: net.ParseIP(group).To4(), Port: port}, sock: s.sock}, nil
}

// Conn returns the socket and destination; it makes Sender a Sink.
func (s *Sender) Conn() (*ipv4.PacketConn, net.Addr) { return s.sock.pc, s.dst }

// Config returns the Sender's configuration with defaults applied.
func (s *Sender) Config() SenderConfig { return s.cfg }

// String describes the output for logs.
func (s *Sender) String() string {
	return fmt.Sprintf("%s via %s ttl %d", s.dst, s.ifi.Name, s.cfg.TTL)
}

// Close releases the Sender's share of the socket. Do not close a Sender
// while the Pacer is still playing a stream on it.
func (s *Sender) Close() error {
	var err error
	s.closed.Do(func() { err = s.sock.release() })
	return err
}
