package pbxevents

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for n := range 40 {
		want := min(time.Second<<min(n, 20), time.Minute)
		for range 20 {
			if d := Backoff(n, time.Second, time.Minute); d < want/2 || d > want {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}
