// Package mcasttest is a real multicast receiver for tests: a UDP socket
// bound to the group (so it hears that group only) and joined to it on the
// loopback interface, where tests send their pages. Read it packet by
// packet (Conn), or let a Recorder keep everything in the background.
// Only tests import it.
package mcasttest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// Conn is a socket bound to group:port and joined to the group on lo.
type Conn struct {
	PC   *ipv4.PacketConn
	conn net.PacketConn
	port int
	buf  []byte
}

// Listen binds group:port (port 0: any) and joins the group on lo; the
// socket is closed when the test ends.
func Listen(t testing.TB, group string, port int) *Conn {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatalf("loopback interface: %v", err)
	}
	c, err := net.ListenPacket("udp4", net.JoinHostPort(group, fmt.Sprint(port)))
	if err != nil {
		t.Fatalf("listen on %s: %v", group, err)
	}
	t.Cleanup(func() { c.Close() })
	// Room for a whole page even if the reader is starved for a while.
	_ = c.(*net.UDPConn).SetReadBuffer(4 << 20)
	pc := ipv4.NewPacketConn(c)
	if err := pc.JoinGroup(lo, &net.UDPAddr{IP: net.ParseIP(group)}); err != nil {
		t.Fatalf("join %s on lo: %v", group, err)
	}
	return &Conn{PC: pc, conn: c, port: c.LocalAddr().(*net.UDPAddr).Port, buf: make([]byte, 64<<10)}
}

// Port is the bound UDP port.
func (c *Conn) Port() int { return c.port }

// UDPConn is the socket.
func (c *Conn) UDPConn() *net.UDPConn { return c.conn.(*net.UDPConn) }

// Close closes the socket (the test's end does too).
func (c *Conn) Close() error { return c.conn.Close() }

// Read returns the next datagram (a copy), or an error once timeout
// passes with none.
func (c *Conn) Read(timeout time.Duration) ([]byte, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	n, _, err := c.conn.ReadFrom(c.buf)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(c.buf[:n]), nil
}

// Next returns the next datagram, failing the test if none comes in time.
func (c *Conn) Next(t testing.TB, timeout time.Duration) []byte {
	t.Helper()
	b, err := c.Read(timeout)
	if err != nil {
		t.Fatalf("multicast receiver on port %d: %v", c.port, err)
	}
	return b
}

// Quiet reports whether nothing arrives for d.
func (c *Conn) Quiet(d time.Duration) bool {
	_, err := c.Read(d)
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// CollectUntil reads datagrams in the background until done is closed,
// then sends them all on the returned channel. It polls done every 20 ms,
// so it may keep a datagram or two that arrive just after done closes.
func (c *Conn) CollectUntil(done <-chan struct{}) <-chan []Packet {
	out := make(chan []Packet, 1)
	go func() {
		var got []Packet
		buf := make([]byte, 2048)
		for {
			select {
			case <-done:
				out <- got
				return
			default:
			}
			_ = c.PC.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, _, _, err := c.PC.ReadFrom(buf)
			if err == nil {
				got = append(got, Packet{time.Now(), bytes.Clone(buf[:n])})
			}
		}
	}()
	return out
}

// Packet is a datagram and when it arrived.
type Packet struct {
	At   time.Time
	Data []byte
}

// Recorder keeps every datagram a Conn receives, from a goroutine that
// ends with the test.
type Recorder struct {
	c    *Conn
	mu   sync.Mutex
	pkts []Packet
	got  chan struct{}
}

// Record listens like Listen and records in the background.
func Record(t testing.TB, group string, port int) *Recorder {
	t.Helper()
	r := &Recorder{c: Listen(t, group, port), got: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, _, err := r.c.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.pkts = append(r.pkts, Packet{time.Now(), bytes.Clone(buf[:n])})
			r.mu.Unlock()
			select {
			case r.got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { r.c.conn.Close(); <-done })
	return r
}

// Port is the bound UDP port.
func (r *Recorder) Port() int { return r.c.port }

// Packets returns the datagrams so far.
func (r *Recorder) Packets() []Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Packet(nil), r.pkts...)
}

// Wait waits until at least n datagrams arrived and returns them all,
// failing the test if they do not within timeout.
func (r *Recorder) Wait(t testing.TB, n int, timeout time.Duration) []Packet {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if p := r.Packets(); len(p) >= n {
			return p
		}
		select {
		case <-r.got:
		case <-deadline.C:
			t.Fatalf("multicast receiver on port %d got %d packets within %v, want %d", r.c.port, len(r.Packets()), timeout, n)
			return nil
		}
	}
}
