package main

import (
	"errors"
	"testing"
	"time"
)

func TestWaitNetwork(t *testing.T) {
	for _, tc := range []struct {
		name    string
		readyAt int // the call of find that first succeeds; 0: never
		want    bool
		slept   time.Duration
	}{
		{"ready at once", 1, true, 0},
		{"after DHCP", 9, true, 2 * time.Second},
		{"never", 0, false, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			var slept time.Duration
			find := func() (string, error) {
				calls++
				if tc.readyAt > 0 && calls >= tc.readyAt {
					return "eth0", nil
				}
				return "", errors.New("no route")
			}
			got := waitNetwork(find, 30*time.Second, func(d time.Duration) { slept += d })
			if got != tc.want || slept != tc.slept {
				t.Errorf("waitNetwork = %v after %v asleep, want %v after %v", got, slept, tc.want, tc.slept)
			}
		})
	}
}
