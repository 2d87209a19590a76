package main

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/provision"
)

// cmdProvision prints a phone's configuration file (internal/provision).
func cmdProvision(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("provision", stderr)
	model := fs.String("model", "", "phone model: "+strings.Join(provision.ModelNames(), ", "))
	user := fs.String("user", "", "the phone's park account: a sip.users entry, e.g. 2001")
	sidecar := fs.Bool("sidecar", false, "put the slot keys on the expansion module (Yealink EXP50, Poly EM50)")
	var zones multiFlag
	fs.Var(&zones, "zone", "zone whose multicast pages the phone plays (repeatable; first = highest priority)")
	mac := fs.String("mac", "", "the phone's MAC address (names the file; default <MAC>)")
	server := fs.String("server", "", "address phones reach parkpage's SIP on (default sip.domain, else this host's address)")
	cfgPath := fs.String("config", "", "config file (default: the embedded default config)")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if *model == "" || *user == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	var cfg *config.Config
	var err error
	if *cfgPath == "" {
		cfg, err = config.LoadDefault()
	} else {
		cfg, _, err = config.Load(*cfgPath)
	}
	if err != nil {
		fmt.Fprintf(stderr, "parkpage: %v\n", err)
		return 1
	}
	p := provision.Phone{Model: provision.Model(*model), User: *user, Sidecar: *sidecar, Zones: zones}
	if *mac != "" {
		if p.MAC, err = provision.ParseMAC(*mac); err != nil {
			fmt.Fprintf(stderr, "parkpage: -mac: %v\n", err)
			return 2
		}
	}
	host := *server
	if host == "" {
		host = hostAddress()
	}
	srv, err := provision.SIPServer(cfg, host)
	if err == nil {
		var f *provision.File
		if f, err = provision.Generate(cfg, p, srv); err == nil {
			stdout.Write(f.Body)
			for _, n := range f.Notes {
				fmt.Fprintf(stderr, "parkpage: note: %s\n", n)
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "parkpage: %v\n", err)
	return 1
}

// hostAddress is this host's address as phones would reach it: the
// source address of a route to a public address (no packet is sent).
func hostAddress() string {
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return ""
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsLoopback() {
		return a.IP.String()
	}
	return ""
}
