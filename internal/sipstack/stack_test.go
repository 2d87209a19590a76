package sipstack

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

// startStack parses a config whose sip: section is sipYAML (listeners on
// loopback are added) and runs a Stack until the test ends.
func startStack(t testing.TB, stateDir, sipYAML string) *Stack {
	t.Helper()
	return startStackLog(t, stateDir, sipYAML, io.Discard, nil)
}

// startStackLog is startStack with the stack's log written to w and, when
// ms is set, its metrics counted in ms.
func startStackLog(t testing.TB, stateDir, sipYAML string, w io.Writer, ms *metrics.Set) *Stack {
	t.Helper()
	yaml := fmt.Sprintf(`
state_dir: %s
sip:
  listen:
    - {transport: udp, address: "127.0.0.1:0"}
    - {transport: tcp, address: "127.0.0.1:0"}
%s
`, stateDir, indent(sipYAML))
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(w, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if ms != nil {
		s.UseMetrics(ms)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}

// phone is a sipgo user agent standing in for a desk phone: it sends
// requests from its own UDP socket and answers NOTIFYs.
type phone struct {
	t       testing.TB
	cli     *sipgo.Client
	addr    netip.AddrPort
	mu      sync.Mutex
	notifys []*sip.Request
	got     chan struct{}
	// notifyDelay is how long the phone takes to answer a NOTIFY.
	notifyDelay time.Duration
	// onNotify, if set, is told of each NOTIFY as it arrives.
	onNotify func(req *sip.Request, at time.Time)
}

func newPhone(t testing.TB) *phone {
	t.Helper()
	p := &phone{t: t, got: make(chan struct{}, 1)}
	p.cli, p.addr = startPeer(t, "test-phone", func(srv *sipgo.Server) {
		srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
			at := time.Now()
			p.mu.Lock()
			if p.onNotify != nil {
				p.onNotify(req, at)
			}
			p.notifys = append(p.notifys, req)
			d := p.notifyDelay
			p.mu.Unlock()
			select {
			case p.got <- struct{}{}:
			default:
			}
			time.Sleep(d)
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		})
	})
	return p
}

// startPeer runs a sipgo user agent on a UDP port of 127.0.0.1 until the
// test ends: handle registers its request handlers before it serves. It
// returns the agent's client, which sends from that port, and the port's
// address.
func startPeer(t testing.TB, userAgent string, handle func(*sipgo.Server)) (*sipgo.Client, netip.AddrPort) {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(userAgent))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	handle(srv)
	go func() { _ = srv.ServeUDP(conn) }()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(int(addr.Port())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); ua.Close() })
	return cli, addr
}

// request builds a request from user to ext at the stack.
func (p *phone) request(method sip.RequestMethod, s *Stack, ext, user string, hdrs ...string) *sip.Request {
	to := sip.Uri{Scheme: "sip", User: ext, Host: "127.0.0.1", Port: int(s.Addr("udp").Port())}
	req := sip.NewRequest(method, to)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: to})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: int(p.addr.Port())}})
	for _, h := range hdrs {
		k, v, _ := strings.Cut(h, ":")
		req.AppendHeader(sip.NewHeader(k, strings.TrimSpace(v)))
	}
	req.SetTransport("UDP")
	req.Laddr = sip.Addr{IP: net.IPv4(127, 0, 0, 1), Port: int(p.addr.Port())}
	return req
}

func (p *phone) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	// sipgo registers the phone's served socket asynchronously; until then
	// a request bound to it fails to bind.
	for i := 0; err != nil && strings.Contains(err.Error(), "address already in use") && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
		req.RemoveHeader("Via")
		res, err = p.cli.Do(ctx, req)
	}
	if err != nil {
		p.t.Fatalf("%s: %v", req.Method, err)
	}
	return res
}

// register sends REGISTER as user, answering the digest challenge.
func (p *phone) register(s *Stack, user, password string, expires int) *sip.Response {
	p.t.Helper()
	req := p.request(sip.REGISTER, s, user, user, fmt.Sprintf("Expires: %d", expires))
	req.Recipient = sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(s.Addr("udp").Port())}
	res := p.do(req)
	if res.StatusCode != 401 {
		p.t.Fatalf("REGISTER without credentials: %d, want 401", res.StatusCode)
	}
	return p.answerChallenge(req, res, user, password)
}

// answerChallenge sends req again with digest credentials answering the
// 401 challenge res, and returns the final response.
func (p *phone) answerChallenge(req *sip.Request, res *sip.Response, user, password string) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req.RemoveHeader("Via")
	res2, err := p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password})
	if err != nil {
		p.t.Fatal(err)
	}
	return res2
}

