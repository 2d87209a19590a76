package relays

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// watchHold is how long Watch keeps a line driven before releasing it.
const watchHold = 50 * time.Millisecond

// Watch drives parkpage's relays off the moment its process dies: it
// reads the sentinel at path (waiting for one to appear), waits for that
// pid to exit (a pidfd), drives every line off and releases it, then waits
// for the restarted parkpage's sentinel. logf reports what it did. It
// returns when ctx ends.
func Watch(ctx context.Context, path string, logf func(format string, a ...any)) {
	lastDead := 0
	for ctx.Err() == nil {
		s, err := ReadSentinel(path)
		if err != nil || s.PID == 0 || s.PID == lastDead {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		fd, err := unix.PidfdOpen(s.PID, 0)
		switch {
		case errors.Is(err, unix.ESRCH):
			// Died before we looked: still drive off (a line the new
			// process already holds refuses us, harmlessly).
		case err != nil:
			logf("relay watch: pid %d: %v", s.PID, err)
			sleep(ctx, time.Second)
			continue
		default:
			exited := waitExit(ctx, fd)
			unix.Close(fd)
			if !exited {
				continue // ctx ended
			}
		}
		lastDead = s.PID
		start, n := time.Now(), 0
		for _, l := range s.Lines {
			if err := PulseOff(l.Pin, l.Off, watchHold); err != nil {
				logf("relay watch: parkpage (pid %d) died; relay %s (%s) not driven off: %v", s.PID, l.Relay, l.Pin, err)
				continue
			}
			n++
		}
		if n > 0 {
			logf("relay watch: parkpage (pid %d) died; %d relays driven off in %v", s.PID, n, time.Since(start).Round(time.Millisecond))
		}
	}
}

// waitExit waits until the pidfd's process exits (true) or ctx ends.
func waitExit(ctx context.Context, fd int) bool {
	for ctx.Err() == nil {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 500)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return true // cannot watch: treat as gone, drive off
		}
		if n > 0 {
			return true
		}
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
