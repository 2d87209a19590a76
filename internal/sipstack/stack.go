// Package sipstack is parkpage's one SIP endpoint, built on sipgo: the
// listeners (UDP and TCP, optional TLS), a client bound to the listening
// socket so responses come back to the SIP port, the trusted-source check,
// a small registrar with digest authentication and bindings kept across
// restarts, routing of INVITEs by dialled extension to handlers other
// packages register, the RFC 4235 dialog-event (BLF) notifier, outgoing
// calls, and the map of INVITE dialogs that in-dialog requests (ACK, BYE,
// re-INVITE, UPDATE, INFO, REFER) are routed through.
//
// Outgoing calls go only to a registered contact of a user, through the
// configured PBX route, or to a URI written in config: never to a host
// named in a request header, so a forged Referred-By cannot make the box
// call out.
package sipstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/VictoriaMetrics/metrics"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/authguard"
	"github.com/parkpage/parkpage/internal/config"
)

// InviteHandler handles a new INVITE to an extension. It runs on its own
// goroutine and must send a final response before it returns.
type InviteHandler func(call *IncomingCall)

// Stack is the SIP endpoint.
type Stack struct {
	log *slog.Logger
	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client
	dua *sipgo.DialogUA
	reg *registrar
	aut *authenticator

	guard     *authguard.Guard // failed-login throttle (guard.go)
	screen    *screen          // UDP flood screen (screen.go)
	metricSet *metrics.Set
	guardOnce sync.Once

	mu            sync.Mutex
	trusted       []netip.Prefix
	users         map[string]*config.User
	pbx           *sip.Uri
	domainName    string
	maxSubExpires int
	handlers      map[string]InviteHandler
	presences     map[string]*Presence

	dialogs sync.Map // key -> *Dialog
	subs    sync.Map // key -> *subscription
	// subsPath keeps the subscriptions across restarts (blfsave.go);
	// subsDirty says they changed since the last save.
	subsPath  string
	subsDirty atomic.Bool
	subsKick  chan struct{}
	// serving is closed once sipgo reads the UDP listener (so it has
	// taken the socket into its connection pool): a request sent before
	// would make sipgo bind a socket of its own to the same port.
	serving     chan struct{}
	servingOnce sync.Once
	// subsSaveMu orders the saves (the saver's and Close's).
	subsSaveMu sync.Mutex
	notify     notifyOwners

	listenCfg []config.Listener
	tlsCfg    *config.TLS
	udp       net.PacketConn
	tcp       net.Listener
	tlsLn     net.Listener
	localIP   netip.Addr
	udpAddr   netip.AddrPort
	tcpAddr   netip.AddrPort
	tlsAddr   netip.AddrPort

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New builds the stack from cfg; nothing is bound until Listen or Run.
func New(cfg *config.Config, log *slog.Logger) (*Stack, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	quiet := slog.New(tame(levelFilter{log.Handler(), slog.LevelWarn})).With("component", "sipgo")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.SIP.UserAgent),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
	)
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{
		log: log, ua: ua, srv: srv,
		reg:       newRegistrar(cfg.StateDir, log),
		aut:       newAuthenticator("parkpage"),
		handlers:  map[string]InviteHandler{},
		presences: map[string]*Presence{},
		subsKick:  make(chan struct{}, 1),
		serving:   make(chan struct{}),
		listenCfg: cfg.SIP.Listen,
		tlsCfg:    cfg.SIP.TLS,
		ctx:       ctx,
		cancel:    cancel,
	}
	if err := s.Reload(cfg); err != nil {
		cancel()
		return nil, err
	}
	if err := s.reg.load(); err != nil {
		log.Warn("sip: starting without saved registrations", "error", err)
	}
	srv.OnInvite(s.handleInvite)
	srv.OnAck(s.handleAck)
	srv.OnBye(s.handleBye)
	srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) { s.respond(req, tx, 481, "") })
	srv.OnRegister(s.handleRegister)
	srv.OnSubscribe(s.handleSubscribe)
	srv.OnOptions(s.handleOptions)
	srv.OnUpdate(s.handleReinvite)
	for _, m := range []sip.RequestMethod{sip.INFO, sip.REFER, sip.NOTIFY, sip.MESSAGE} {
		srv.OnRequest(m, s.handleInDialog)
	}
	srv.OnNoRoute(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
		res.AppendHeader(s.allowHeader())
		_ = tx.Respond(res)
	})
	return s, nil
}

