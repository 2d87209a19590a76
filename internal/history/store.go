// Package history is parkpage's park history: every park as one record
// (who parked whom where, whether it rang back or fell back, who picked it
// up after how long, or that the caller gave up), fed from the event bus
// and kept in the state directory as an append-only file that is
// compacted from time to time. The usage report (report.go) reads it.
//
// The file, park-history.jsonl, has one JSON object a line: {"ev":{...}}
// is a park event as it arrived, {"rec":{...}} a finished park written by
// compaction. Loading replays both; a line that does not parse (a write
// cut short by a power cut) is skipped and counted.
package history

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkpage/parkpage/internal/atomicfile"
	"github.com/parkpage/parkpage/internal/clock"
	"github.com/parkpage/parkpage/internal/events"
)

// FileName is the history file in the state directory.
const FileName = "park-history.jsonl"

// Retention is how long finished parks are kept: the report's longest
// window and a day.
const Retention = 91 * 24 * time.Hour

// Outcomes of a park.
const (
	OutcomeParked    = ""          // still parked
	OutcomePickedUp  = "picked_up" // someone picked it up from the slot
	OutcomeRingBack  = "ring_back" // the parker answered the ring-back
	OutcomeFallback  = "fallback"  // the fallback answered
	OutcomeAbandoned = "abandoned" // the caller hung up
	OutcomeLost      = "lost"      // parkpage lost track (restart, lost events)
)

// Record is one park.
type Record struct {
	Lot    string    `json:"lot,omitempty"`
	Slot   string    `json:"slot"`
	Label  string    `json:"label,omitempty"`
	Caller string    `json:"caller,omitempty"`
	Parker string    `json:"parker,omitempty"`
	Source string    `json:"source,omitempty"` // local, blf, ami, webhook
	Parked time.Time `json:"parked"`
	// Ended is when the call left the slot; zero while parked.
	Ended     time.Time `json:"ended,omitzero"`
	Outcome   string    `json:"outcome,omitempty"`
	Retriever string    `json:"retriever,omitempty"` // who picked it up or answered
	RingBacks int       `json:"ring_backs,omitempty"`
	Fallbacks int       `json:"fallbacks,omitempty"`
	// Returns counts ring-backs and fallbacks nobody answered (the call
	// went back into its slot).
	Returns int `json:"returns,omitempty"`
}

// Open reports whether the call is still parked.
func (r *Record) Open() bool { return r.Ended.IsZero() }

// Wait is how long the call waited: until it left, or until now.
func (r *Record) Wait(now time.Time) time.Duration {
	if r.Open() {
		return now.Sub(r.Parked)
	}
	return r.Ended.Sub(r.Parked)
}

// event is a park event as stored: the fields of events.Event the
// history uses.
type event struct {
	Time      time.Time   `json:"t"`
	Type      events.Type `json:"type"`
	Lot       string      `json:"lot,omitempty"`
	Slot      string      `json:"slot"`
	Label     string      `json:"label,omitempty"`
	Caller    string      `json:"caller,omitempty"`
	Parker    string      `json:"parker,omitempty"`
	Retriever string      `json:"retriever,omitempty"`
	Target    string      `json:"target,omitempty"`
	Reason    string      `json:"reason,omitempty"`
	Source    string      `json:"source,omitempty"`
}

type line struct {
	Ev  *event  `json:"ev,omitempty"`
	Rec *Record `json:"rec,omitempty"`
}

// Options configure a Store.
type Options struct {
	Clock  clock.Clock // default the wall clock
	Logger *slog.Logger
}

// Store holds the park history.
type Store struct {
	path  string
	clock clock.Clock
	log   *slog.Logger

	mu      sync.Mutex
	records []*Record          // by park time, oldest first
	open    map[string]*Record // slot -> its park, while parked
	pending map[*Record][]event
	f       *os.File
	lines   int // lines in the file
	skipped int // lines that did not parse at load
}

