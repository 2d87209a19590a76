package sipstack

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

func rawInvite(dst net.Addr, from *net.UDPAddr, i int) []byte {
	return fmt.Appendf(nil, "INVITE sip:700@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK-flood-%d;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:attacker@%s>;tag=f%d\r\nTo: <sip:700@%s>\r\n"+
		"Call-ID: flood-%d@%s\r\nCSeq: 1 INVITE\r\nContact: <sip:attacker@%s>\r\nContent-Length: 0\r\n\r\n",
		dst, from, i, from.IP, i, dst, i, from.IP, from)
}

// readAll collects the datagrams that arrive on c until it is quiet for quiet.
func readAll(c net.PacketConn, quiet time.Duration) []string {
	var out []string
	buf := make([]byte, 65536)
	for {
		c.SetReadDeadline(time.Now().Add(quiet))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return out
		}
		out = append(out, string(buf[:n]))
	}
}

// An INVITE from outside sip.trusted is answered once, statelessly: the
// response is not retransmitted (no transaction waits for an ACK). Timer G
// would resend a transaction's 4xx after T1 (500 ms), 1 s, 2 s.
func TestUntrustedInviteAnsweredStatelessly(t *testing.T) {
	for _, users := range []string{"", "\nusers:\n  \"1001\": {password: s3cret}"} {
		s := startStack(t, t.TempDir(), `trusted: ["10.0.0.0/8"]`+users)
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		dst := net.UDPAddrFromAddrPort(s.Addr("udp"))
		c.WriteTo(rawInvite(dst, c.LocalAddr().(*net.UDPAddr), 1), dst)
		got := readAll(c, 2500*time.Millisecond)
		want := "SIP/2.0 403"
		if users != "" {
			want = "SIP/2.0 401"
		}
		if len(got) != 1 || !strings.HasPrefix(got[0], want) || !strings.Contains(got[0], ";tag=") {
			t.Errorf("users %q: %d responses, want one %s with a To tag: %q", users, len(got), want, got)
		}
	}
}

// A flood from one untrusted source gets at most its rate in answers:
// never more traffic out than in, and the rest is dropped and counted.
func TestUntrustedFloodIsRateLimited(t *testing.T) {
	ms := metrics.NewSet()
	s := startStackLog(t, t.TempDir(), `trusted: ["10.0.0.0/8"]`, io.Discard, ms)
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.UDPConn).SetReadBuffer(4 << 20)
	dst := net.UDPAddrFromAddrPort(s.Addr("udp"))
	const n = 2000
	start := time.Now()
	for i := range n {
		c.WriteTo(rawInvite(dst, c.LocalAddr().(*net.UDPAddr), i), dst)
	}
	got := readAll(c, 2*time.Second)
	elapsed := time.Since(start)
	limit := srcBurst + int(elapsed.Seconds()*srcRate) + 1
	if len(got) == 0 || len(got) > limit {
		t.Errorf("%d answers to %d INVITEs in %v, want 1..%d", len(got), n, elapsed, limit)
	}
	var b bytes.Buffer
	ms.WritePrometheus(&b)
	if !strings.Contains(b.String(), `parkpage_sip_dropped_total{reason="rate"}`) || strings.Contains(b.String(), `parkpage_sip_dropped_total{reason="rate"} 0`) {
		t.Errorf("drops not counted:\n%s", b.String())
	}
}

// Datagrams that are not SIP are dropped and logged at most once per
// source and kind per interval, truncated, and counted.
func TestUnparseableDatagramsLogRateLimited(t *testing.T) {
	var logs logtest.Buffer
	ms := metrics.NewSet()
	s := startStackLog(t, t.TempDir(), "", &logs, ms)
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := net.UDPAddrFromAddrPort(s.Addr("udp"))
	junk := []byte("GARBAGE " + strings.Repeat("x", 2000) + "\r\n\r\n")
	// In batches the socket buffer holds, each counted before the next.
	for k := 1; k <= 10; k++ {
		for range 20 {
			c.WriteTo(junk, dst)
		}
		want := fmt.Sprintf("parkpage_sip_unparseable_datagrams_total %d\n", 20*k)
		runtest.WaitFor(t, want, time.Minute, func() bool {
			var b bytes.Buffer
			ms.WritePrometheus(&b)
			return strings.Contains(b.String(), want)
		})
	}
	out := logs.String()
	if n := strings.Count(out, "not SIP"); n != 1 {
		t.Errorf("%d log lines for 200 bad datagrams, want 1", n)
	}
	if len(out) > 2000 || strings.Contains(out, "level=ERROR") {
		t.Errorf("log too big or at ERROR (%d bytes):\n%s", len(out), out)
	}
}

// On TCP, sipgo parses the stream itself: its parse errors reach the log
// truncated and at most once per interval.
func TestUnparseableTCPStreamLogIsTamed(t *testing.T) {
	var logs logtest.Buffer
	s := startStackLog(t, t.TempDir(), "", &logs, nil)
	junk := "GARBAGE " + strings.Repeat("y", 3000) + "\r\nContent-Length: 0\r\n\r\n"
	for range 20 {
		c, err := net.Dial("tcp", s.Addr("tcp").String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(junk))
		c.SetReadDeadline(time.Now().Add(time.Minute))
		c.Read(make([]byte, 100)) // sipgo closes the connection after the error
		c.Close()
	}
	runtest.WaitFor(t, "a parse error logged", time.Minute, func() bool { return strings.Contains(logs.String(), "parse") })
	out := logs.String()
	if strings.Contains(out, strings.Repeat("y", 200)) || strings.Count(out, "\n") > 3 {
		t.Errorf("sipgo's parse errors not tamed (%d bytes):\n%.2000s", len(out), out)
	}
}
