package sipstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// ErrNoRoute means a user is neither registered nor reachable through a
// configured PBX.
var ErrNoRoute = errors.New("no route: not registered and no sip.pbx configured")

// DialRequest is an outgoing call.
type DialRequest struct {
	// Target is a user or number, reached at its registered contact or
	// through sip.pbx. With Configured, Target may instead be a full SIP
	// URI taken from parkpage's own config (a fallback destination).
	Target     string
	Configured bool
	// FromUser and FromDisplay make the From header: "704 Sales" <sip:+1555@domain>.
	FromUser    string
	FromDisplay string
	SDP         []byte
	Headers     []sip.Header
	// OnProvisional is told of 1xx responses (e.g. to log ringing).
	OnProvisional func(code int)
	// Username and Password answer a digest challenge (401/407) to the
	// INVITE; empty: a challenge fails the call.
	Username, Password string
	// OnAnswer is given the 2xx response before the ACK is sent (e.g. to
	// take the remote target of in-dialog requests from its Contact).
	OnAnswer func(res *sip.Response)
}

// Route says where a target would be called, without calling it.
func (s *Stack) Route(target string, configured bool) (sip.Uri, error) {
	if configured && (strings.HasPrefix(target, "sip:") || strings.HasPrefix(target, "sips:")) {
		var u sip.Uri
		if err := sip.ParseUri(target, &u); err != nil || u.Host == "" {
			return sip.Uri{}, fmt.Errorf("configured destination %q is not a SIP URI", target)
		}
		return u, nil
	}
	if target == "" || strings.ContainsAny(target, "@:;<>\" \t\r\n") {
		return sip.Uri{}, fmt.Errorf("%q is not a user or number", target)
	}
	for _, b := range s.reg.lookup(target) {
		var u sip.Uri
		if err := sip.ParseUri(b.Contact, &u); err == nil && u.Host != "" {
			return u, nil
		}
	}
	s.mu.Lock()
	pbx := s.pbx
	s.mu.Unlock()
	if pbx != nil {
		u := *pbx.Clone()
		u.User = target
		return u, nil
	}
	return sip.Uri{}, fmt.Errorf("%s: %w", target, ErrNoRoute)
}

// Dial places a call and waits until it is answered (returning the
// dialog and the answer SDP), refused (a *StatusError) or ctx ends (the
// INVITE is then CANCELled).
func (s *Stack) Dial(ctx context.Context, r DialRequest) (*Dialog, []byte, error) {
	if s.dua == nil {
		return nil, nil, errors.New("sip: stack is not listening")
	}
	uri, err := s.Route(r.Target, r.Configured)
	if err != nil {
		return nil, nil, err
	}
	req := sip.NewRequest(sip.INVITE, uri)
	transport := "UDP"
	if tp, ok := uri.UriParams.Get("transport"); ok && tp != "" {
		transport = strings.ToUpper(tp)
	} else if uri.Scheme == "sips" {
		transport = "TLS"
	}
	req.SetTransport(transport)
	fromUser := r.FromUser
	if fromUser == "" {
		fromUser = "parkpage"
	}
	from := &sip.FromHeader{DisplayName: sanitizeDisplay(r.FromDisplay), Address: sip.Uri{Scheme: "sip", User: fromUser, Host: s.domain()}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(16))
	to := &sip.ToHeader{Address: sip.Uri{Scheme: uri.Scheme, User: uri.User, Host: uri.Host, Port: uri.Port}}
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(s.contactHeader(transport))
	req.AppendHeader(s.allowHeader())
	req.AppendHeader(sip.NewHeader("Supported", "timer, replaces"))
	for _, h := range r.Headers {
		req.AppendHeader(h)
	}
	if len(r.SDP) > 0 {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(r.SDP)
	}
	s.bindLocal(req)
	dua := *s.dua
	dua.ContactHDR = *s.contactHeader(transport)
	sess, err := whenServing(ctx, s, func() (*sipgo.DialogClientSession, error) { return dua.WriteInvite(ctx, req.Clone()) })
	if err != nil {
		return nil, nil, fmt.Errorf("sip: invite %s: %w", uri.String(), err)
	}
	err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: r.Username, Password: r.Password, OnResponse: func(res *sip.Response) error {
		if res.IsProvisional() && r.OnProvisional != nil {
			r.OnProvisional(res.StatusCode)
		}
		if res.IsSuccess() && r.OnAnswer != nil {
			r.OnAnswer(res)
		}
		return nil
	}})
	if err != nil {
		// A 2xx can cross our CANCEL (the phone was answered just as the
		// ring time ran out): sipgo then gives up on the INVITE, so ACK and
		// BYE it here or the phone holds a dead call.
		if res := sess.InviteResponse; res != nil && res.IsSuccess() {
			s.releaseAnswered(sess)
		}
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			return nil, nil, &StatusError{Code: de.Res.StatusCode, Reason: de.Res.Reason}
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("sip: invite %s: %w", uri.String(), err)
	}
	res := sess.InviteResponse
	toTag, _ := res.To().Params.Get("tag")
	d := &Dialog{s: s, CallID: sess.InviteRequest.CallID().Value(), LocalTag: from.Params.GetOr("tag", ""), RemoteTag: toTag, Invite: sess.InviteRequest,
		uac: sess, done: make(chan struct{})}
	d.Remote = Identity{URI: to.Address.String(), User: to.Address.User, Host: to.Address.Host}
	if pai, ok := responseIdentity(res); ok {
		d.Remote = pai
	}
	d.key = dialogKey(d.CallID, d.LocalTag, d.RemoteTag)
	s.dialogs.Store(d.key, d)
	sess.OnState(func(st sip.DialogState) {
		if st == sip.DialogStateEnded {
			d.end("ended")
		}
	})
	if err := sess.Ack(ctx); err != nil {
		d.end("ack failed")
		return nil, nil, fmt.Errorf("sip: ack: %w", err)
	}
	return d, res.Body(), nil
}

