package main

import (
	"fmt"
	"regexp"
	"strings"
)

// The appliance has no shell to run aplay -l on, so it names the sound
// cards on the console: what an installer writes as a lineout output's
// device.

var cardLine = regexp.MustCompile(`^\s*(\d+) \[(\S+)\s*\]: (.*)$`)

// soundCards turns /proc/asound/cards into one line per card, e.g.
// `sound card 0 "Intel" (HDA-Intel - HDA Intel): device hw:CARD=Intel,DEV=0 or hw:0,0`.
func soundCards(procCards string) []string {
	var out []string
	for _, l := range strings.Split(procCards, "\n") {
		m := cardLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		out = append(out, fmt.Sprintf("sound card %s %q (%s): device hw:CARD=%s,DEV=0 or hw:%s,0", m[1], m[2], strings.TrimSpace(m[3]), m[2], m[1]))
	}
	return out
}
