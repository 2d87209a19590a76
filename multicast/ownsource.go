package multicast

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// OwnSource reports whether a datagram from src was sent by one of the
// sockets these Outputs opened: a local address and the port of
// one of its senders. A receiver of phones' pages (package phonepage) uses
// it to ignore parkpage's own pages looping back on the group.
func (b *Outputs) OwnSource(src netip.AddrPort) bool {
	if !isLocalAddr(src.Addr()) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sockets {
		pc, _ := s.Conn()
		if pc == nil {
			continue
		}
		if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.Port == int(src.Port()) {
			return true
		}
	}
	return false
}

var localAddrs struct {
	mu    sync.Mutex
	at    time.Time
	addrs map[netip.Addr]bool
}

// isLocalAddr reports whether a is an address of this host (cached for a
// few seconds: addresses change rarely, datagrams arrive every 20 ms).
func isLocalAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	localAddrs.mu.Lock()
	defer localAddrs.mu.Unlock()
	if localAddrs.addrs == nil || time.Since(localAddrs.at) > 5*time.Second {
		m := map[netip.Addr]bool{}
		if as, err := net.InterfaceAddrs(); err == nil {
			for _, x := range as {
				if n, ok := x.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok {
						m[ip.Unmap()] = true
					}
				}
			}
		}
		localAddrs.addrs, localAddrs.at = m, time.Now()
	}
	return localAddrs.addrs[a]
}
