package clocktest

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Timeline records what happened when, as "ms what" lines: milliseconds
// since NewTimeline, five digits, then the text. Inside a testing/synctest
// bubble the times are exact, so a test can compare the lines whole.
type Timeline struct {
	t0    time.Time
	mu    sync.Mutex
	lines []string
}

// NewTimeline starts a timeline now.
func NewTimeline() *Timeline { return &Timeline{t0: time.Now()} }

// Start is when the timeline started.
func (tl *Timeline) Start() time.Time { return tl.t0 }

// Add records fmt.Sprintf(format, args...) at the current time.
func (tl *Timeline) Add(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.lines = append(tl.lines, fmt.Sprintf("%05d %s", time.Since(tl.t0).Milliseconds(), fmt.Sprintf(format, args...)))
}

// Lines returns the lines so far.
func (tl *Timeline) Lines() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.lines)
}
