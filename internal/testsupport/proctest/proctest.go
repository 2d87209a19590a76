// Package proctest has the small helpers tests use around the processes
// and sockets they start: a free loopback port, and the tail of a long
// output to print when a test fails. Only tests import it.
package proctest

import (
	"net"
	"strings"
	"sync"
	"testing"
)

// FreePort returns a port on 127.0.0.1 that was free a moment ago for
// network ("udp" or "tcp"): for a peer (sipp, a config) that must be told
// its port before it binds. Prefer binding port 0 where the code allows.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var pairMu sync.Mutex

// FreeUDPPair returns an even UDP port p on 127.0.0.1 with p+2 free too:
// sipp binds its RTP port and the one two above it.
func FreeUDPPair(t testing.TB) int {
	t.Helper()
	pairMu.Lock()
	defer pairMu.Unlock()
	for range 100 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 2})
		c.Close()
		if err == nil {
			c2.Close()
			if p%2 == 0 {
				return p
			}
		}
	}
	t.Fatal("no free UDP port pair")
	return 0
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