// Open loads dir/park-history.jsonl (creating it) and compacts it. An
// empty dir keeps the history in memory only.
func Open(dir string, o Options) (*Store, error) {
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{clock: o.Clock, log: o.Logger, open: map[string]*Record{}, pending: map[*Record][]event{}}
	if dir == "" {
		return s, nil
	}
	s.path = filepath.Join(dir, FileName)
	data, err := os.ReadFile(s.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("park history: %w", err)
	}
	s.load(data)
	if s.skipped > 0 {
		s.log.Warn("park history: skipped lines that do not parse", "file", s.path, "lines", s.skipped)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.compactLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// load replays a history file's lines.
func (s *Store) load(data []byte) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc.Scan() {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(b, &l); err != nil || (l.Ev == nil) == (l.Rec == nil) {
			s.skipped++
			continue
		}
		if l.Rec != nil {
			if l.Rec.Slot == "" || l.Rec.Parked.IsZero() || l.Rec.Open() || l.Rec.Ended.Before(l.Rec.Parked) {
				s.skipped++
				continue
			}
			r := *l.Rec
			s.insertLocked(&r)
			continue
		}
		if l.Ev.Slot == "" || l.Ev.Time.IsZero() {
			s.skipped++
			continue
		}
		s.applyLocked(*l.Ev)
	}
}

// insertLocked adds a finished record in park-time order.
func (s *Store) insertLocked(r *Record) {
	i, _ := slices.BinarySearchFunc(s.records, r.Parked, func(x *Record, t time.Time) int {
		if x.Parked.After(t) {
			return 1
		}
		return -1
	})
	s.records = slices.Insert(s.records, i, r)
}

// Record adds a bus event to the history (other events are ignored).
func (s *Store) Record(e events.Event) {
	switch e.Type {
	case events.CallParked, events.CallRetrieved, events.CallRangBack, events.CallReturned, events.CallAbandoned:
	default:
		return
	}
	if e.Slot == "" {
		return
	}
	ev := event{Time: e.Time, Type: e.Type, Lot: e.Lot, Slot: e.Slot, Label: e.Label, Caller: e.Caller, Parker: e.Parker,
		Retriever: e.Retriever, Target: e.Target, Reason: e.Reason, Source: e.Source}
	if ev.Time.IsZero() {
		ev.Time = s.clock.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(ev)
	s.appendLocked(line{Ev: &ev})
	// Compact when the file holds twice what it needs.
	if s.lines > 1000 && s.lines > 2*(len(s.records)+4*len(s.open)) {
		if err := s.compactLocked(); err != nil {
			s.log.Error("park history: compact", "error", err)
		}
	}
}

// applyLocked folds one event into the records.
func (s *Store) applyLocked(e event) {
	r := s.open[e.Slot]
	switch e.Type {
	case events.CallParked:
		if r != nil && r.Caller == e.Caller && r.Parker == e.Parker && e.Reason != "attended transfer" {
			// The same call again (a restart that restored its park).
			return
		}
		if r != nil && e.Reason != "attended transfer" {
			// A park we never saw end (lost events, a restart).
			s.closeLocked(r, e.Time, OutcomeLost, "")
		}
		if r != nil {
			// An attended transfer completed onto the consultation leg:
			// the same park, now with the real caller.
			r.Caller, r.Parker, r.Label = e.Caller, e.Parker, e.Label
			s.pending[r] = append(s.pending[r], e)
			return
		}
		r = &Record{Lot: e.Lot, Slot: e.Slot, Label: e.Label, Caller: e.Caller, Parker: e.Parker, Source: e.Source, Parked: e.Time}
		s.open[e.Slot] = r
		s.insertLocked(r)
		s.pending[r] = []event{e}
		return
	}
	if r == nil {
		return // the park began before the history did
	}
	s.pending[r] = append(s.pending[r], e)
	switch e.Type {
	case events.CallRangBack:
		if e.Reason == "fallback" {
			r.Fallbacks++
		} else {
			r.RingBacks++
		}
	case events.CallReturned:
		r.Returns++
	case events.CallRetrieved:
		outcome := OutcomePickedUp
		switch e.Reason {
		case string(ringParker), "parker":
			outcome = OutcomeRingBack
		case "fallback":
			outcome = OutcomeFallback
		}
		s.closeLocked(r, e.Time, outcome, e.Retriever)
	case events.CallAbandoned:
		if e.Reason == reasonLost {
			s.closeLocked(r, e.Time, OutcomeLost, "")
			return
		}
		s.closeLocked(r, e.Time, OutcomeAbandoned, "")
	}
}

func (s *Store) closeLocked(r *Record, at time.Time, outcome, retriever string) {
	r.Ended, r.Outcome, r.Retriever = at, outcome, retriever
	if r.Ended.Before(r.Parked) {
		r.Ended = r.Parked
	}
	delete(s.open, r.Slot)
	delete(s.pending, r)
}

func (s *Store) appendLocked(l line) {
	if s.path == "" {
		return
	}
	if s.f == nil {
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			s.log.Error("park history: open", "error", err)
			return
		}
		s.f = f
	}
	b, _ := json.Marshal(l)
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		s.log.Error("park history: write", "error", err)
		return
	}
	s.lines++
}

// compactLocked drops parks older than Retention and rewrites the file:
// finished parks as records, open ones as their events.
func (s *Store) compactLocked() error {
	cutoff := s.clock.Now().Add(-Retention)
	s.records = slices.DeleteFunc(s.records, func(r *Record) bool { return !r.Open() && r.Ended.Before(cutoff) })
	if s.path == "" {
		return nil
	}
	data, n := s.encodeLocked()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	if err := atomicfile.Write(s.path, data, 0o640); err != nil {
		return fmt.Errorf("park history: %w", err)
	}
	s.lines = n
	return nil
}

