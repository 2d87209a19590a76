// Package opstatus follows the event bus for the console's Status page:
// each output's last successful page and last failure, and the relays'
// switching. It holds no state of its own beyond that; the page puts it
// next to what the SIP stack, the relay bank and the metrics say.
package opstatus

import (
	"context"
	"sync"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// Output is what the Status page shows of one output.
type Output struct {
	Name        string    `json:"name"` // "zone/outputs[i]"
	LastOK      time.Time `json:"last_ok,omitzero"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	Reason      string    `json:"reason,omitempty"` // of the last failure
	Failures    int       `json:"failures"`
	Pages       int       `json:"pages"` // pages played without failing
}

// Tracker follows page and output events.
type Tracker struct {
	// OutputsOf lists a zone's outputs' names (the config in force).
	OutputsOf func(zone string) []string

	mu      sync.Mutex
	outputs map[string]*Output
	failed  map[string]map[string]bool // page -> outputs that failed in it
	relays  map[string]time.Time       // relay -> last switched
	started time.Time
}

// New returns a tracker.
func New(outputsOf func(zone string) []string) *Tracker {
	return &Tracker{OutputsOf: outputsOf, outputs: map[string]*Output{}, failed: map[string]map[string]bool{}, relays: map[string]time.Time{}, started: time.Now()}
}

func (t *Tracker) output(name string) *Output {
	o := t.outputs[name]
	if o == nil {
		o = &Output{Name: name}
		t.outputs[name] = o
	}
	return o
}

// Observe takes one event.
func (t *Tracker) Observe(e events.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Type {
	case events.PageStarted:
		t.failed[e.Page] = map[string]bool{}
	case events.OutputFailed:
		o := t.output(e.Output)
		o.LastFailure, o.Reason = e.Time, e.Reason
		o.Failures++
		if f := t.failed[e.Page]; f != nil {
			f[e.Output] = true
		}
	case events.PageEnded:
		f := t.failed[e.Page]
		delete(t.failed, e.Page)
		// A page cut short (retrieved, pre-empted) still went out on the
		// outputs that did not fail.
		for _, z := range e.Zones {
			if t.OutputsOf == nil {
				break
			}
			for _, name := range t.OutputsOf(z) {
				if !f[name] {
					o := t.output(name)
					o.LastOK = e.Time
					o.Pages++
				}
			}
		}
	case events.RelayOn, events.RelayOff:
		t.relays[e.Relay] = e.Time
	}
}

// Outputs returns what the tracker knows of the named outputs, in order
// (outputs that never played are listed with zero times).
func (t *Tracker) Outputs(names []string) []Output {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Output, 0, len(names))
	for _, n := range names {
		if o := t.outputs[n]; o != nil {
			out = append(out, *o)
		} else {
			out = append(out, Output{Name: n})
		}
	}
	return out
}

// RelaySwitched is when a relay last switched (zero: not since start).
func (t *Tracker) RelaySwitched(name string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.relays[name]
}

// Run follows bus until ctx ends.
func (t *Tracker) Run(ctx context.Context, bus *events.Bus) error {
	sub := bus.Subscribe(512)
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sub.C():
			if !ok {
				return nil
			}
			t.Observe(e)
		}
	}
}