// levelFilter drops sipgo's chatter below a level.
type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(a), f.min}
}
func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(n), f.min}
}

// Reload applies the parts of a new config that can change while running:
// trusted networks, users, the PBX route, domain and BLF limits.
// Listeners are not rebound.
func (s *Stack) Reload(cfg *config.Config) error {
	var pbx *sip.Uri
	if cfg.SIP.PBX != "" {
		var u sip.Uri
		if err := sip.ParseUri(cfg.SIP.PBX, &u); err != nil || u.Host == "" {
			return fmt.Errorf("sip: pbx %q is not a SIP URI", cfg.SIP.PBX)
		}
		pbx = &u
	}
	var trusted []netip.Prefix
	for _, c := range cfg.SIP.Trusted {
		trusted = append(trusted, c.Prefix)
	}
	trusted = append(trusted, pbxTrust(pbx, s.log)...)
	maxExp := int(cfg.Park.BLF.MaxExpires.D().Seconds())
	if maxExp <= 0 {
		maxExp = 3600
	}
	s.mu.Lock()
	s.trusted, s.users, s.pbx, s.domainName, s.maxSubExpires = trusted, cfg.SIP.Users, pbx, cfg.SIP.Domain, maxExp
	s.mu.Unlock()
	return nil
}

// Listen binds every configured listener. Errors are one line naming the
// transport and address and what to do, e.g.
// "sip: udp 0.0.0.0:5060: address already in use: stop the other SIP
// service or set sip.listen".
func (s *Stack) Listen() error {
	if s.udp != nil || s.tcp != nil || s.tlsLn != nil {
		return nil
	}
	fail := func(transport, addr string, err error) error {
		s.closeListeners()
		hint := ""
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			hint = ": stop the other SIP service or set sip.listen"
			err = syscall.EADDRINUSE
		case errors.Is(err, syscall.EACCES):
			hint = ": ports below 1024 need CAP_NET_BIND_SERVICE, or set sip.listen"
			err = syscall.EACCES
		case errors.Is(err, syscall.EADDRNOTAVAIL):
			hint = ": that address is not on this machine; set sip.listen"
			err = syscall.EADDRNOTAVAIL
		}
		return fmt.Errorf("sip: %s %s: %v%s", transport, addr, err, hint)
	}
	for _, l := range s.listenCfg {
		network := networkFor(l.Address)
		switch l.Transport {
		case "udp":
			if s.udp != nil {
				return fail("udp", l.Address, errors.New("only one UDP listener is supported"))
			}
			c, err := net.ListenPacket("udp"+network, l.Address)
			if err != nil {
				return fail("udp", l.Address, err)
			}
			s.udp = c
			s.udpAddr = c.LocalAddr().(*net.UDPAddr).AddrPort()
		case "tcp":
			if s.tcp != nil {
				return fail("tcp", l.Address, errors.New("only one TCP listener is supported"))
			}
			ln, err := net.Listen("tcp"+network, l.Address)
			if err != nil {
				return fail("tcp", l.Address, err)
			}
			s.tcp = ln
			s.tcpAddr = ln.Addr().(*net.TCPAddr).AddrPort()
		}
	}
	if t := s.tlsCfg; t != nil {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return fail("tls", t.Address, fmt.Errorf("certificate: %w", err))
		}
		ln, err := tls.Listen("tcp"+networkFor(t.Address), t.Address, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return fail("tls", t.Address, err)
		}
		s.tlsLn = ln
		s.tlsAddr = ln.Addr().(*net.TCPAddr).AddrPort()
	}
	if s.udp == nil && s.tcp == nil && s.tlsLn == nil {
		return errors.New("sip: no listener configured: set sip.listen")
	}
	s.localIP = s.pickLocalIP()
	port := s.udpAddr.Port()
	if port == 0 {
		port = s.tcpAddr.Port()
	}
	cli, err := sipgo.NewClient(s.ua, sipgo.WithClientHostname(s.localIP.String()), sipgo.WithClientPort(int(port)),
		sipgo.WithClientLogger(slog.New(levelFilter{s.log.Handler(), slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("sip: client: %w", err)
	}
	s.cli = cli
	s.dua = &sipgo.DialogUA{Client: cli, ContactHDR: *s.contactHeader("udp")}
	return nil
}

// networkFor returns "4" or "6" so an IPv4 wildcard binds IPv4 only (the
// UDP socket's address then matches the one requests are sent from).
func networkFor(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
		return "6"
	}
	if host == "" || strings.Contains(host, ":") {
		return ""
	}
	return "4"
}

func (s *Stack) closeListeners() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.tlsLn != nil {
		s.tlsLn.Close()
	}
}

