package sipstack

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/parkpage/parkpage/internal/config"
)

// countingConn records what the screen writes back.
type countingConn struct {
	net.PacketConn
	writes [][]byte
}

func (c *countingConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

// The screen parses every datagram from outside: whatever arrives, it
// answers at most once, only with a well-formed SIP response, and never
// passes on what sipgo could not parse.
func FuzzScreen(f *testing.F) {
	for _, s := range []string{
		"INVITE sip:700@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:700@c>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
		"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: y\r\nCSeq: 2 OPTIONS\r\n\r\n",
		"BYE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: z\r\nCSeq: 3 BYE\r\n\r\n",
		"REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK4\r\nFrom: <sip:1@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: r\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest username=\"1\", realm=\"parkpage\", nonce=\"n\", uri=\"sip:h\", response=\"0\"\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK5\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: q\r\nCSeq: 1 INVITE\r\n\r\n",
		"GARBAGE", "\r\n\r\n", "INVITE sip:x SIP/2.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	cfg, _, err := config.Parse("f.yaml", []byte("sip:\n  trusted: [192.0.2.0/24]\n  users:\n    \"1\": {password: p}\n"))
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	s.UseMetrics(metrics.NewSet())
	from := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("203.0.113.5:5060"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s.screen.mu.Lock()
		clear(s.screen.sources) // every input starts with a full bucket
		s.screen.pass, s.screen.stateless = bucket{}, bucket{}
		s.screen.mu.Unlock()
		s.screen.now = func() time.Time { return time.Unix(1e9, 0) }
		conn := &countingConn{}
		s.screen.admit(conn, data, from)
		if len(conn.writes) > 1 {
			t.Fatalf("%d answers to one datagram", len(conn.writes))
		}
		for _, w := range conn.writes {
			if !strings.HasPrefix(string(w), "SIP/2.0 ") || !strings.Contains(string(w), "\r\n\r\n") {
				t.Fatalf("malformed answer %q", w)
			}
		}
	})
}
