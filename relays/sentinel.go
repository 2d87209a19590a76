package relays

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/parkpage/parkpage/internal/atomicfile"
)

// A crashed parkpage leaves its relays as they were until the supervisor
// starts it again, and gokrazy waits 1 s before that. A watcher in another
// process (parkpage-guard on the image) closes the gap: parkpage writes a
// Sentinel (its pid and the relays' lines with their off levels) when its
// relays are set up; the watcher waits for that process to die and drives
// the lines off at once, then releases them for the restarted parkpage.

// Sentinel is what a watcher needs to drive parkpage's relays off.
type Sentinel struct {
	PID   int            `json:"pid"`
	Lines []SentinelLine `json:"lines"`
}

// SentinelLine is one relay's GPIO line (by name) and its off level.
type SentinelLine struct {
	Relay string `json:"relay"`
	Pin   string `json:"pin"`
	Off   int    `json:"off"` // 0 or 1
}

// SentinelOf describes cfg's relays for the process pid.
func SentinelOf(cfg Config, pid int) Sentinel {
	s := Sentinel{PID: pid, Lines: []SentinelLine{}}
	for name, rc := range cfg.Relays {
		off := 0
		if rc.ActiveLow {
			off = 1
		}
		s.Lines = append(s.Lines, SentinelLine{Relay: name, Pin: rc.Pin, Off: off})
	}
	sort.Slice(s.Lines, func(i, j int) bool { return s.Lines[i].Relay < s.Lines[j].Relay })
	return s
}

// WriteSentinel writes s to path atomically (a watcher may read it at
// any time).
func WriteSentinel(path string, s Sentinel) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("relay sentinel: %w", err)
	}
	return nil
}

// ReadSentinel reads a sentinel written by WriteSentinel.
func ReadSentinel(path string) (Sentinel, error) {
	var s Sentinel
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("relay sentinel %s: %w", path, err)
	}
	return s, nil
}