// pickLocalIP is the address written in Via, Contact and SDP: the listen
// address when specific, else sip.domain when it is an address, else the
// first private IPv4 of the machine, else loopback.
func (s *Stack) pickLocalIP() netip.Addr {
	for _, ap := range []netip.AddrPort{s.udpAddr, s.tcpAddr, s.tlsAddr} {
		if ap.IsValid() && !ap.Addr().IsUnspecified() {
			return ap.Addr().Unmap()
		}
	}
	s.mu.Lock()
	dom := s.domainName
	s.mu.Unlock()
	if ip, err := netip.ParseAddr(dom); err == nil {
		return ip
	}
	addrs, _ := net.InterfaceAddrs()
	var candidates []netip.Addr
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(pn.IP); ok {
				ip = ip.Unmap()
				if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
					candidates = append(candidates, ip)
				}
			}
		}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].IsPrivate() && !candidates[j].IsPrivate() })
	if len(candidates) > 0 {
		return candidates[0]
	}
	return netip.MustParseAddr("127.0.0.1")
}

// LocalIP is the address parkpage advertises (use it for RTP too).
func (s *Stack) LocalIP() netip.Addr { return s.localIP }

// Addr returns the bound address of a transport ("udp", "tcp", "tls").
func (s *Stack) Addr(transport string) netip.AddrPort {
	switch transport {
	case "udp":
		return s.udpAddr
	case "tcp":
		return s.tcpAddr
	case "tls":
		return s.tlsAddr
	}
	return netip.AddrPort{}
}

// Run serves SIP until ctx ends, then closes the stack.
func (s *Stack) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	errc := make(chan error, 3)
	serve := func(name string, f func() error) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := f(); err != nil && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil {
				errc <- fmt.Errorf("sip: %s: %w", name, err)
			}
		}()
	}
	if s.udp != nil {
		serve("udp", func() error { return s.srv.ServeUDP(s.screenedUDP()) })
	}
	if s.tcp != nil {
		serve("tcp", func() error { return s.srv.ServeTCP(s.tcp) })
	}
	if s.tlsLn != nil {
		serve("tls", func() error { return s.srv.ServeTLS(s.tlsLn) })
	}
	if s.udp == nil {
		s.markServing()
	}
	var err error
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	case err = <-errc:
	}
	s.Close()
	return err
}

func (s *Stack) markServing() { s.servingOnce.Do(func() { close(s.serving) }) }

// waitServing returns once the listeners serve (requests sent at start,
// such as the NOTIFYs of resumed BLF subscriptions or the ring-back of a
// resumed call whose timeout passed, wait for Run), or with ctx's error.
func (s *Stack) waitServing(ctx context.Context) error {
	select {
	case <-s.serving:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sip: not serving yet: %w", ctx.Err())
	case <-s.ctx.Done():
		return net.ErrClosed
	}
}

