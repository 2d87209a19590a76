package pbxevents

import (
	"math/rand/v2"
	"time"
)

// Backoff is how long a source waits before its (n+1)th retry: min·2ⁿ
// capped at max, jittered to [½, 1] of that so that the sources (and the
// boxes) behind one restarted PBX do not come back in step.
func Backoff(n int, min, max time.Duration) time.Duration {
	d := max
	if n < 32 {
		if v := min << n; v > 0 && v < max {
			d = v
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