// encodeLocked is the compacted file: finished parks as records, open
// ones as their events; n is its number of lines.
func (s *Store) encodeLocked() (data []byte, n int) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range s.records {
		if r.Open() {
			for _, e := range s.pending[r] {
				enc.Encode(line{Ev: &e})
				n++
			}
			continue
		}
		enc.Encode(line{Rec: r})
		n++
	}
	return b.Bytes(), n
}

// newMemory is a store without a file.
func newMemory(c clock.Clock) *Store {
	return &Store{clock: c, log: slog.New(slog.DiscardHandler), open: map[string]*Record{}, pending: map[*Record][]event{}}
}

// Reconcile ends, as lost, the local parks the history has open whose
// slot holds no call now (parkpage restarted without them).
func (s *Store) Reconcile(occupied func(slot string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for slot, r := range s.open {
		if (r.Source == "" || r.Source == "local") && !occupied(slot) {
			s.closeLocked(r, now, OutcomeLost, "")
			s.appendLocked(line{Ev: &event{Time: now, Type: events.CallAbandoned, Slot: slot, Reason: reasonLost}})
		}
	}
}

// Recent returns up to n parks, newest first (open ones included).
func (s *Store) Recent(n int) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for i := len(s.records) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, *s.records[i])
	}
	return out
}

// Since returns the parks that began at or after t, oldest first.
func (s *Store) Since(t time.Time) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, r := range s.records {
		if !r.Parked.Before(t) {
			out = append(out, *r)
		}
	}
	return out
}

// First is when the oldest park kept began (zero without any).
func (s *Store) First() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) == 0 {
		return time.Time{}
	}
	return s.records[0].Parked
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.clock.Now() }

// Skipped is the number of lines of the file that did not parse at load.
func (s *Store) Skipped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// Run records the bus's park events until ctx ends, compacting once a
// day, then closes the file.
func (s *Store) Run(ctx context.Context, bus *events.Bus) error {
	sub := bus.Subscribe(1024)
	defer sub.Close()
	day := time.NewTicker(24 * time.Hour)
	defer day.Stop()
	defer s.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-day.C:
			s.mu.Lock()
			if err := s.compactLocked(); err != nil {
				s.log.Error("park history: compact", "error", err)
			}
			s.mu.Unlock()
		case e, ok := <-sub.C():
			if !ok {
				return nil
			}
			if e.Type == events.Lost {
				s.log.Warn("park history: missed events; parks in progress may show as lost", "count", e.Count)
				continue
			}
			s.Record(e)
		}
	}
}

// Close closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		err := s.f.Close()
		s.f = nil
		return err
	}
	return nil
}

// Describe says a park's outcome in words: "Picked up by Alice (201)
// after 1:05".
func (r *Record) Describe(now time.Time) string {
	w := fmtWait(r.Wait(now))
	who := partyText(r.Retriever)
	switch r.Outcome {
	case OutcomePickedUp:
		if who == "" {
			return "Picked up after " + w
		}
		return "Picked up by " + who + " after " + w
	case OutcomeRingBack:
		return "Rang back, answered by " + orSomeone(who) + " after " + w
	case OutcomeFallback:
		return "Fell back, answered by " + orSomeone(who) + " after " + w
	case OutcomeAbandoned:
		return "Caller hung up after " + w
	case OutcomeLost:
		return "Not followed to the end"
	}
	if r.RingBacks+r.Fallbacks > 0 {
		return "Ringing back, waiting " + w
	}
	return "Parked, waiting " + w
}

func orSomeone(s string) string {
	if s == "" {
		return "someone"
	}
	return s
}

func fmtWait(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// partyText is a SIP identity as a person reads it: `"Alice" <sip:201@h>`
// -> "Alice (201)", `<sip:201@h>` -> "201".
func partyText(s string) string {
	name, num := SplitParty(s)
	switch {
	case name != "" && num != "":
		return name + " (" + num + ")"
	case name != "":
		return name
	}
	return num
}

// SplitParty returns the display name and the user part of a SIP identity.
func SplitParty(s string) (name, user string) {
	s = strings.TrimSpace(s)
	uri := s
	if i := strings.IndexByte(s, '<'); i >= 0 {
		name = strings.Trim(strings.TrimSpace(s[:i]), `"`)
		uri = s[i+1:]
		if j := strings.IndexByte(uri, '>'); j >= 0 {
			uri = uri[:j]
		}
	}
	low := strings.ToLower(uri)
	for _, p := range []string{"sips:", "sip:", "tel:"} {
		if strings.HasPrefix(low, p) {
			uri = uri[len(p):]
			if k := strings.IndexAny(uri, "@;?"); k >= 0 {
				uri = uri[:k]
			}
			return name, uri
		}
	}
	if name == "" {
		return uri, ""
	}
	return name, ""
}

// reasonLost marks the event Reconcile writes for a park that vanished.
const reasonLost = "parkpage restarted without this call"

// ringParker is park.RingParker, the reason of a retrieval by the parker
// answering its ring-back (history does not import park).
const ringParker = "ringback"