// Close hangs up every dialog, ends subscriptions, closes listeners and
// waits for the stack's goroutines.
func (s *Stack) Close() error {
	s.once.Do(func() {
		s.saveSubscriptionsNow()
		var ds []*Dialog
		s.dialogs.Range(func(_, v any) bool { ds = append(ds, v.(*Dialog)); return true })
		ctx, cancel := context.WithTimeout(context.Background(), 2*sip.T1)
		var wg sync.WaitGroup
		for _, d := range ds {
			wg.Add(1)
			go func() { defer wg.Done(); _ = d.Hangup(ctx) }()
		}
		wg.Wait()
		cancel()
		s.cancel()
		s.closeListeners()
		s.wg.Wait()
		s.ua.Close()
	})
	return nil
}

// Handle routes INVITEs for ext to h (replacing any previous handler).
func (s *Stack) Handle(ext string, h InviteHandler) {
	s.mu.Lock()
	s.handlers[ext] = h
	s.mu.Unlock()
}

// Unhandle removes the handler of ext.
func (s *Stack) Unhandle(ext string) {
	s.mu.Lock()
	delete(s.handlers, ext)
	s.mu.Unlock()
}

// Contacts returns the registered contacts of a user, newest first.
func (s *Stack) Contacts(user string) []Binding { return s.reg.lookup(user) }

// Registrations returns every live binding.
func (s *Stack) Registrations() []Binding { return s.reg.all() }

// domain is the host part of parkpage's own URIs.
func (s *Stack) domain() string {
	s.mu.Lock()
	d := s.domainName
	s.mu.Unlock()
	if d != "" {
		return d
	}
	return s.localIP.String()
}

// Domain is the host part of parkpage's own URIs (sip.domain or the local IP).
func (s *Stack) Domain() string { return s.domain() }

func (s *Stack) contactHeader(transport string) *sip.ContactHeader {
	tr := strings.ToLower(transport)
	u := sip.Uri{Scheme: "sip", User: "parkpage", Host: s.localIP.String()}
	switch tr {
	case "tcp":
		u.Port = int(s.tcpAddr.Port())
		u.UriParams = sip.HeaderParams{{K: "transport", V: "tcp"}}
	case "tls":
		u.Port = int(s.tlsAddr.Port())
		u.Scheme = "sips"
	default:
		u.Port = int(s.udpAddr.Port())
		if u.Port == 0 {
			u.Port = int(s.tcpAddr.Port())
			u.UriParams = sip.HeaderParams{{K: "transport", V: "tcp"}}
		}
	}
	return &sip.ContactHeader{Address: u}
}

func (s *Stack) allowHeader() sip.Header {
	return sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, SUBSCRIBE, NOTIFY, REGISTER")
}

func (s *Stack) respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	if reason == "" {
		reason = statusText(code)
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("sip: respond failed", "code", code, "error", err)
	}
}

func sourceAddr(req *sip.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// trustedSource reports whether the request comes from sip.trusted.
func (s *Stack) trustedSource(req *sip.Request) bool {
	src := sourceAddr(req)
	if !src.IsValid() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.trusted {
		if p.Contains(src.Addr()) {
			return true
		}
	}
	return false
}

func (s *Stack) password(user string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	if u == nil || u.Password == "" {
		return "", false
	}
	return u.Password, true
}

// checkAccess applies the trusted-source rule to a new request: trusted
// sources pass; others must authenticate as a configured user (challenged
// with 401) or get 403. It responds itself when it returns false.
func (s *Stack) checkAccess(req *sip.Request, tx sip.ServerTransaction) (authUser string, trusted, ok bool) {
	if s.trustedSource(req) {
		return "", true, true
	}
	s.mu.Lock()
	haveUsers := len(s.users) > 0
	s.mu.Unlock()
	if !haveUsers {
		s.respond(req, tx, 403, "Forbidden (source not trusted)")
		return "", false, false
	}
	user, res, retry := s.verifyGuarded(req)
	switch res {
	case authLocked:
		s.respondLocked(req, tx, retry)
	case authOK:
		return user, false, true
	case authStale:
		s.respond(req, tx, 401, "", sip.NewHeader("WWW-Authenticate", s.aut.challenge(true)))
	case authInvalid:
		s.respond(req, tx, 403, "Forbidden")
	default:
		s.respond(req, tx, 401, "", sip.NewHeader("WWW-Authenticate", s.aut.challenge(false)))
	}
	return "", false, false
}

func (s *Stack) allowed(req *sip.Request, tx sip.ServerTransaction) bool {
	_, _, ok := s.checkAccess(req, tx)
	return ok
}

func (s *Stack) handleOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(s.allowHeader())
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	_ = tx.Respond(res)
}

