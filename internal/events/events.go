// Package events is parkpage's in-process event bus: park, gateway, relays
// and the SIP layer publish typed events; the API's SSE stream, metrics and
// the gateway subscribe. Publishing never blocks: a subscriber that falls
// behind loses events and is told how many with a Lost event.
package events

import (
	"sync"
	"sync/atomic"
	"time"
)

// Type names an event. The string is what the API and SSE stream show.
type Type string

// Event types.
const (
	CallParked    Type = "call.parked"    // a call entered a slot
	CallRetrieved Type = "call.retrieved" // someone picked it up
	CallTimedOut  Type = "call.timed_out" // park timeout expired
	CallRangBack  Type = "call.rang_back" // ring-back or fallback call placed (Target says which)
	CallReturned  Type = "call.returned"  // ring-back and fallback failed: back in its slot
	CallAbandoned Type = "call.abandoned" // the parked caller hung up (or its media died)
	CallRefused   Type = "call.refused"   // park or pickup refused (Reason says why)
	CallMoved     Type = "call.moved"     // moved to another slot at the front desk (From the old slot)
	CallResumed   Type = "call.resumed"   // a parked call taken over after a restart (back in its slot)

	// Draining the park before stopping for good (parkpage drain).
	DrainStarted   Type = "park.drain_started"   // new parks refused; parked calls rung back (Count: calls parked)
	Drained        Type = "park.drained"         // draining and the lot is empty
	DrainCancelled Type = "park.drain_cancelled" // parks accepted again (Count: calls still parked)

	PageStarted   Type = "page.started"
	PagePreempted Type = "page.preempted"
	PageEnded     Type = "page.ended"
	OutputFailed  Type = "output.failed"

	RelayOn  Type = "relay.on"
	RelayOff Type = "relay.off"

	ConfigReloaded Type = "config.reloaded"
	ConfigRejected Type = "config.rejected"

	// Lost is delivered to a subscriber that dropped Count events because it
	// did not keep up.
	Lost Type = "events.lost"
)

// Event is one thing that happened. Fields that do not apply to a Type are
// left empty.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type Type      `json:"type"`

	// Park events.
	Lot       string `json:"lot,omitempty"`
	Slot      string `json:"slot,omitempty"`
	Label     string `json:"label,omitempty"`
	Caller    string `json:"caller,omitempty"`    // parked party, "Name <sip:uri>"
	Parker    string `json:"parker,omitempty"`    // who parked it
	Retriever string `json:"retriever,omitempty"` // who picked it up
	Target    string `json:"target,omitempty"`    // ring-back/fallback destination
	Source    string `json:"source,omitempty"`    // where a park event came from: local, blf, ami, webhook
	From      string `json:"from,omitempty"`      // call.moved: the slot it left

	// Page events.
	Page     string   `json:"page,omitempty"` // page ID
	Priority string   `json:"priority,omitempty"`
	Zones    []string `json:"zones,omitempty"`
	Output   string   `json:"output,omitempty"` // "zone/outputs[i]" of a failed output
	Text     string   `json:"text,omitempty"`

	// Relay events.
	Relay string `json:"relay,omitempty"`

	Reason string `json:"reason,omitempty"` // refusals, failures, pre-emptions, endings
	Count  uint64 `json:"count,omitempty"`  // Lost: events dropped
}

// Bus fans events out to subscribers.
type Bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
	seq  atomic.Uint64
	now  func() time.Time
}

// New returns an empty bus.
func New() *Bus {
	return &Bus{subs: map[*Subscription]struct{}{}, now: time.Now}
}

// Publish stamps e with a sequence number and time (if unset) and offers it
// to every subscriber without waiting for any of them.
func (b *Bus) Publish(e Event) {
	e.Seq = b.seq.Add(1)
	if e.Time.IsZero() {
		e.Time = b.now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.offer(e)
	}
}

// Subscribe returns a subscription buffering up to buf events.
func (b *Bus) Subscribe(buf int) *Subscription {
	if buf < 1 {
		buf = 1
	}
	s := &Subscription{c: make(chan Event, buf), bus: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Subscription receives events from a Bus.
type Subscription struct {
	c       chan Event
	bus     *Bus
	lost    uint64 // dropped since the last Lost event was delivered; under bus.mu
	dropped atomic.Uint64
	once    sync.Once
}

// C delivers the events. It is closed by Close.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped is the total number of events this subscriber lost.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// offer delivers e or counts it lost; called with bus.mu held. A pending
// Lost notice goes first, so the subscriber learns of the gap before it
// sees the next event.
func (s *Subscription) offer(e Event) {
	if s.lost > 0 {
		select {
		case s.c <- Event{Seq: e.Seq, Time: e.Time, Type: Lost, Count: s.lost}:
			s.lost = 0
		default:
			s.lost++
			s.dropped.Add(1)
			return
		}
	}
	select {
	case s.c <- e:
	default:
		s.lost++
		s.dropped.Add(1)
	}
}

// Close unsubscribes and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		close(s.c)
		s.bus.mu.Unlock()
	})
}