func (p *phone) notifies() []*sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sip.Request(nil), p.notifys...)
}

func (p *phone) waitNotifies(n int, timeout time.Duration) []*sip.Request {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(p.notifies()) < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("%d NOTIFYs, want %d", len(p.notifies()), n)
		}
		select {
		case <-p.got:
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p.notifies()
}

// Bindings survive a restart: a second Stack on the same state directory
// knows the registered contact and routes calls for the user to it. A
// de-registration is persisted too.
func TestRegistrarPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	users := `users:
  "1001": {password: s3cret}
  "1002": {password: other}`
	s1 := startStack(t, dir, users)
	ph := newPhone(t)
	if res := ph.register(s1, "1001", "s3cret", 600); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	if res := ph.register(s1, "1002", "wrong", 600); res.StatusCode != 403 {
		t.Fatalf("REGISTER with a wrong password: %d, want 403", res.StatusCode)
	}
	want := fmt.Sprintf("sip:1001@127.0.0.1:%d", ph.addr.Port())
	if b := s1.Contacts("1001"); len(b) != 1 || b[0].Contact != want {
		t.Fatalf("bindings %+v", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "sip-registrations.json")); err != nil {
		t.Fatal(err)
	}
	s1.Close()

	s2 := startStack(t, dir, users)
	b := s2.Contacts("1001")
	if len(b) != 1 || b[0].Contact != want || time.Until(b[0].Expires) < 500*time.Second {
		t.Fatalf("after restart: %+v", b)
	}
	u, err := s2.Route("1001", false)
	if err != nil || u.String() != want {
		t.Fatalf("route after restart: %v %v", u.String(), err)
	}
	if len(s2.Contacts("1002")) != 0 {
		t.Fatal("a refused REGISTER made a binding")
	}
	// Unregister, restart again: gone.
	if res := ph.register(s2, "1001", "s3cret", 0); res.StatusCode != 200 {
		t.Fatalf("unREGISTER: %d", res.StatusCode)
	}
	s2.Close()
	s3 := startStack(t, dir, users)
	if b := s3.Contacts("1001"); len(b) != 0 {
		t.Fatalf("binding came back after unREGISTER: %+v", b)
	}
	if _, err := s3.Route("1001", false); err == nil {
		t.Fatal("route to an unregistered user without sip.pbx")
	}
}

// Ring-back targets come from registrations or sip.pbx only; anything that
// looks like a URI or carries a host is refused unless it came from config.
func TestRouteNeverCallsAHeaderHost(t *testing.T) {
	s := startStack(t, t.TempDir(), `pbx: "sip:127.0.0.1:5999"`)
	for _, c := range []struct {
		target     string
		configured bool
		want       string
	}{
		{"1001", false, "sip:1001@127.0.0.1:5999"},
		{"+15551234567", false, "sip:+15551234567@127.0.0.1:5999"},
		{"sip:1001@evil.example", false, ""},
		{"1001@evil.example", false, ""},
		{"1001;maddr=evil.example", false, ""},
		{"", false, ""},
		{"sip:operator@10.0.0.5", true, "sip:operator@10.0.0.5"},
	} {
		u, err := s.Route(c.target, c.configured)
		got := ""
		if err == nil {
			got = u.String()
		}
		if got != c.want {
			t.Errorf("Route(%q, %v) = %q (%v), want %q", c.target, c.configured, got, err, c.want)
		}
	}
}