func (s *Stack) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	to := req.To()
	if to == nil {
		s.respond(req, tx, 400, "")
		return
	}
	user, res, retry := s.verifyGuarded(req)
	switch res {
	case authLocked:
		s.respondLocked(req, tx, retry)
		return
	case authNone:
		s.respond(req, tx, 401, "", sip.NewHeader("WWW-Authenticate", s.aut.challenge(false)))
		return
	case authStale:
		s.respond(req, tx, 401, "", sip.NewHeader("WWW-Authenticate", s.aut.challenge(true)))
		return
	case authInvalid:
		s.respond(req, tx, 403, "Forbidden")
		return
	}
	if user != to.Address.User {
		s.respond(req, tx, 403, "Forbidden (user does not match the address of record)")
		return
	}
	code, reason, bindings := s.reg.register(user, req)
	r := sip.NewResponseFromRequest(req, code, reason, nil)
	if code == 423 {
		r.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(minExpires)))
	}
	for _, b := range bindings {
		exp := int(b.Expires.Sub(s.reg.now()).Seconds())
		r.AppendHeader(sip.NewHeader("Contact", "<"+b.Contact+">;expires="+strconv.Itoa(max(exp, 0))))
	}
	_ = tx.Respond(r)
	if code == 200 {
		s.log.Debug("sip: register", "user", user, "bindings", len(bindings))
	}
}

// lookupDialog finds the INVITE dialog a request belongs to.
func (s *Stack) lookupDialog(req *sip.Request) *Dialog {
	if req.CallID() == nil || req.From() == nil || req.To() == nil {
		return nil
	}
	toTag, _ := req.To().Params.Get("tag")
	fromTag, _ := req.From().Params.Get("tag")
	if v, ok := s.dialogs.Load(dialogKey(req.CallID().Value(), toTag, fromTag)); ok {
		return v.(*Dialog)
	}
	return nil
}

// FindDialog returns the dialog named by a Replaces header value, trying
// both tag orders (some UAs swap them).
func (s *Stack) FindDialog(r Replaces) (*Dialog, bool) {
	for _, k := range []string{dialogKey(r.CallID, r.ToTag, r.FromTag), dialogKey(r.CallID, r.FromTag, r.ToTag)} {
		if v, ok := s.dialogs.Load(k); ok && !v.(*Dialog).ended() {
			return v.(*Dialog), true
		}
	}
	return nil, false
}

// DialogsByCallID returns the dialogs with a Call-ID (diagnostics, and to
// build a Replaces header in tests).
func (s *Stack) DialogsByCallID(callID string) []*Dialog {
	var out []*Dialog
	s.dialogs.Range(func(_, v any) bool {
		if d := v.(*Dialog); d.CallID == callID {
			out = append(out, d)
		}
		return true
	})
	return out
}

