package blfwatch

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Endpoint is a SIP user agent of the watcher's own, for when parkpage's
// main SIP stack is not shared: one UDP socket, a sipgo server on it for the
// NOTIFYs and a client sending from it, so the PBX sees requests come from
// the address in our Contact.
type Endpoint struct {
	UA     *sipgo.UserAgent
	Server *sipgo.Server
	Client *sipgo.Client
	// Contact is sip:user@ip:port of the socket, for Options.Contact.
	Contact sip.Uri

	conn   net.PacketConn
	notify atomic.Pointer[sipgo.RequestHandler]
	done   chan struct{}
	close  sync.Once
}

// OnNotify routes NOTIFYs to h, typically Watcher.OnNotify. Safe while
// serving.
func (e *Endpoint) OnNotify(h sipgo.RequestHandler) { e.notify.Store(&h) }

// Listen opens an Endpoint on addr, a concrete "ip:port" (port 0 picks
// one): the IP goes into the Contact the PBX sends NOTIFYs to, so it must
// be reachable from the PBX. NOTIFYs are answered 481 until OnNotify
// names their handler.
func Listen(addr, user string, logger *slog.Logger) (*Endpoint, error) {
	if logger == nil {
		logger = slog.Default()
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("blf listen %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("blf listen %q: need the IP address the pbx can reach, not a name or a wildcard", addr)
	}
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("blf listen %q: %w", addr, err)
	}
	local := conn.LocalAddr().(*net.UDPAddr)
	ip := local.IP.String()

	ua, err := sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname(ip))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("blf user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(logger))
	if err != nil {
		ua.Close()
		conn.Close()
		return nil, fmt.Errorf("blf sip server: %w", err)
	}
	client, err := sipgo.NewClient(ua,
		sipgo.WithClientLogger(logger),
		sipgo.WithClientHostname(ip),
		sipgo.WithClientPort(local.Port),
		sipgo.WithClientConnectionAddr(local.String()), // send from the listening socket
	)
	if err != nil {
		ua.Close()
		conn.Close()
		return nil, fmt.Errorf("blf sip client: %w", err)
	}
	e := &Endpoint{
		UA:      ua,
		Server:  srv,
		Client:  client,
		Contact: sip.Uri{Scheme: "sip", User: user, Host: ip, Port: local.Port},
		conn:    conn,
		done:    make(chan struct{}),
	}
	// Handlers are registered before serving (sipgo's handler map is not
	// locked); the NOTIFY one reads the current owner.
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		if h := e.notify.Load(); h != nil {
			(*h)(req, tx)
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist", nil))
	})
	go func() {
		defer close(e.done)
		_ = srv.ServeUDP(conn)
	}()
	// ServeUDP registers the socket with the transport asynchronously; a
	// request sent before that would try to bind the port a second time.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := ua.TransportLayer().GetConnection("udp", local.String()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			e.Close()
			return nil, fmt.Errorf("blf listen %q: transport did not take the socket", addr)
		}
	}
	return e, nil
}

// Close stops serving and closes the socket and the user agent.
func (e *Endpoint) Close() error {
	var err error
	e.close.Do(func() {
		err = e.conn.Close()
		<-e.done
		err = errors.Join(err, e.UA.Close())
	})
	return err
}
