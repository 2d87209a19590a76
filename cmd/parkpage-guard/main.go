// Command parkpage-guard is the second gokrazy service next to parkpage.
// It decides an appliance update's trial boot: on the one boot of a new
// root partition, it commits it once parkpage answers /healthz and
// otherwise reboots into the previous version after -deadline. And it
// watches parkpage: when parkpage dies (a crash, kill -9) it drives the
// relays parkpage listed in its sentinel off at once, instead of when
// gokrazy restarts parkpage 1 s later.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/parkpage/parkpage/internal/appliance"
	"github.com/parkpage/parkpage/relays"
)

func main() {
	health := flag.String("health", "http://127.0.0.1:8080/healthz", "parkpage's health endpoint")
	deadline := flag.Duration("deadline", 5*time.Minute, "time for the new version to become healthy")
	socket := flag.String("gokrazy-socket", "/run/gokrazy-http.sock", "gokrazy's HTTP API socket")
	sentinel := flag.String("relay-sentinel", "/run/parkpage/relays.json", "parkpage's relay sentinel (parkpage run -relay-sentinel)")
	watchdog := flag.String("watchdog", "/dev/watchdog", "hardware watchdog to ping on a trial boot, when gokrazy's init cannot (\"\" for none)")
	flag.Parse()
	console := os.Stderr
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|syscall.O_NOCTTY, 0); err == nil {
		console = f
	}
	go relays.Watch(context.Background(), *sentinel, func(format string, a ...any) {
		fmt.Fprintf(console, "parkpage-guard: "+format+"\n", a...)
	})
	g := &appliance.Guard{Gokrazy: &appliance.Gokrazy{Socket: *socket}, Health: *health, Deadline: *deadline, Console: console, Watchdog: *watchdog}
	if err := g.Run(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "parkpage-guard: %v\n", err)
	}
	// Stay up for the relay watch and the watchdog pings of a trial boot
	// (and gokrazy would restart an exited guard and count again).
	select {}
}
