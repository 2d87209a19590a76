package netif

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestParseDefaultRoute(t *testing.T) {
	const hdr = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, tc := range []struct {
		name, table, want string
	}{
		{"one", hdr + "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "eth0"},
		{"lowest metric", hdr + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\neth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth0"},
		{"down route skipped", hdr + "eth1\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n", ""},
		{"no default", hdr + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseDefaultRoute(tc.table)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("got %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func FuzzParseDefaultRoute(f *testing.F) {
	f.Add("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\nlo\t00000000\t0\t1\t0\t0\t0\t00000000\n")
	f.Add("x\n\n  \t\nfoo 0 0 zz 0 0 -1 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseDefaultRoute(s)
		if ok == (got == "") {
			t.Fatalf("%q: got %q, %v", s, got, ok)
		}
		if ok && !strings.Contains(s, got) {
			t.Fatalf("%q: interface %q not in the input", s, got)
		}
	})
}

func TestMulticastRoute(t *testing.T) {
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"lo\t000000E0\t00000000\t0001\t0\t0\t0\t000000F0\t0\t0\t0\n"
	if got := multicastRoute(table); got != "lo" {
		t.Errorf("multicastRoute = %q, want lo", got)
	}
	if _, ok := parseDefaultRoute(table); ok {
		t.Error("a multicast route is not a default route")
	}
	if got := multicastRoute(strings.Replace(table, "0001", "0000", 1)); got != "" {
		t.Errorf("a down route gave %q", got)
	}
}

const routeHeader = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"

// Default's fallbacks, in order: default route, 224.0.0.0/4 route, the one
// up multicast interface.
func TestDefault(t *testing.T) {
	up := net.FlagUp | net.FlagMulticast
	eth0 := net.Interface{Name: "eth0", Flags: up}
	wlan0 := net.Interface{Name: "wlan0", Flags: up}
	lo := net.Interface{Name: "lo", Flags: up | net.FlagLoopback}
	for _, tc := range []struct {
		name, table string
		ifs         []net.Interface
		want        string
	}{
		{"default route", routeHeader + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n", []net.Interface{eth0, wlan0}, "wlan0"},
		{"multicast route", routeHeader + "lo\t000000E0\t00000000\t0001\t0\t0\t0\t000000F0\t0\t0\t0\n", []net.Interface{lo, eth0, wlan0}, "lo"},
		{"one interface up", routeHeader, []net.Interface{lo, eth0, {Name: "eth1", Flags: net.FlagMulticast}}, "eth0"},
		{"one interface up, one down", routeHeader, []net.Interface{lo, {Name: "eth1", Flags: net.FlagMulticast}, wlan0}, "wlan0"},
		{"one interface, not up yet", routeHeader, []net.Interface{lo, {Name: "eth0", Flags: net.FlagMulticast}}, "eth0"},
		{"two interfaces, none up yet", routeHeader, []net.Interface{lo, {Name: "eth0", Flags: net.FlagMulticast}, {Name: "eth1", Flags: net.FlagMulticast}}, ""},
		{"two interfaces up", routeHeader, []net.Interface{lo, eth0, wlan0}, ""},
		{"loopback only", routeHeader, []net.Interface{lo}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routeTable = func() ([]byte, error) { return []byte(tc.table), nil }
			interfaces = func() ([]net.Interface, error) { return tc.ifs, nil }
			t.Cleanup(restoreSystem)
			got, err := Default()
			if got != tc.want || (err == nil) != (tc.want != "") {
				t.Fatalf("Default() = %q, %v; want %q", got, err, tc.want)
			}
			if err != nil && !errors.Is(err, ErrNoDefaultRoute) {
				t.Errorf("error %v is not ErrNoDefaultRoute", err)
			}
			if r, _ := Resolve(""); r != tc.want {
				t.Errorf("Resolve(\"\") = %q, want %q", r, tc.want)
			}
			if r, _ := Resolve("eth9"); r != "eth9" {
				t.Errorf("Resolve(eth9) = %q", r)
			}
		})
	}
}

func TestFind(t *testing.T) {
	for _, s := range []string{"lo", "127.0.0.1"} {
		ifi, err := Find(s)
		if err != nil || ifi.Name != "lo" {
			t.Errorf("Find(%q) = %v, %v; want lo", s, ifi, err)
		}
	}
	if _, err := Find("nosuch0"); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("Find(nosuch0) error %v", err)
	}
}

func restoreSystem() {
	routeTable = systemRouteTable
	interfaces = net.Interfaces
}
