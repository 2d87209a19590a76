// Command parkpage-guard decides an appliance update's trial boot: a
// second gokrazy service next to parkpage that, on the one boot of a new
// root partition, commits it once parkpage answers /healthz and otherwise
// reboots into the previous version after -deadline. On a normal boot it
// exits at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/parkpage/parkpage/internal/appliance"
)

func main() {
	health := flag.String("health", "http://127.0.0.1:8080/healthz", "parkpage's health endpoint")
	deadline := flag.Duration("deadline", 5*time.Minute, "time for the new version to become healthy")
	socket := flag.String("gokrazy-socket", "/run/gokrazy-http.sock", "gokrazy's HTTP API socket")
	flag.Parse()
	console := os.Stderr
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|syscall.O_NOCTTY, 0); err == nil {
		console = f
	}
	g := &appliance.Guard{Gokrazy: &appliance.Gokrazy{Socket: *socket}, Health: *health, Deadline: *deadline, Console: console}
	if err := g.Run(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "parkpage-guard: %v\n", err)
		// Stay up: gokrazy would restart an exited guard and count again.
		select {}
	}
}