// Sources outside sip.trusted must authenticate as a configured user; with
// no users configured they are refused outright.
func TestUntrustedSourceChallenged(t *testing.T) {
	withUsers := startStack(t, t.TempDir(), `trusted: ["10.0.0.0/8"]
users:
  "1001": {password: s3cret}`)
	s := withUsers
	s.Presence("702")
	ph := newPhone(t)
	sub := ph.request(sip.SUBSCRIBE, s, "702", "1001", "Event: dialog", "Expires: 60")
	res := ph.do(sub)
	if res.StatusCode != 401 || res.GetHeader("WWW-Authenticate") == nil {
		t.Fatalf("untrusted SUBSCRIBE: %d, want 401 with a challenge", res.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub.RemoveHeader("Via")
	res, err := ph.cli.DoDigestAuth(ctx, sub, res, sipgo.DigestAuth{Username: "1001", Password: "s3cret"})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("authenticated SUBSCRIBE: %v %v", res, err)
	}
	ph.waitNotifies(1, 5*time.Second)

	noUsers := startStack(t, t.TempDir(), `trusted: ["10.0.0.0/8"]`)
	noUsers.Presence("702")
	if res := ph.do(ph.request(sip.SUBSCRIBE, noUsers, "702", "1001", "Event: dialog")); res.StatusCode != 403 {
		t.Fatalf("untrusted SUBSCRIBE without users: %d, want 403", res.StatusCode)
	}
}

// NOTIFYs of one subscription never go back in time: under a burst of
// changes and a slow phone, versions rise by one per NOTIFY, states seen
// only move forward, and the last NOTIFY carries the last state.
func TestBLFVersionsNeverGoBack(t *testing.T) {
	s := startStack(t, t.TempDir(), "")
	pr := s.Presence("702")
	ph := newPhone(t)
	ph.notifyDelay = 15 * time.Millisecond
	res := ph.do(ph.request(sip.SUBSCRIBE, s, "702", "1001", "Event: dialog", "Accept: application/dialog-info+xml", "Expires: 300"))
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	ph.waitNotifies(1, 5*time.Second)
	const changes = 40
	for i := 1; i <= changes; i++ {
		pr.Set([]DialogEntry{{ID: "702", State: DialogConfirmed, RemoteDisplay: fmt.Sprint(i), RemoteURI: "sip:caller@pbx.lan"}})
		time.Sleep(time.Millisecond)
	}
	pr.Set(nil) // and free again
	var last DialogInfo
	runtest.WaitFor(t, "the final state", 10*time.Second, func() bool {
		ns := ph.notifies()
		d, err := ParseDialogInfo(ns[len(ns)-1].Body())
		if err != nil {
			t.Fatal(err)
		}
		last = d
		return len(d.Dialogs) == 1 && d.Dialogs[0].State == DialogTerminated
	})
	ns := ph.notifies()
	if len(ns) > changes+2 {
		t.Fatalf("%d NOTIFYs for %d changes", len(ns), changes+1)
	}
	prev := 0
	for i, n := range ns {
		d, err := ParseDialogInfo(n.Body())
		if err != nil {
			t.Fatal(err)
		}
		if d.Version != uint64(i+1) {
			t.Fatalf("NOTIFY %d has version %d", i+1, d.Version)
		}
		if cseq := n.CSeq(); cseq == nil || cseq.SeqNo != uint32(i+1) {
			t.Fatalf("NOTIFY %d CSeq %v", i+1, n.CSeq())
		}
		if len(d.Dialogs) == 1 && d.Dialogs[0].State == DialogConfirmed {
			var k int
			fmt.Sscan(d.Dialogs[0].RemoteDisplay, &k)
			if k <= prev {
				t.Fatalf("NOTIFY %d shows change %d after change %d", i+1, k, prev)
			}
			prev = k
		}
	}
	if prev == 0 {
		t.Fatal("no NOTIFY showed the slot occupied")
	}
	t.Logf("%d changes delivered in %d NOTIFYs (last version %d)", changes+1, len(ns)-1, last.Version)
}

// A subscription that is not refreshed ends with NOTIFY terminated;
// reason=timeout; a refreshed one gets a NOTIFY with the new expiry and
// lives on; a phone that subscribes again gets the current state at once.
func TestBLFRefreshAndExpiry(t *testing.T) {
	old := minSubExpires
	minSubExpires = 1
	t.Cleanup(func() { minSubExpires = old })
	s := startStack(t, t.TempDir(), "")
	pr := s.Presence("703")
	pr.Set([]DialogEntry{{ID: "703", State: DialogConfirmed, RemoteDisplay: "ACME", RemoteURI: "sip:+1555@pbx.lan"}})

	ph := newPhone(t)
	sub := ph.request(sip.SUBSCRIBE, s, "703", "1001", "Event: dialog", "Expires: 2")
	res := ph.do(sub)
	if res.StatusCode != 200 || res.GetHeader("Expires").Value() != "2" {
		t.Fatalf("SUBSCRIBE: %v", res)
	}
	first := ph.waitNotifies(1, 5*time.Second)[0]
	if !strings.Contains(string(first.Body()), "<state>confirmed</state>") || !strings.Contains(string(first.Body()), `display="ACME"`) {
		t.Fatalf("first NOTIFY does not show the occupied slot:\n%s", first.Body())
	}
	// Refresh in the dialog before it lapses.
	time.Sleep(time.Second)
	toTag, _ := res.To().Params.Get("tag")
	ref := ph.request(sip.SUBSCRIBE, s, "703", "1001", "Event: dialog", "Expires: 3")
	ref.ReplaceHeader(sip.HeaderClone(sub.From()))
	to := &sip.ToHeader{Address: sub.To().Address, Params: sip.NewParams()}
	to.Params.Add("tag", toTag)
	ref.ReplaceHeader(to)
	ref.AppendHeader(sip.HeaderClone(sub.CallID()))
	ref.AppendHeader(&sip.CSeqHeader{SeqNo: 2, MethodName: sip.SUBSCRIBE})
	if res := ph.do(ref); res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	ns := ph.waitNotifies(2, 5*time.Second)
	if st := ns[1].GetHeader("Subscription-State").Value(); !strings.HasPrefix(st, "active;expires=") {
		t.Fatalf("after refresh: Subscription-State %q", st)
	}
	ns = ph.waitNotifies(3, 10*time.Second)
	if st := ns[2].GetHeader("Subscription-State").Value(); st != "terminated;reason=timeout" {
		t.Fatalf("at expiry: Subscription-State %q", st)
	}
	if elapsed := ns[2].GetHeader("Subscription-State"); elapsed == nil {
		t.Fatal("no Subscription-State")
	}
	if pr.Subscribers() != 0 {
		runtest.WaitFor(t, "subscription dropped", 2*time.Second, func() bool { return pr.Subscribers() == 0 })
	}
	// The phone reboots and subscribes anew (new Call-ID): state at once.
	again := newPhone(t)
	if res := again.do(again.request(sip.SUBSCRIBE, s, "703", "1001", "Event: dialog", "Expires: 60")); res.StatusCode != 200 {
		t.Fatalf("resubscribe: %d", res.StatusCode)
	}
	n := again.waitNotifies(1, 5*time.Second)[0]
	if !strings.Contains(string(n.Body()), "<state>confirmed</state>") {
		t.Fatalf("resubscribed phone got:\n%s", n.Body())
	}
	// Unknown extensions and other event packages are refused.
	if res := again.do(again.request(sip.SUBSCRIBE, s, "799", "1001", "Event: dialog")); res.StatusCode != 404 {
		t.Fatalf("SUBSCRIBE to an unknown extension: %d", res.StatusCode)
	}
	if res := again.do(again.request(sip.SUBSCRIBE, s, "703", "1001", "Event: presence")); res.StatusCode != 489 {
		t.Fatalf("SUBSCRIBE Event: presence: %d", res.StatusCode)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parkpage test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// With sip.tls set, a phone can reach parkpage over TLS: OPTIONS is
// answered, and a BLF subscription made over TLS gets its NOTIFY back on
// the same TLS connection (phones behind NAT accept nothing else).
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	s := startStack(t, dir, fmt.Sprintf(`tls: {address: "127.0.0.1:0", cert: %q, key: %q}`, cert, key))
	s.Presence("704")
	addr := s.Addr("tls")
	if !addr.IsValid() || addr.Port() == 0 {
		t.Fatal("no TLS listener")
	}
	conn, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	local := conn.LocalAddr().String()
	send := func(method, ext, extra string, cseq int) {
		msg := fmt.Sprintf("%s sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bK%s%d\r\nFrom: <sip:1001@127.0.0.1>;tag=tlsphone\r\n"+
			"To: <sip:%s@%s>\r\nCall-ID: tls-test-%s\r\nCSeq: %d %s\r\nContact: <sips:1001@%s>\r\nMax-Forwards: 70\r\n%sContent-Length: 0\r\n\r\n",
			method, ext, addr, local, method, cseq, ext, addr, method, cseq, method, local, extra)
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	rd := bufio.NewReader(conn)
	// readMsg reads one message's start line and headers (no bodies larger than Content-Length).
	readMsg := func() (string, string) {
		var head strings.Builder
		start := ""
		clen := 0
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("TLS read: %v (so far %q)", err, head.String())
			}
			if start == "" {
				start = strings.TrimSpace(line)
			}
			if strings.TrimSpace(line) == "" {
				break
			}
			head.WriteString(line)
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
				fmt.Sscan(strings.TrimSpace(v), &clen)
			}
		}
		body := make([]byte, clen)
		if _, err := io.ReadFull(rd, body); err != nil {
			t.Fatal(err)
		}
		return start, head.String() + "\r\n" + string(body)
	}
	send("OPTIONS", "704", "", 1)
	if start, _ := readMsg(); start != "SIP/2.0 200 OK" {
		t.Fatalf("OPTIONS over TLS: %q", start)
	}
	send("SUBSCRIBE", "704", "Event: dialog\r\nExpires: 60\r\n", 2)
	gotOK, gotNotify := false, false
	for !(gotOK && gotNotify) {
		start, msg := readMsg()
		switch {
		case strings.HasPrefix(start, "SIP/2.0 200"):
			gotOK = true
		case strings.HasPrefix(start, "NOTIFY "):
			gotNotify = true
			if !strings.Contains(msg, "dialog-info") {
				t.Fatalf("NOTIFY without dialog-info:\n%s", msg)
			}
		default:
			t.Fatalf("unexpected %q", start)
		}
	}
}

