package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// keepWatchdog pings the hardware watchdog device at path (a write of
// any byte but 'V' is a keepalive, Documentation/watchdog/watchdog-api)
// every interval until ctx ends.
//
// The guard needs it on a trial boot: gokrazy's init opens /dev/watchdog
// and pings it, then execs the init of the inactive root, which closes it
// without the magic 'V' (the kernel logs "watchdog did not stop!") and
// cannot open it again (its /dev is not mounted yet). The watchdog stays
// armed with nobody pinging, and resets the box after its timeout (about
// 30-60 s for QEMU's i6300esb): an update that needs longer to become
// healthy would be rolled back, and the guard's own deadline never counts.
//
// When ctx ends the device is closed without 'V', so the watchdog keeps
// running: a shutdown that hangs still ends in a reset. If the device
// cannot be opened (no watchdog; EBUSY: gokrazy pings it itself) there is
// nothing to take over.
func keepWatchdog(ctx context.Context, path string, interval time.Duration, console io.Writer) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(console, "parkpage-guard: no hardware watchdog (%s)\n", path)
		case errors.Is(err, syscall.EBUSY):
			fmt.Fprintf(console, "parkpage-guard: the hardware watchdog %s is in use (gokrazy pings it)\n", path)
		default:
			fmt.Fprintf(console, "parkpage-guard: hardware watchdog: %v\n", err)
		}
		return
	}
	defer f.Close()
	fmt.Fprintf(console, "parkpage-guard: pinging the hardware watchdog %s for this trial boot's init\n", path)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failed := false
	for {
		if _, err := f.Write([]byte{0}); err != nil && !failed {
			fmt.Fprintf(console, "parkpage-guard: hardware watchdog ping: %v\n", err)
			failed = true
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