func (s *Stack) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		s.handleReinvite(req, tx)
		return
	}
	authUser, trusted, ok := s.checkAccess(req, tx)
	if !ok {
		return
	}
	ext := req.Recipient.User
	if ext == "" && req.To() != nil {
		ext = req.To().Address.User
	}
	s.mu.Lock()
	h := s.handlers[ext]
	s.mu.Unlock()
	if h == nil {
		s.respond(req, tx, 404, "")
		return
	}
	if s.dua == nil {
		s.respond(req, tx, 503, "")
		return
	}
	dua := *s.dua
	dua.ContactHDR = *s.contactHeader(req.Transport())
	sess, err := dua.ReadInvite(req, tx)
	if err != nil {
		s.respond(req, tx, 400, "")
		return
	}
	toTag, _ := sess.InviteRequest.To().Params.Get("tag")
	fromTag, _ := req.From().Params.Get("tag")
	d := &Dialog{s: s, CallID: req.CallID().Value(), LocalTag: toTag, RemoteTag: fromTag, Invite: req,
		Remote: CallerIdentity(req), Source: sourceAddr(req), uas: sess, done: make(chan struct{})}
	d.key = dialogKey(d.CallID, d.LocalTag, d.RemoteTag)
	s.dialogs.Store(d.key, d)
	sess.OnState(func(st sip.DialogState) {
		if st == sip.DialogStateEnded {
			reason := "ended"
			if errors.Is(context.Cause(sess.Context()), sip.ErrTransactionCanceled) {
				reason = "cancelled"
			}
			d.end(reason)
		}
	})
	call := &IncomingCall{Dialog: d, Request: req, Ext: ext, Trusted: trusted, AuthUser: authUser, tx: tx}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))
	func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("sip: INVITE handler panicked", "ext", ext, "panic", r)
			}
		}()
		h(call)
	}()
	if !call.final {
		select {
		case <-d.done:
		default:
			_ = call.Respond(500, "")
		}
	}
}

func (s *Stack) handleAck(req *sip.Request, tx sip.ServerTransaction) {
	d := s.lookupDialog(req)
	if d == nil || d.uas == nil {
		return
	}
	_ = d.uas.ReadAck(req, tx)
	if d.ended() {
		return // hung up before its ACK: only sipgo's BYE waited for it
	}
	if h := d.handler(); h.Ack != nil {
		h.Ack(req)
	}
}

func (s *Stack) handleBye(req *sip.Request, tx sip.ServerTransaction) {
	d := s.lookupDialog(req)
	if d == nil {
		s.respond(req, tx, 481, "")
		return
	}
	d.end("remote hangup") // before ReadBye, whose state change would say "ended"
	var err error
	switch {
	case d.uas != nil:
		err = d.uas.ReadBye(req, tx)
	case d.uac != nil:
		err = d.uac.ReadBye(req, tx)
	default: // resumed: no sipgo session
		err = errors.New("no session")
	}
	if err != nil {
		s.respond(req, tx, 200, "")
	}
}

// handleReinvite serves re-INVITE and UPDATE in a dialog.
func (s *Stack) handleReinvite(req *sip.Request, tx sip.ServerTransaction) {
	d := s.lookupDialog(req)
	if d == nil || d.ended() {
		s.respond(req, tx, 481, "")
		return
	}
	h := d.handler()
	rep := Reply{Code: 488}
	if h.Reinvite != nil {
		rep = h.Reinvite(req)
	}
	if rep.Reason == "" {
		rep.Reason = statusText(rep.Code)
	}
	res := sip.NewResponseFromRequest(req, rep.Code, rep.Reason, rep.SDP)
	if len(rep.SDP) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	for _, hd := range rep.Headers {
		res.AppendHeader(hd)
	}
	if rep.Code >= 200 && rep.Code < 300 {
		res.AppendHeader(s.contactHeader(req.Transport()))
	}
	_ = tx.Respond(res)
}

// handleInDialog serves INFO, REFER, NOTIFY and MESSAGE.
func (s *Stack) handleInDialog(req *sip.Request, tx sip.ServerTransaction) {
	d := s.lookupDialog(req)
	if d != nil && d.ended() {
		d = nil // its BYE is on the way
	}
	if d == nil {
		if req.Method == sip.NOTIFY && s.routeNotify(req, tx) {
			return // a subscription made through Request
		}
		if req.Method == sip.REFER {
			s.respond(req, tx, 403, "Forbidden (REFER outside a dialog)")
			return
		}
		s.respond(req, tx, 481, "")
		return
	}
	h := d.handler()
	rep := Reply{Code: 200}
	if req.Method == sip.REFER {
		rep.Code = 403
	}
	if h.Request != nil {
		rep = h.Request(req)
	}
	s.respond(req, tx, rep.Code, rep.Reason, rep.Headers...)
}
