package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// portPool hands out UDP sockets on even ports of a range (RTP convention:
// the odd port above is left for RTCP, which parkpage neither sends nor
// needs).
type portPool struct {
	ip          netip.Addr
	first, last int

	mu   sync.Mutex
	next int
	used map[int]bool
	// reserved ports are kept for legs being resumed (listenPort): listen
	// does not hand them out.
	reserved map[int]bool
	// busyUntil ends the wait for ports still held by the process before
	// (ResumeLeg, waitBusy).
	busyUntil time.Time
}

func newPortPool(ip netip.Addr, first, last int) (*portPool, error) {
	if first%2 == 1 {
		first++
	}
	if first < 1024 || last > 65535 || last < first+1 {
		return nil, fmt.Errorf("rtp ports %d-%d: want a range of at least 2 ports within 1024-65535", first, last)
	}
	return &portPool{ip: ip, first: first, last: last, next: first, used: map[int]bool{}}, nil
}

// ErrPortsExhausted means every port of the range is in use.
var ErrPortsExhausted = errors.New("all RTP ports are in use")

// listen opens a socket on the next free even port. Ports taken by other
// programs are skipped.
func (p *portPool) listen() (*net.UDPConn, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := (p.last-p.first)/2 + 1
	var lastErr error
	for i := 0; i < n; i++ {
		port := p.next
		p.next += 2
		if p.next > p.last {
			p.next = p.first
		}
		if p.used[port] || p.reserved[port] {
			continue
		}
		network := "udp4"
		if p.ip.Is6() {
			network = "udp6"
		}
		c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port))))
		if err != nil {
			lastErr = err
			continue
		}
		p.used[port] = true
		return c, port, nil
	}
	if lastErr != nil {
		return nil, 0, fmt.Errorf("%w (last error: %v)", ErrPortsExhausted, lastErr)
	}
	return nil, 0, ErrPortsExhausted
}

func (p *portPool) release(port int) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

// listenPort opens a socket on one given port (a leg taken over from an
// earlier process), inside or outside the range.
func (p *portPool) listenPort(port int) (*net.UDPConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used[port] {
		return nil, fmt.Errorf("rtp port %d is in use by another leg", port)
	}
	network := "udp4"
	if p.ip.Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port))))
	if err != nil {
		return nil, err
	}
	p.used[port] = true
	delete(p.reserved, port)
	return c, nil
}
