package sipstack

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// rawPeer is a SIP phone on a bare UDP socket: the test decides exactly
// when each message goes out (no user agent acknowledges for it).
type rawPeer struct {
	t    *testing.T
	conn *net.UDPConn
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t: t, conn: c}
}

func (p *rawPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *rawPeer) send(to *net.UDPAddr, msg string) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDP([]byte(strings.ReplaceAll(msg, "\n", "\r\n")), to); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next message whose first line starts with prefix
// (others are skipped), or fails the test when none comes by deadline.
func (p *rawPeer) read(prefix string, deadline time.Time) string {
	p.t.Helper()
	buf := make([]byte, 65535)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		n, _, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			p.t.Fatalf("waiting for %q: %v", prefix, err)
		}
		msg := string(bytes.ReplaceAll(buf[:n], []byte("\r\n"), []byte("\n")))
		if strings.HasPrefix(msg, prefix) {
			return msg
		}
	}
}

func header(msg, name string) string {
	for _, l := range strings.Split(msg, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// A call hung up by parkpage the moment it is answered, before the
// caller's ACK has arrived, still gets its BYE once the ACK comes (RFC
// 3261 13.3.1.4: the callee waits for the ACK before its BYE). The ACK
// used to find the dialog already gone from the stack's map, so sipgo
// never saw it and held the BYE until the INVITE transaction timed out
// (32 s), after Hangup's context had given up: the BYE was lost and the
// caller stayed connected to nothing.
func TestHangupBeforeAckSendsBye(t *testing.T) {
	s := startStack(t, t.TempDir(), `trusted: ["127.0.0.0/8"]`)
	hung := make(chan error, 1)
	answered := make(chan struct{})
	s.Handle("701", func(c *IncomingCall) {
		// The front desk hangs up the call (another goroutine: the API)
		// while Answer still waits for the ACK.
		go func() {
			<-answered
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hung <- c.Hangup(ctx)
		}()
		_ = c.Answer([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"))
	})

	p := newRawPeer(t)
	srv := net.UDPAddrFromAddrPort(s.Addr("udp"))
	callID := fmt.Sprintf("hangup-before-ack-%d", time.Now().UnixNano())
	via := fmt.Sprintf("SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-inv-%d;rport", p.port(), time.Now().UnixNano())
	p.send(srv, fmt.Sprintf(`INVITE sip:701@%s SIP/2.0
Via: %s
Max-Forwards: 70
From: <sip:2065550100@127.0.0.1>;tag=caller1
To: <sip:701@%s>
Call-ID: %s
CSeq: 1 INVITE
Contact: <sip:2065550100@127.0.0.1:%d>
Content-Length: 0

`, srv, via, srv, callID, p.port()))
	ok := p.read("SIP/2.0 200", time.Now().Add(10*time.Second))
	to := header(ok, "To")
	close(answered)

	// The caller's ACK comes late (a slow phone, or a lost first ACK).
	time.Sleep(300 * time.Millisecond)
	p.send(srv, fmt.Sprintf(`ACK sip:701@%s SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-ack-%d;rport
Max-Forwards: 70
From: <sip:2065550100@127.0.0.1>;tag=caller1
To: %s
Call-ID: %s
CSeq: 1 ACK
Content-Length: 0

`, srv, p.port(), time.Now().UnixNano(), to, callID))

	bye := p.read("BYE ", time.Now().Add(4*time.Second))
	if got := header(bye, "Call-ID"); got != callID {
		t.Fatalf("BYE for Call-ID %q, want %q", got, callID)
	}
	p.send(srv, fmt.Sprintf(`SIP/2.0 200 OK
Via: %s
From: %s
To: %s
Call-ID: %s
CSeq: %s
Content-Length: 0

`, header(bye, "Via"), header(bye, "From"), header(bye, "To"), callID, header(bye, "CSeq")))
	select {
	case err := <-hung:
		if err != nil {
			t.Fatalf("Hangup: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Hangup did not return")
	}
}

// A call hung up before it was answered (a pickup torn down while it was
// being set up) ends with 487 to its INVITE, not a BYE: sipgo's Bye read
// the missing 2xx and crashed the process (seen in the soak).
func TestHangupBeforeAnswerRejects(t *testing.T) {
	s := startStack(t, t.TempDir(), `trusted: ["127.0.0.0/8"]`)
	hung := make(chan error, 1)
	s.Handle("701", func(c *IncomingCall) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hung <- c.Hangup(ctx)
	})
	p := newRawPeer(t)
	srv := net.UDPAddrFromAddrPort(s.Addr("udp"))
	callID := fmt.Sprintf("hangup-before-answer-%d", time.Now().UnixNano())
	branch := fmt.Sprintf("z9hG4bK-inv-%d", time.Now().UnixNano())
	p.send(srv, fmt.Sprintf(`INVITE sip:701@%s SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport
Max-Forwards: 70
From: <sip:2065550100@127.0.0.1>;tag=caller1
To: <sip:701@%s>
Call-ID: %s
CSeq: 1 INVITE
Contact: <sip:2065550100@127.0.0.1:%d>
Content-Length: 0

`, srv, p.port(), branch, srv, callID, p.port()))
	res := p.read("SIP/2.0 487", time.Now().Add(10*time.Second))
	// The ACK of a non-2xx final response (same branch as the INVITE).
	p.send(srv, fmt.Sprintf(`ACK sip:701@%s SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport
Max-Forwards: 70
From: <sip:2065550100@127.0.0.1>;tag=caller1
To: %s
Call-ID: %s
CSeq: 1 ACK
Content-Length: 0

`, srv, p.port(), branch, header(res, "To"), callID))
	select {
	case err := <-hung:
		if err != nil {
			t.Errorf("Hangup: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Hangup did not return")
	}
}
