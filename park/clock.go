package park

import (
	"time"

	"github.com/parkpage/parkpage/internal/clock"
)

// Clock is the time source of the park server, injected so the timeout,
// ring-back and fallback timers can be tested without waiting (tests use
// clocktest.Clock).
type Clock = clock.Clock

// Timer is a pending AfterFunc call.
type Timer = clock.Timer

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
