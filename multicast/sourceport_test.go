package multicast

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// freeUDPPort returns a port nothing is bound to right now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// A Sender with a SourcePort sends from it, and shares it: with a receiver
// bound to the group and port (SO_REUSEADDR, as phone_pages and most
// multicast receivers bind), and with a second Sender. A socket that holds
// the port without sharing it is reported with the way out.
func TestSenderSourcePort(t *testing.T) {
	port := freeUDPPort(t)
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
	}}
	rx, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort("239.77.7.9", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	cfg := SenderConfig{Group: "239.77.7.9", Port: port, Interface: "lo", SourcePort: port}
	a, err := NewSender(cfg)
	if err != nil {
		t.Fatalf("sender from the group's port beside a receiver on it: %v", err)
	}
	defer a.Close()
	pc, _ := a.Conn()
	if got := pc.LocalAddr().(*net.UDPAddr).Port; got != port {
		t.Fatalf("sender bound to port %d, want %d", got, port)
	}
	b, err := NewSender(cfg)
	if err != nil {
		t.Fatalf("second sender from the same port: %v", err)
	}
	b.Close()

	r, err := NewSender(SenderConfig{Group: "239.77.7.9", Port: port, Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if pc, _ := r.Conn(); pc.LocalAddr().(*net.UDPAddr).Port == port {
		t.Error("SourcePort 0 bound the group's port")
	}

	busy := freeUDPPort(t)
	hold, err := net.ListenUDP("udp4", &net.UDPAddr{Port: busy}) // no SO_REUSEADDR
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	_, err = NewSender(SenderConfig{Group: "239.77.7.9", Port: busy, Interface: "lo", SourcePort: busy})
	if err == nil || !strings.Contains(err.Error(), "source_port: 0") {
		t.Errorf("port held without SO_REUSEADDR: err %v, want one naming source_port: 0", err)
	}
	if err := (&SenderConfig{Group: "239.77.7.9", Port: 1, Interface: "lo", SourcePort: 70000}).Validate(); err == nil {
		t.Error("source port 70000 accepted")
	}
}