// A lot's extension with every slot occupied by callers with long names
// still gets its NOTIFY over UDP (sipgo refuses a UDP request near the
// MTU, and the subscription used to be dropped): the body is trimmed to
// fit and the key lights.
func TestBLFLotNotifyFitsUDP(t *testing.T) {
	s := startStack(t, t.TempDir(), "")
	pr := s.Presence("700")
	var ds []DialogEntry
	for i := 701; i <= 710; i++ {
		ds = append(ds, DialogEntry{ID: fmt.Sprint(i), State: DialogConfirmed, Direction: "recipient",
			RemoteDisplay: "Warehouse: " + strings.Repeat("Long Caller Name ", 3), RemoteURI: fmt.Sprintf("sip:+1555000%04d@pbx.example.com", i),
			LocalURI: fmt.Sprintf("sip:%d@parkpage.example.com", i)})
	}
	if full := (DialogInfo{Version: 1, Entity: "sip:700@x", Dialogs: ds}).Marshal(); len(full) < sip.UDPMTUSize {
		t.Fatalf("test document is only %d bytes: not over the UDP limit", len(full))
	}
	pr.Set(ds)
	ph := newPhone(t)
	if res := ph.do(ph.request(sip.SUBSCRIBE, s, "700", "1001", "Event: dialog", "Expires: 300")); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	n := ph.waitNotifies(1, 10*time.Second)[0]
	d, err := ParseDialogInfo(n.Body())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Dialogs) == 0 || d.Dialogs[0].State != DialogConfirmed || d.Dialogs[0].ID != "701" {
		t.Fatalf("trimmed NOTIFY does not light the key:\n%s", n.Body())
	}
	t.Logf("NOTIFY of %d bytes carries %d of %d dialogs", len(n.String()), len(d.Dialogs), len(ds))
	// A later change still reaches the subscriber: it was not dropped.
	pr.Set(nil)
	runtest.WaitFor(t, "the lot free again", 10*time.Second, func() bool {
		ns := ph.notifies()
		d, err := ParseDialogInfo(ns[len(ns)-1].Body())
		return err == nil && len(d.Dialogs) == 1 && d.Dialogs[0].State == DialogTerminated
	})
}

