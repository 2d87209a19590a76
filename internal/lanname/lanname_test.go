package lanname

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
)

const netnsChild = "PARKPAGE_LANNAME_NETNS_CHILD"

// TestAnswersLocalName runs the responder in a private network namespace
// (lo only, multicast routed to lo) and resolves parkpage-test.local with
// a plain one-shot mDNS query (RFC 6762 6.7: from a port other than 5353,
// answered by unicast), written here with x/net's dnsmessage, not pion's
// client. A name the responder does not own gets no answer.
func TestAnswersLocalName(t *testing.T) {
	if os.Getenv(netnsChild) == "" {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Fatalf("needs unshare (util-linux) for a private network namespace: %v", err)
		}
		script := `ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && exec "$0" -test.run='^TestAnswersLocalName$' -test.v -test.count=1`
		cmd := exec.Command(unshare, "-rn", "sh", "-c", script, os.Args[0])
		cmd.Env = append(os.Environ(), netnsChild+"=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "--- PASS: TestAnswersLocalName") {
			t.Fatalf("in a private namespace: %v\n%s", err, out.String())
		}
		return
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Start("parkpage-test", Options{Interfaces: []net.Interface{*lo}, IncludeLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Name != "parkpage-test.local" {
		t.Errorf("Name %q", r.Name)
	}
	addr, ok := query(t, lo, "parkpage-test.local.", 20*time.Second)
	if !ok || addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("parkpage-test.local: %v %v, want 127.0.0.1", addr, ok)
	}
	if addr, ok := query(t, lo, "other-box.local.", 2*time.Second); ok {
		t.Errorf("other-box.local answered with %v", addr)
	}
}

func TestStartRefusesDottedName(t *testing.T) {
	if _, err := Start("park.page", Options{}); err == nil {
		t.Error("a dotted name was accepted")
	}
}

// query asks for name's A record until an answer arrives or wait passes.
func query(t *testing.T, ifi *net.Interface, name string, wait time.Duration) (netip.Addr, bool) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc := ipv4.NewPacketConn(c)
	if err := pc.SetMulticastInterface(ifi); err != nil {
		t.Fatal(err)
	}
	pc.SetMulticastLoopback(true)
	q := dnsmessage.Message{Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	dst := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	end := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for time.Now().Before(end) {
		if _, err := c.WriteTo(b, dst); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			continue
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil {
			t.Logf("unparsable answer: %v", err)
			continue
		}
		for _, a := range m.Answers {
			if r, ok := a.Body.(*dnsmessage.AResource); ok && strings.EqualFold(a.Header.Name.String(), name) {
				return netip.AddrFrom4(r.A), true
			}
		}
	}
	return netip.Addr{}, false
}