// releaseAnswered ACKs and BYEs an INVITE answered after we gave up on it.
func (s *Stack) releaseAnswered(sess *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := sess.Ack(ctx); err != nil {
		s.log.Debug("sip: ACK of a late answer failed", "error", err)
		return
	}
	if err := sess.Bye(ctx); err != nil {
		s.log.Debug("sip: BYE of a late answer failed", "error", err)
	}
}

func responseIdentity(res *sip.Response) (Identity, bool) {
	for _, name := range []string{"P-Asserted-Identity", "Remote-Party-ID"} {
		for _, h := range res.GetHeaders(name) {
			if id, err := ParseIdentity(h.Value()); err == nil {
				return id, true
			}
		}
	}
	return Identity{}, false
}

// sanitizeDisplay keeps a display name printable; sipgo quotes it.
func sanitizeDisplay(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// bindLocal makes a UDP request leave from the listening socket, so the
// far end answers to the SIP port (and NAT bindings match).
func (s *Stack) bindLocal(req *sip.Request) {
	if !strings.EqualFold(req.Transport(), "udp") || s.udp == nil {
		return
	}
	ua := s.udp.LocalAddr().(*net.UDPAddr)
	req.Laddr = sip.Addr{IP: ua.IP, Port: ua.Port}
}

// do sends a fully built out-of-dialog or subscription request and
// returns its final response.
func (s *Stack) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if s.cli == nil {
		return nil, errors.New("sip: stack is not listening")
	}
	s.bindLocal(req)
	tx, err := whenServing(ctx, s, func() (sip.ClientTransaction, error) {
		return s.cli.TransactionRequest(ctx, req.Clone(), sipgo.ClientRequestAddVia)
	})
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without a response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// whenServing sends once the listeners serve: Run's serve goroutines
// hand the UDP socket to sipgo asynchronously, and a request sent before
// that makes sipgo bind the same address itself (EADDRINUSE). A request
// made during start-up (the ring-back of a resumed call whose timeout
// passed) waits for it, but at most maxServingWait: start-up itself must
// never wait on a request (resumed BLF subscriptions wait for serving
// before their first NOTIFY instead, blfsave.go).
func whenServing[T any](ctx context.Context, s *Stack, send func() (T, error)) (T, error) {
	wctx, cancel := context.WithTimeout(ctx, maxServingWait)
	err := s.waitServing(wctx)
	cancel()
	if err != nil && (ctx.Err() != nil || errors.Is(err, net.ErrClosed)) {
		var zero T
		return zero, err
	}
	return send()
}

// maxServingWait bounds how long a request waits for the stack to serve.
const maxServingWait = 2 * time.Second