func TestFitDialogInfo(t *testing.T) {
	entry := func(i int) DialogEntry {
		return DialogEntry{ID: fmt.Sprint(700 + i), State: DialogConfirmed, Direction: "recipient",
			RemoteDisplay: "Sales: Jane Doe", RemoteURI: "sip:+15550001@pbx", LocalURI: "sip:701@box"}
	}
	var ten []DialogEntry
	for i := 1; i <= 10; i++ {
		ten = append(ten, entry(i))
	}
	info := DialogInfo{Version: 3, Entity: "sip:700@box", Dialogs: ten}
	full := len(info.Marshal())
	bareInfo := info
	bareInfo.Dialogs = nil
	for _, d := range ten {
		bareInfo.Dialogs = append(bareInfo.Dialogs, DialogEntry{ID: d.ID, State: d.State, Direction: d.Direction})
	}
	bare := len(bareInfo.Marshal())
	for _, tc := range []struct {
		name        string
		budget      int
		wantDialogs int
		wantTrim    bool
		wantRemote  bool
	}{
		{"fits", full, 10, false, true},
		{"bare fits", bare, 10, true, false},
		{"some fit", bare - 1, 9, true, false},
		{"one at least", 10, 1, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, trimmed := fitDialogInfo(info, tc.budget)
			d, err := ParseDialogInfo(body)
			if err != nil {
				t.Fatal(err)
			}
			if trimmed != tc.wantTrim || len(d.Dialogs) != tc.wantDialogs {
				t.Fatalf("trimmed %v with %d dialogs, want %v with %d", trimmed, len(d.Dialogs), tc.wantTrim, tc.wantDialogs)
			}
			if tc.wantDialogs > 1 && len(body) > tc.budget {
				t.Fatalf("%d bytes over a budget of %d", len(body), tc.budget)
			}
			if got := d.Dialogs[0].RemoteURI != ""; got != tc.wantRemote {
				t.Fatalf("remote identity kept %v, want %v", got, tc.wantRemote)
			}
			if d.Dialogs[0].ID != "701" || d.Version != 3 {
				t.Fatalf("first dialog %q, version %d", d.Dialogs[0].ID, d.Version)
			}
		})
	}
}
