package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	boot "github.com/parkpage/parkpage/internal/appliance"
	"github.com/parkpage/parkpage/internal/lanname"
	"github.com/parkpage/parkpage/multicast/netif"
)

// cmdAppliance is the image's entry point (gokrazy starts it): import the
// installer's files from the boot partition, pick the config, offer the
// credential setup page while none exists, then run as `parkpage run`.
// It never refuses to start over a bad file: the box falls back to its
// last good config or the embedded default and reports the problems.
func cmdAppliance(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("appliance", stderr)
	stateDir := fs.String("state-dir", "/perm/parkpage", "persistent state directory (config, credential, registrations)")
	baked := fs.String("baked-config", "/etc/parkpage/parkpage.yaml", "site config baked into the image (used when none was imported)")
	permMount := fs.String("perm", "/perm", "mount point of the persistent partition (its disk's partition 1 is the FAT boot partition)")
	runDir := fs.String("run-dir", "/run/parkpage", "scratch directory (tmpfs)")
	setupListen := fs.String("setup-listen", ":8080", "address of the setup page while no admin credential exists")
	setupBackend := fs.String("setup-backend", "127.0.0.1:8081", "admin API address of the service while the setup page runs")
	mdnsName := fs.String("mdns", "", "name answered by mDNS as NAME.local (default: the host name, parkpage on the image; off: none)")
	gokrazySocket := fs.String("gokrazy-socket", "/run/gokrazy-http.sock", "gokrazy's HTTP API socket (the update API writes the A/B partitions through it)")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	// gokrazy keeps a service's output in a RAM ring buffer only: keep a
	// copy under the state directory so the log survives a reboot.
	if lw, err := persistentLog(filepath.Join(*stateDir, "parkpage.log"), 4<<20); err == nil {
		defer lw.Close()
		stderr = io.MultiWriter(stderr, lw)
	} else {
		fmt.Fprintf(stderr, "parkpage: persistent log: %v\n", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "appliance")
	console := consoleWriter(stderr)

	var problems []string // shown on the console and the setup page
	dev, err := boot.BootPartition("/proc/self/mountinfo", *permMount)
	if err != nil {
		log.Warn("no boot partition to import from", "err", err)
	} else {
		var imported []string
		err := boot.WithBootPartition(dev, filepath.Join(*runDir, "boot"), func(dir string) error {
			imported, problems = boot.Import(dir, *stateDir)
			return nil
		})
		if err != nil {
			log.Warn("boot partition", "dev", dev, "err", err)
		}
		for _, f := range imported {
			fmt.Fprintf(console, "parkpage: imported %s from the boot partition into %s (removed there)\n", f, *stateDir)
		}
		for _, p := range problems {
			fmt.Fprintf(console, "parkpage: refused: %s\n", p)
		}
	}

	plan := boot.Choose(*stateDir, *baked, *runDir)
	for _, p := range plan.Problems {
		fmt.Fprintf(console, "parkpage: config passed over: %s\n", p)
	}
	fmt.Fprintf(console, "parkpage: running on the %s; admin credential: %v\n", plan.Source, plan.HasCredential)
	// No alsactl on the image: parkpage unmutes the line-out card itself.
	// parkpage-guard reads the relay sentinel and drives the relays off
	// the moment parkpage dies (gokrazy restarts it only 1 s later).
	runArgs := []string{"-state-dir", *stateDir, "-set-mixer", "-relay-sentinel", filepath.Join(*runDir, "relays.json")}
	if plan.ConfigPath != "" {
		runArgs = append(runArgs, "-config", plan.ConfigPath)
		if filepath.Dir(plan.ConfigPath) == filepath.Clean(*runDir) {
			// The config with the setup page's credential folded in is on
			// tmpfs: console saves go to /perm, the next boot's choice.
			runArgs = append(runArgs, "-save-config", filepath.Join(*stateDir, boot.PermConfig))
		}
	}
	var restart atomic.Bool
	if !plan.HasCredential {
		stop, err := startSetup(*setupListen, *setupBackend, *stateDir, *runDir, append(problems, plan.Problems...), log, console, &restart)
		if err != nil {
			log.Error("setup page", "err", err)
		} else {
			defer stop()
			runArgs = append(runArgs, "-http", *setupBackend)
		}
	}
	// Reachable as parkpage.local without a DNS server.
	if name := *mdnsName; name != "off" {
		if name == "" {
			name, _ = os.Hostname()
		}
		if r, err := lanname.Start(name, lanname.Options{Log: log}); err != nil {
			log.Warn("mdns", "err", err)
		} else {
			defer r.Close()
			fmt.Fprintf(console, "parkpage: reachable as %s (mDNS)\n", r.Name)
		}
	}
	// Name the sound cards for the lineout outputs' device (no shell).
	if b, err := os.ReadFile("/proc/asound/cards"); err == nil {
		cards := soundCards(string(b))
		for _, c := range cards {
			fmt.Fprintf(console, "parkpage: %s\n", c)
		}
		if len(cards) == 0 {
			fmt.Fprintln(console, "parkpage: no sound card (line out needs one, e.g. a USB audio adapter)")
		}
	}
	// The update API (admin credential) hands A/B updates to gokrazy.
	upd := &boot.Updater{Gokrazy: &boot.Gokrazy{Socket: *gokrazySocket}, Log: log}
	if dev != "" {
		upd.WithBoot = func(fn func(string) error) error {
			return boot.WithBootPartition(dev, filepath.Join(*runDir, "boot"), fn)
		}
	}
	if boot.IsTrialBoot("/proc/cmdline") {
		fmt.Fprintln(console, "parkpage: trial boot of an update (parkpage-guard keeps it once healthy)")
	}
	// Refused boot-partition files stay on the console's pages until the
	// next boot (the setup page shows them while no credential exists).
	extra := serviceExtras{Routes: upd.Routes()}
	for _, p := range problems {
		extra.Notices = append(extra.Notices, "Refused on the boot partition: "+p)
	}
	for _, p := range plan.Problems {
		extra.Notices = append(extra.Notices, "Config passed over: "+p)
	}
	// Outputs without an interface take the default route's, which DHCP
	// brings: on a box with two network interfaces (a Pi's eth0 and
	// wlan0) none can be chosen before it. Wait for it a while (the setup
	// page already answers), rather than exit and be restarted each second.
	if waitNetwork(netif.Default, networkWait, time.Sleep) {
		log.Debug("network: the outputs' default interface is known")
	} else {
		fmt.Fprintf(console, "parkpage: no network interface to page on after %v (no default route yet); starting anyway\n", networkWait)
	}
	rc := runService(runArgs, stdout, stderr, extra)
	if restart.Load() {
		// The credential is set: start again from the top, so the config
		// with the credential is chosen and the admin page opens on the
		// LAN. gokrazy does not restart a service that exits with 0.
		fmt.Fprintln(console, "parkpage: admin credential set; restarting")
		self, err := os.Executable()
		if err == nil {
			err = syscall.Exec(self, os.Args, os.Environ())
		}
		fmt.Fprintf(console, "parkpage: restart: %v\n", err)
		return 1 // the supervisor starts us again
	}
	if rc != 0 && plan.ConfigPath != "" {
		// Never a boot loop over a config: run on the embedded default.
		fmt.Fprintf(console, "parkpage: %s failed; running on the embedded default config\n", plan.Source)
		extra.Notices = append(extra.Notices, plan.Source+" failed to start; running on the embedded default config (see the log)")
		rc = runService(runArgs[:5], stdout, stderr, extra)
	}
	return rc
}

// networkWait is how long the appliance waits for a default route.
const networkWait = 30 * time.Second

// waitNetwork polls find until it names an interface or wait passes.
func waitNetwork(find func() (string, error), wait time.Duration, sleep func(time.Duration)) bool {
	const every = 250 * time.Millisecond
	for waited := time.Duration(0); ; waited += every {
		if _, err := find(); err == nil {
			return true
		}
		if waited >= wait {
			return false
		}
		sleep(every)
	}
}

// startSetup serves the credential setup page on the LAN.
func startSetup(listen, backend, stateDir, runDir string, problems []string, log *slog.Logger, console io.Writer, restart *atomic.Bool) (func(), error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	s := &boot.Setup{
		StateDir: stateDir,
		Problems: problems,
		Health:   "http://" + backend + "/healthz",
		Log:      log,
		CodeFile: filepath.Join(runDir, "setup-code"),
		Announce: func(code string) {
			fmt.Fprintf(console, "\nparkpage: no admin password yet. Open %s and enter the setup code %s\n\n", setupURLs(listen), code)
		},
		// Stop the service and start again with the credential: the
		// full admin page then listens on the LAN.
		Done: func() {
			restart.Store(true)
			time.Sleep(500 * time.Millisecond)
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
		},
	}
	os.MkdirAll(runDir, 0o700)
	s.ResumeCode()
	// Say it again now and then: DHCP may finish after the first notice,
	// and an installer may plug the screen in later.
	stopAnnounce := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-stopAnnounce:
				return
			case <-t.C:
				if !s.Saved() {
					s.Announce(s.Code())
				}
			}
		}
	}()
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("setup page", "err", err)
		}
	}()
	return func() {
		close(stopAnnounce)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// setupURLs lists the setup page's URLs on this box's LAN addresses.
func setupURLs(listen string) string {
	port := ""
	if _, p, err := net.SplitHostPort(listen); err == nil && p != "80" {
		port = ":" + p
	}
	var urls []string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			urls = append(urls, "http://"+ipn.IP.String()+port+"/")
		}
	}
	if len(urls) == 0 {
		return "http://ADDRESS" + port + "/ (this box's address: no network address yet)"
	}
	return strings.Join(urls, " or ")
}

// consoleWriter writes to stderr and, on the appliance, to the system
// console too (HDMI and serial), where an installer without a shell looks.
func consoleWriter(stderr io.Writer) io.Writer {
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|syscall.O_NOCTTY, 0); err == nil {
		return io.MultiWriter(stderr, f)
	}
	return stderr
}

// persistentLog opens path for appending; a file over max bytes is moved
// to path.1 first (one old generation kept).
func persistentLog(path string, max int64) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if st, err := os.Stat(path); err == nil && st.Size() > max {
		os.Rename(path, path+".1")
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}
