// Package softphone is a small SIP user agent for trying parkpage without
// phones (`parkpage demo`) and for tests: it places calls over UDP with
// sipgo, answers the far end's BYE, and carries the call's audio on an
// internal/media RTP leg (so it speaks the same codecs and pacing as
// parkpage itself). It only places calls; it never registers or answers.
package softphone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/media"
)

// Options configure a Phone.
type Options struct {
	// User and Display make the From header: "Display" <sip:User@IP>.
	User, Display string
	// IP is the local address the SIP socket binds to (e.g. 127.0.0.1).
	IP netip.Addr
	// Media carries the calls' RTP; its owner runs and closes it.
	Media *media.Engine
	// Logger receives sipgo's warnings; nil discards them.
	Logger *slog.Logger
}

// Phone is one SIP user agent with its own UDP socket.
type Phone struct {
	opt    Options
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	cli    *sipgo.Client
	dialog *sipgo.DialogClientCache
	conn   net.PacketConn
	addr   netip.AddrPort
	cancel context.CancelFunc
	done   chan struct{}
}

// New binds the phone's SIP socket on opt.IP (a free port) and starts
// serving it.
func New(opt Options) (*Phone, error) {
	if opt.Media == nil || !opt.IP.IsValid() || opt.User == "" {
		return nil, errors.New("softphone: User, IP and Media are required")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("parkpage-softphone"), sipgo.WithUserAgentHostname(opt.IP.String()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)))
	if err != nil {
		return nil, fmt.Errorf("softphone %s: %w", opt.User, err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("softphone %s: %w", opt.User, err)
	}
	conn, err := net.ListenPacket("udp4", netip.AddrPortFrom(opt.IP, 0).String())
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("softphone %s: %w", opt.User, err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	// The client sends from the server's socket (WithClientConnectionAddr:
	// without it sipgo opens a new socket on 0.0.0.0 per destination), so
	// every packet leaves from opt.IP and responses and in-dialog requests
	// come back to the one socket.
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(opt.IP.String()), sipgo.WithClientPort(int(addr.Port())),
		sipgo.WithClientConnectionAddr(addr.String()), sipgo.WithClientLogger(log))
	if err != nil {
		conn.Close()
		ua.Close()
		return nil, fmt.Errorf("softphone %s: %w", opt.User, err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: opt.User, Host: opt.IP.String(), Port: int(addr.Port())}}
	p := &Phone{opt: opt, ua: ua, srv: srv, cli: cli, dialog: sipgo.NewDialogClientCache(cli, contact), conn: conn, addr: addr, done: make(chan struct{})}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := p.dialog.ReadBye(req, tx); err != nil {
			tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		}
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		// Calls are short-lived: no session refresh, no incoming calls.
		tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here (placing calls only)", nil))
	})
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		_ = srv.ServeUDP(conn)
	}()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	// Calls must go out from the served socket: wait until sipgo has it.
	for i := 0; ; i++ {
		if c, err := ua.TransportLayer().GetConnection("udp", addr.String()); err == nil && c != nil {
			break
		}
		if i == 500 {
			p.Close()
			return nil, fmt.Errorf("softphone %s: SIP socket %s not served", opt.User, addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p, nil
}

// Addr is the phone's SIP address.
func (p *Phone) Addr() netip.AddrPort { return p.addr }

// Close stops the phone; calls still up are not hung up first.
func (p *Phone) Close() error {
	p.cancel()
	<-p.done
	p.cli.Close()
	return p.ua.Close()
}

// Call is an established outgoing call.
type Call struct {
	dlg *sipgo.DialogClientSession
	leg *media.Leg

	mu      sync.Mutex
	packets int
	sumSq   float64
	samples int
	rec     []int16 // everything heard, 16 kHz mono, up to maxRecord
}

// maxRecord bounds a call's recording (ten minutes of 16 kHz audio).
const maxRecord = 16000 * 600

// Dial calls target (e.g. sip:700@127.0.0.1:5060) with an SDP offer from
// a new media leg, waits for the answer and acknowledges it. hdrs are
// added to the INVITE (e.g. Referred-By for a blind transfer to park).
func (p *Phone) Dial(ctx context.Context, target sip.Uri, hdrs ...sip.Header) (*Call, error) {
	leg, err := p.opt.Media.NewLeg(media.LegOptions{})
	if err != nil {
		return nil, fmt.Errorf("softphone %s: %w", p.opt.User, err)
	}
	c := &Call{leg: leg}
	leg.OnAudio(c.heard)
	from := &sip.FromHeader{DisplayName: p.opt.Display, Address: sip.Uri{Scheme: "sip", User: p.opt.User, Host: p.opt.IP.String()}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	all := append([]sip.Header{from, sip.NewHeader("Content-Type", "application/sdp")}, hdrs...)
	dlg, err := p.dialog.Invite(ctx, target, leg.Offer(), all...)
	if err != nil {
		leg.Close()
		return nil, fmt.Errorf("softphone %s: INVITE %s: %w", p.opt.User, target.String(), err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		leg.Close()
		dlg.Close()
		return nil, fmt.Errorf("softphone %s: INVITE %s: %w", p.opt.User, target.String(), err)
	}
	if err := leg.SetAnswer(dlg.InviteResponse.Body()); err != nil {
		leg.Close()
		dlg.Bye(ctx)
		dlg.Close()
		return nil, fmt.Errorf("softphone %s: answer from %s: %w", p.opt.User, target.String(), err)
	}
	if err := dlg.Ack(ctx); err != nil {
		leg.Close()
		dlg.Close()
		return nil, fmt.Errorf("softphone %s: ACK: %w", p.opt.User, err)
	}
	c.dlg = dlg
	go func() {
		<-dlg.Context().Done()
		leg.Close()
	}()
	return c, nil
}

func (c *Call) heard(pcm []int16) {
	var s float64
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	c.mu.Lock()
	c.packets++
	c.sumSq += s
	c.samples += len(pcm)
	if len(c.rec)+len(pcm) <= maxRecord {
		c.rec = append(c.rec, pcm...)
	}
	c.mu.Unlock()
}

// Heard returns how many audio frames the call received and their RMS
// level in dBFS (-inf for silence).
func (c *Call) Heard() (frames int, dBFS float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.samples == 0 {
		return c.packets, math.Inf(-1)
	}
	rms := math.Sqrt(c.sumSq / float64(c.samples))
	return c.packets, 20 * math.Log10(rms/32768)
}

// Recording returns everything the call has heard so far (16 kHz mono).
func (c *Call) Recording() []int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int16(nil), c.rec...)
}

// ResetHeard starts a new measurement for Heard.
func (c *Call) ResetHeard() {
	c.mu.Lock()
	c.packets, c.sumSq, c.samples = 0, 0, 0
	c.mu.Unlock()
}

// Play sends 16 kHz mono PCM on the call, paced in 20 ms frames, and
// returns when it has all gone out (or ctx ends).
func (c *Call) Play(ctx context.Context, pcm []int16) error { return c.leg.Play(ctx, pcm) }

// Done is closed when the call has ended (either side hung up).
func (c *Call) Done() <-chan struct{} { return c.dlg.Context().Done() }

// Hangup sends BYE unless the call has ended already.
func (c *Call) Hangup(ctx context.Context) error {
	defer c.leg.Close()
	select {
	case <-c.Done():
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.dlg.Bye(ctx)
	c.dlg.Close()
	return err
}
