// Package netif picks the network interface parkpage sends and receives
// multicast on. The zone outputs (package multicast) and the receiver of
// phones' own pages (gateway/phonepage) both ask it, so with the same
// config they always agree on the interface.
//
// It reads the kernel's IPv4 routing table (/proc/net/route) and the
// interface list, and imports nothing of parkpage.
package netif

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// ErrNoDefaultRoute is returned when no interface can be chosen for an
// entry that names none.
var ErrNoDefaultRoute = errors.New("no IPv4 default route, no 224.0.0.0/4 route and not exactly one multicast interface up")

// routeTable and interfaces are the system's; tests replace them.
var (
	routeTable = systemRouteTable
	interfaces = net.Interfaces
)

func systemRouteTable() ([]byte, error) { return os.ReadFile("/proc/net/route") }

// Default is the interface multicast goes out on when config names none
// ("interface: empty"): the interface of the IPv4 default route; else the
// interface of a route for the multicast range itself (224.0.0.0/4: a lab
// network, or a private namespace with "ip route add 224.0.0.0/4 dev lo");
// else, as on an appliance that starts before DHCP has given it a route,
// the one multicast-capable non-loopback interface that is up, or, when
// none is up yet (the DHCP client brings the link up after parkpage
// starts), the one that exists. Sockets are bound to the interface, not
// to an address, so they work once the link and its address arrive.
func Default() (string, error) {
	data, err := routeTable()
	if err != nil {
		return "", fmt.Errorf("find the default route: %w", err)
	}
	if name, ok := parseDefaultRoute(string(data)); ok {
		return name, nil
	}
	if name := multicastRoute(string(data)); name != "" {
		return name, nil
	}
	ifs, err := interfaces()
	if err != nil {
		return "", ErrNoDefaultRoute
	}
	var up, present []string
	for _, i := range ifs {
		if i.Flags&net.FlagMulticast == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		present = append(present, i.Name)
		if i.Flags&net.FlagUp != 0 {
			up = append(up, i.Name)
		}
	}
	if len(up) == 1 {
		return up[0], nil
	}
	if len(up) == 0 && len(present) == 1 {
		return present[0], nil
	}
	return "", ErrNoDefaultRoute
}

// Resolve returns s, or Default() when s is empty.
func Resolve(s string) (string, error) {
	if s != "" {
		return s, nil
	}
	return Default()
}

// Find finds an interface by name, by one of its addresses, or, for "",
// the Default one.
func Find(s string) (*net.Interface, error) {
	s, err := Resolve(s)
	if err != nil {
		return nil, err
	}
	if ifi, err := net.InterfaceByName(s); err == nil {
		return ifi, nil
	}
	if ip := net.ParseIP(s); ip != nil {
		ifs, _ := interfaces()
		for i := range ifs {
			addrs, _ := ifs[i].Addrs()
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
					return &ifs[i], nil
				}
			}
		}
	}
	return nil, fmt.Errorf("interface %q: not found", s)
}

// rtfUp is RTF_UP in /proc/net/route's Flags column.
const rtfUp = 0x1

// routes yields the parsed rows of /proc/net/route text: addresses and
// masks in host byte order hex, skipping the header and malformed lines.
func routes(s string, yield func(iface string, dst, flags, mask uint64, metric int)) {
	for i, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 8 {
			continue // header, blank or short line
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		metric, err3 := strconv.Atoi(f[6])
		mask, err4 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || flags&rtfUp == 0 {
			continue
		}
		yield(f[0], dst, flags, mask, metric)
	}
}

// parseDefaultRoute picks the up default route with the lowest metric from
// /proc/net/route text.
func parseDefaultRoute(s string) (string, bool) {
	best, bestMetric := "", -1
	routes(s, func(iface string, dst, _, mask uint64, metric int) {
		if dst == 0 && mask == 0 && (bestMetric < 0 || metric < bestMetric) {
			best, bestMetric = iface, metric
		}
	})
	return best, best != ""
}

// multicastRoute returns the interface of an up route for 224.0.0.0/4 in
// /proc/net/route text, or "".
func multicastRoute(s string) string {
	name := ""
	routes(s, func(iface string, dst, _, mask uint64, _ int) {
		// Little-endian on the machines parkpage runs on: 224.0.0.0 is
		// 000000E0, 240.0.0.0 is 000000F0.
		if name == "" && dst == 0x000000E0 && mask == 0x000000F0 {
			name = iface
		}
	})
	return name
}
