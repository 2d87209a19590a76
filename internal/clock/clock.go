// Package clock is the time source of the parts that run timers (the park
// server's timeouts, the relays' lead and hold times), injected so tests
// can drive them with clocktest.Clock instead of waiting. It imports
// nothing of parkpage's.
package clock

import "time"

// Clock tells the time and runs functions later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once d has passed (in its own goroutine or not:
	// callers must not hold locks f needs).
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop cancels the call; it reports false if f has already been called
	// or is being called.
	Stop() bool
}

// Real returns the wall clock.
func Real() Clock { return wall{} }

type wall struct{}

func (wall) Now() time.Time { return time.Now() }

func (wall) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
