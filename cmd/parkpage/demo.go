package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/parkpage/parkpage/internal/app"
	"github.com/parkpage/parkpage/internal/demo"
)

// cmdDemo is `parkpage demo`: park a simulated call, announce it, show it
// on the slot board and pick it up, all on loopback (package demo).
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	dir := fs.String("dir", "", "directory for the WAV files, log and state (default: a new one under the temp directory)")
	pickup := fs.Duration("pickup-after", 8*time.Second, "how long the call stays parked before the second phone picks it up")
	sound := fs.String("sound", "auto", "play the announcement on: auto (the first usable ALSA device), off, or a device such as hw:0,0")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "parkpage-demo-")
		if err != nil {
			fmt.Fprintf(stderr, "parkpage: %v\n", err)
			return 1
		}
		*dir = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := demo.Run(ctx, demo.Options{Dir: *dir, PickupAfter: *pickup, Sound: *sound, Out: stdout, Start: startDemoAppliance})
	if err != nil {
		fmt.Fprintf(stderr, "parkpage demo: %v\n  (log: %s)\n", err, filepath.Join(*dir, demo.LogFile))
		return 1
	}
	return 0
}

// startDemoAppliance runs the appliance in-process on the demo's config.
func startDemoAppliance(ctx context.Context, path string, log io.Writer) (*demo.Appliance, error) {
	ready := make(chan struct{})
	a, err := app.New(app.Options{ConfigPath: path, LogOutput: log, Version: version, Ready: func(*app.App) { close(ready) }})
	if err != nil {
		return nil, err
	}
	if err := wire(a, wireOptions{}); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return nil, err
	case <-time.After(30 * time.Second):
		cancel()
		return nil, errors.New("not ready within 30 s")
	}
	var stopErr error
	stopped := false
	return &demo.Appliance{
		API: "http://" + a.HTTPAddr().String(),
		Bus: a.Bus(),
		Stop: func() error {
			if stopped {
				return stopErr
			}
			stopped = true
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(5 * time.Second):
				stopErr = errors.New("did not stop within 5 s")
			}
			return stopErr
		},
	}, nil
}
