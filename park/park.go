// Package park is the call-park logic of parkpage, with no sockets: lots
// and slots, slot allocation, labels, pickup permissions, privacy rules
// and the life of a parked call (parked → timeout → ring-back to the
// parker → fallback → back into its slot with a fresh timeout; a parked
// call is never dropped by the server). Time comes from an injected Clock;
// placing and cancelling ring-back calls is delegated to an injected
// Actions (the SIP wiring in park/sip), which reports the outcome back.
//
// Every transition is published on the event bus, and every slot change
// is handed to an Observer (the BLF notifier) in the order it happened.
// A Server is safe for concurrent use; of two retrievers racing for one
// slot exactly one wins.
package park

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
)

// Board states of a slot.
const (
	StateFree     = "free"
	StateParked   = "parked"
	StateRingback = "ringback"
)

// Party is a SIP identity.
type Party struct {
	Display string // display name, may be empty
	URI     string // "sip:1001@pbx.lan"
	User    string // user part of URI ("1001"), empty if none
}

// String is the identity as `"Display" <URI>`, or the URI alone.
func (p Party) String() string {
	switch {
	case p.URI == "":
		return p.Display
	case p.Display == "":
		return p.URI
	}
	return strconv.Quote(p.Display) + " <" + p.URI + ">"
}

// IsZero reports whether the party is unknown.
func (p Party) IsZero() bool { return p.URI == "" && p.User == "" }

// SlotState is one row of the park board (GET /api/v1/slots).
type SlotState struct {
	Slot   string    `json:"slot"`
	Lot    string    `json:"lot"`
	Label  string    `json:"label"`
	State  string    `json:"state"` // free, parked or ringback
	Caller string    `json:"caller,omitempty"`
	Parker string    `json:"parker,omitempty"`
	Since  time.Time `json:"since,omitzero"` // when the call was parked (or returned)
	// CallerName and CallerURI split Caller for BLF displays.
	CallerName string `json:"caller_name,omitempty"`
	CallerURI  string `json:"caller_uri,omitempty"`
	// Call identifies the parked call (0 when free).
	Call CallID `json:"-"`
	// Timeout is the slot's park timeout (ring-back after it).
	Timeout time.Duration `json:"-"`
	// Returned: the call came back into its slot after a ring-back,
	// fallback or pickup that did not connect.
	Returned bool `json:"-"`
	// RingTarget is who rings for the call while State is ringback.
	RingTarget string `json:"-"`
	// ParkedAt is when the caller was first parked (Since starts again
	// when the call returns to its slot): the caller's whole wait.
	ParkedAt time.Time `json:"-"`
}

// CallID identifies a parked call within one Server.
type CallID uint64

// RingKind says what a ring attempt is.
type RingKind string

// Ring kinds.
const (
	RingParker   RingKind = "ringback" // the parker's phone
	RingFallback RingKind = "fallback" // the lot's fallback destination
)

// Ring asks the SIP side to call someone for a parked call.
type Ring struct {
	Call    CallID
	Attempt uint64 // identifies this attempt in RingAnswered/RingFailed
	Kind    RingKind
	// Target is a user/number to reach via registration or the PBX route,
	// or (fallback only) a SIP URI from config.
	Target string
	Lot    string
	Slot   string
	Label  string
	Caller Party
	// Display names the slot for the phone that rings: "704 Sales".
	Display string
	// Timeout is how long to ring before giving up.
	Timeout time.Duration
}

// Actions is implemented by the SIP wiring. Calls are made without the
// Server's lock held and must not block for long.
type Actions interface {
	// Ring places a ring-back or fallback call. The outcome is reported
	// with RingAnswered or RingFailed.
	Ring(r Ring)
	// CancelRing abandons a ring attempt (retrieved meanwhile, caller hung
	// up, ring time over). A later answer to it is refused by RingAnswered.
	CancelRing(r Ring)
}

// Options are a Server's collaborators.
type Options struct {
	Clock   Clock       // default RealClock
	Bus     *events.Bus // may be nil
	Actions Actions     // may be nil (nothing is rung; the call returns to its slot)
	Logger  *slog.Logger
	// Observer is told of every slot change, in order, with the Server's
	// lock held: it must not block or call the Server.
	Observer func(SlotState)
	// Changed is told, without the lock, that what Resumable returns for a
	// call may have changed (parked, timer re-armed, ringing, gone): the
	// call journal writes it down.
	Changed func(CallID)
}

// Errors returned by Park, Retrieve and Replace; SIPStatus maps them.
var (
	ErrUnknownExt = errors.New("not a park extension or slot")
	ErrNoSlot     = errors.New("no park slots are free")
	ErrTaken      = errors.New("slot is taken")
	ErrPrivate    = errors.New("this call cannot be parked")
	ErrForbidden  = errors.New("not allowed to retrieve from this slot")
	ErrEmpty      = errors.New("no call parked in this slot")
	ErrBusy       = errors.New("call is being retrieved")
	ErrNoCall     = errors.New("no such parked call")
)

// SIPStatus is the response code for an error of this package.
func SIPStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnknownExt), errors.Is(err, ErrEmpty), errors.Is(err, ErrNoCall):
		return 404
	case errors.Is(err, ErrNoSlot), errors.Is(err, ErrTaken), errors.Is(err, ErrBusy):
		return 486
	case errors.Is(err, ErrPrivate), errors.Is(err, ErrForbidden):
		return 403
	case errors.Is(err, ErrDraining):
		return 480
	}
	return 500
}

// phase is a parked call's state.
type phase int

const (
	phParked  phase = iota // in its slot, timeout running
	phRinging              // ring-back or fallback ringing; still retrievable
	phTaking               // being connected to a retriever or answerer
	phGone                 // left the slot
)

// Call is a parked call. Its fields are read-only snapshots for callers.
type Call struct {
	ID     CallID
	Lot    string
	Slot   string
	Label  string
	Caller Party
	Parker Party
	Since  time.Time

	phase phase
	timer Timer
	gen   uint64 // invalidates stale timers
	ring  *Ring  // current ring attempt
	due   time.Time
	taker string // "pickup", "ringback", "fallback" while phTaking
	retr  Party
	// returned is set when the call came back into its slot.
	returned bool
	// parkedAt is when this caller was parked (kept across returns).
	parkedAt time.Time
}

type lot struct {
	name, ext string
	first     int
	last      int
	findSlot  string
	onTaken   string
	onEmpty   string
	fallback  string
	timeout   time.Duration
	ringTime  time.Duration
	pickup    []string
	label     string
	lastUsed  int
}

type slot struct {
	num     int
	name    string
	lot     *lot // nil: slot removed by a reload, kept while its call stays
	label   string
	timeout time.Duration
	pickup  []string
	call    *Call
}

// Server is the park logic.
type Server struct {
	clock   Clock
	bus     *events.Bus
	actions Actions
	log     *slog.Logger
	observe func(SlotState)
	changed func(CallID)

	mu      sync.Mutex
	lots    []*lot
	byExt   map[string]*lot
	slots   map[string]*slot
	calls   map[CallID]*Call
	groups  map[string][]string // user -> groups
	privacy privacyRules
	nextID  CallID
	attempt uint64
	acts    []func() // actions to run after unlocking
	drain   drainState
}

// New builds a Server from cfg.
func New(cfg *config.Config, o Options) (*Server, error) {
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{clock: o.Clock, bus: o.Bus, actions: o.Actions, log: o.Logger, observe: o.Observer, changed: o.Changed,
		slots: map[string]*slot{}, calls: map[CallID]*Call{}}
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload applies a new config. Parked calls stay: a call whose slot still
// exists keeps it under the new settings (its running timer is kept; the
// next one uses the new timeout); a call whose slot was removed stays on
// the board in that slot until it leaves, and the slot is never given out.
func (s *Server) Reload(cfg *config.Config) error {
	if cfg == nil || len(cfg.Park.Lots) == 0 {
		return errors.New("park: config has no lots")
	}
	lots := make([]*lot, 0, len(cfg.Park.Lots))
	byExt := map[string]*lot{}
	newSlots := map[string]*slot{}
	for _, cl := range cfg.Park.Lots {
		l := &lot{name: cl.Name, ext: cl.Extension, first: cl.Slots.First, last: cl.Slots.Last,
			findSlot: cl.FindSlot, onTaken: cl.OnTaken, onEmpty: cl.OnEmpty, fallback: cl.Fallback,
			timeout: cl.Timeout.D(), ringTime: cl.RingbackTime.D(), pickup: cl.Pickup, label: cl.Label,
			lastUsed: cl.Slots.First - 1}
		if l.name == "" {
			l.name = l.ext
		}
		if l.timeout <= 0 {
			return fmt.Errorf("park: lot %s: timeout must be more than zero", l.name)
		}
		if l.ringTime <= 0 {
			l.ringTime = 30 * time.Second
		}
		if l.last < l.first || l.first <= 0 {
			return fmt.Errorf("park: lot %s: no slots", l.name)
		}
		if _, dup := byExt[l.ext]; dup {
			return fmt.Errorf("park: extension %s used twice", l.ext)
		}
		byExt[l.ext] = l
		lots = append(lots, l)
		for n := l.first; n <= l.last; n++ {
			name := strconv.Itoa(n)
			if _, dup := newSlots[name]; dup {
				return fmt.Errorf("park: slot %s is in two lots", name)
			}
			sl := &slot{num: n, name: name, lot: l, label: l.label, timeout: l.timeout, pickup: l.pickup}
			if sc := cfg.Park.Slots[name]; sc != nil {
				if sc.Label != "" {
					sl.label = sc.Label
				}
				if sc.Timeout > 0 {
					sl.timeout = sc.Timeout.D()
				}
				if len(sc.Pickup) > 0 {
					sl.pickup = sc.Pickup
				}
			}
			newSlots[name] = sl
		}
	}
	groups := map[string][]string{}
	for u, uc := range cfg.SIP.Users {
		if uc != nil {
			groups[u] = uc.Groups
		}
	}
	priv := compilePrivacy(cfg.Park.Privacy)

	s.mu.Lock()
	defer s.unlock()
	// Keep round-robin positions of lots that survive.
	for _, l := range lots {
		if old := s.byExt[l.ext]; old != nil && old.lastUsed >= l.first-1 && old.lastUsed <= l.last {
			l.lastUsed = old.lastUsed
		}
	}
	for name, old := range s.slots {
		if old.call == nil {
			continue // a free slot simply follows the new config
		}
		if ns, ok := newSlots[name]; ok {
			ns.call = old.call
			ns.call.Lot, ns.call.Label = ns.lot.name, ns.label
		} else {
			old.lot = nil // orphan: kept until its call leaves
			newSlots[name] = old
		}
	}
	s.lots, s.byExt, s.slots, s.groups, s.privacy = lots, byExt, newSlots, groups, priv
	for _, sl := range s.sortedSlots() {
		s.notify(sl)
	}
	return nil
}

// unlock releases the lock and runs the actions queued under it.
func (s *Server) unlock() {
	acts := s.acts
	s.acts = nil
	s.mu.Unlock()
	for _, a := range acts {
		a()
	}
}

func (s *Server) sortedSlots() []*slot {
	out := make([]*slot, 0, len(s.slots))
	for _, sl := range s.slots {
		out = append(out, sl)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].num != out[j].num {
			return out[i].num < out[j].num
		}
		return out[i].name < out[j].name
	})
	return out
}

func (sl *slot) state() SlotState {
	st := SlotState{Slot: sl.name, Label: sl.label, State: StateFree, Timeout: sl.parkTimeout()}
	if sl.lot != nil {
		st.Lot = sl.lot.name
	}
	if c := sl.call; c != nil {
		st.State = StateParked
		if c.phase == phRinging {
			st.State = StateRingback
			if c.ring != nil {
				st.RingTarget = c.ring.Target
			}
		}
		st.Returned, st.ParkedAt = c.returned, c.parkedAt
		st.Caller, st.Parker, st.Since = c.Caller.String(), c.Parker.String(), c.Since
		st.CallerName, st.CallerURI, st.Call = c.Caller.Display, c.Caller.URI, c.ID
	}
	return st
}

// Slots returns the board: every slot in slot-number order.
func (s *Server) Slots() []SlotState {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.sortedSlots()
	out := make([]SlotState, len(sl))
	for i, x := range sl {
		out[i] = x.state()
	}
	return out
}

// Slot returns one slot's state.
func (s *Server) Slot(name string) (SlotState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.slots[name]
	if !ok {
		return SlotState{}, false
	}
	return sl.state(), true
}

// ExtKind says what a dialled extension is.
type ExtKind int

// Extension kinds.
const (
	ExtNone ExtKind = iota
	ExtLot          // a park extension (700)
	ExtSlot         // a slot (704)
)

// Extensions lists the park extensions and slots of the current config.
func (s *Server) Extensions() (lots, slots []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lots {
		lots = append(lots, l.ext)
	}
	for _, sl := range s.sortedSlots() {
		if sl.lot != nil {
			slots = append(slots, sl.name)
		}
	}
	return lots, slots
}

// Kind says whether ext is a park extension or a slot.
func (s *Server) Kind(ext string) ExtKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byExt[ext]; ok {
		return ExtLot
	}
	if sl, ok := s.slots[ext]; ok && sl.lot != nil {
		return ExtSlot
	}
	return ExtNone
}

// OnEmptyConsult reports whether a plain call to empty slot ext is answered
// as a consultation leg (else it is refused with 404).
func (s *Server) OnEmptyConsult(ext string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.slots[ext]
	return ok && sl.lot != nil && sl.lot.onEmpty == "consult"
}

// LotOf returns the lot name and label of a slot, for prompts.
func (s *Server) LotOf(slotName string) (lotName, label string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.slots[slotName]
	if !ok || sl.lot == nil {
		return "", "", false
	}
	return sl.lot.name, sl.label, true
}

func (s *Server) publish(e events.Event) {
	if s.bus != nil {
		e.Time = s.clock.Now()
		s.bus.Publish(e)
	}
}

func (s *Server) notify(sl *slot) {
	if s.observe != nil {
		s.observe(sl.state())
	}
}

func (c *Call) event(t events.Type) events.Event {
	return events.Event{Type: t, Lot: c.Lot, Slot: c.Slot, Label: c.Label, Caller: c.Caller.String(), Parker: c.Parker.String()}
}

func (c *Call) snapshot() *Call {
	cp := *c
	cp.timer, cp.ring = nil, nil
	return &cp
}

// ParkRequest is a call offered for parking.
type ParkRequest struct {
	Ext    string // dialled: a park extension or a slot
	Caller Party  // the parked party
	Parker Party  // who parked it (zero: unknown, the timeout goes to the fallback)
	Info   CallInfo
	Source string // for events: "local" by default
}

// Private reports why a call must not be parked, or "" if it may be.
func (s *Server) Private(ci CallInfo) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.privacy.check(ci)
}

// Park puts a call into a slot: the next free one for a park extension,
// the dialled one for a slot (or, with on_taken: next, the next free one
// after it). It returns the parked call.
func (s *Server) Park(r ParkRequest) (*Call, error) {
	s.mu.Lock()
	defer s.unlock()
	src := r.Source
	if src == "" {
		src = "local"
	}
	refuse := func(slotName string, err error) (*Call, error) {
		s.publish(events.Event{Type: events.CallRefused, Slot: slotName, Caller: r.Caller.String(), Parker: r.Parker.String(), Reason: err.Error(), Source: src})
		return nil, err
	}
	if s.drain.on {
		return refuse(r.Ext, ErrDraining)
	}
	if why := s.privacy.check(r.Info); why != "" {
		return refuse(r.Ext, fmt.Errorf("%w (%s)", ErrPrivate, why))
	}
	var sl *slot
	if l, ok := s.byExt[r.Ext]; ok {
		sl = s.findFree(l, l.findSlot, 0)
		if sl == nil {
			return refuse("", ErrNoSlot)
		}
	} else if d, ok := s.slots[r.Ext]; ok && d.lot != nil {
		sl = d
		if d.call != nil {
			if d.lot.onTaken != "next" {
				return refuse(d.name, ErrTaken)
			}
			sl = s.findFree(d.lot, "next", d.num)
			if sl == nil {
				return refuse(d.name, ErrNoSlot)
			}
		}
	} else {
		return refuse(r.Ext, ErrUnknownExt)
	}
	s.nextID++
	c := &Call{ID: s.nextID, Lot: sl.lot.name, Slot: sl.name, Label: sl.label, Caller: r.Caller, Parker: r.Parker, Since: s.clock.Now()}
	c.parkedAt = c.Since
	sl.call = c
	sl.lot.lastUsed = sl.num
	s.calls[c.ID] = c
	s.startTimeout(c, sl)
	e := c.event(events.CallParked)
	e.Source = src
	s.publish(e)
	s.notify(sl)
	return c.snapshot(), nil
}

// lateAnswer is how long after Park a call may be answered before its
// timeout starts again from the answer (see Answered).
const lateAnswer = 250 * time.Millisecond

// Answered tells the server that call id's caller was answered (its 200
// OK sent): the caller is parked from then. When that came late after
// Park (a park's journal write waits for the disk), the park timeout
// starts again from now, so a slow disk does not eat into the time the
// caller holds, as Asterisk counts parkingtime from the call's entry into
// the lot. A call already timed out, picked up or gone is left as it is.
func (s *Server) Answered(id CallID) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.phase != phParked || s.clock.Now().Sub(c.parkedAt) < lateAnswer {
		return
	}
	if sl := s.slotOf(c); sl != nil {
		s.startTimeout(c, sl)
	}
}

// findFree returns a free slot of l: "first" is the lowest, "next" the
// first after `after` (or after the lot's last used slot when after is 0),
// wrapping round.
func (s *Server) findFree(l *lot, mode string, after int) *slot {
	n := l.last - l.first + 1
	start := l.first
	if mode == "next" {
		if after == 0 {
			after = l.lastUsed
		}
		start = after + 1
	}
	for i := 0; i < n; i++ {
		num := l.first + ((start-l.first)+i)%n
		if num < l.first {
			num += n
		}
		if sl := s.slots[strconv.Itoa(num)]; sl != nil && sl.lot == l && sl.call == nil {
			return sl
		}
	}
	return nil
}

func (s *Server) slotOf(c *Call) *slot {
	if sl := s.slots[c.Slot]; sl != nil && sl.call == c {
		return sl
	}
	return nil
}

// startTimeout (re)arms the park timeout of c.
func (s *Server) startTimeout(c *Call, sl *slot) {
	s.stopTimer(c)
	d := s.drainTimeout(sl.parkTimeout())
	s.armTimeout(c, d)
}

// armTimeout makes c parked with its timeout d from now.
func (s *Server) armTimeout(c *Call, d time.Duration) {
	c.phase = phParked
	gen := c.gen
	id := c.ID
	c.due = s.clock.Now().Add(d)
	c.timer = s.clock.AfterFunc(d, func() { s.onTimeout(id, gen) })
	s.touch(id)
}

// touch queues the Changed hook for call id.
func (s *Server) touch(id CallID) {
	if s.changed != nil {
		s.acts = append(s.acts, func() { s.changed(id) })
	}
}

func (s *Server) stopTimer(c *Call) {
	c.gen++
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

func (s *Server) onTimeout(id CallID, gen uint64) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.gen != gen || c.phase != phParked {
		return
	}
	sl := s.slotOf(c)
	if sl == nil {
		return
	}
	te := c.event(events.CallTimedOut)
	if s.drain.on {
		te.Reason = "draining"
	}
	s.publish(te)
	if c.Parker.User != "" {
		s.startRing(c, sl, RingParker, c.Parker.User)
		return
	}
	// Ring-backs go only to a user (a registered phone or one through the
	// PBX route), never to a host named in a header: say why none is made.
	why := "parker unknown"
	if c.Parker.URI != "" {
		why = fmt.Sprintf("parker %s has no user part to ring back", c.Parker.URI)
	}
	next := "fallback"
	if sl.lot == nil || sl.lot.fallback == "" {
		next = "stays parked (no fallback configured)"
	}
	s.log.Warn("park: no ring-back possible on timeout", "slot", sl.name, "caller", c.Caller.String(), "reason", why, "next", next)
	s.fallbackOrReturn(c, sl, why)
}

// fallbackOrReturn rings the lot's fallback, or puts the call back.
func (s *Server) fallbackOrReturn(c *Call, sl *slot, why string) {
	if sl.lot != nil && sl.lot.fallback != "" {
		s.startRing(c, sl, RingFallback, sl.lot.fallback)
		return
	}
	s.returnToSlot(c, sl, why+"; no fallback configured")
}

func (s *Server) returnToSlot(c *Call, sl *slot, why string) {
	c.ring = nil
	c.returned = true
	c.Since = s.clock.Now()
	s.startTimeout(c, sl)
	e := c.event(events.CallReturned)
	e.Reason = why
	s.publish(e)
	s.notify(sl)
}

func (s *Server) startRing(c *Call, sl *slot, kind RingKind, target string) {
	s.stopTimer(c)
	s.attempt++
	ringTime := 30 * time.Second
	lotName := ""
	if sl.lot != nil {
		ringTime, lotName = sl.lot.ringTime, sl.lot.name
	}
	display := sl.name
	if sl.label != "" {
		display += " " + sl.label
	}
	r := Ring{Call: c.ID, Attempt: s.attempt, Kind: kind, Target: target, Lot: lotName, Slot: sl.name,
		Label: sl.label, Caller: c.Caller, Display: display, Timeout: ringTime}
	c.phase, c.ring = phRinging, &r
	gen, id, att := c.gen, c.ID, r.Attempt
	c.due = s.clock.Now().Add(ringTime)
	c.timer = s.clock.AfterFunc(ringTime, func() { s.onRingTimeout(id, gen, att) })
	s.touch(id)
	e := c.event(events.CallRangBack)
	e.Target, e.Reason = target, string(kind)
	s.publish(e)
	s.notify(sl)
	if s.actions != nil {
		s.acts = append(s.acts, func() { s.actions.Ring(r) })
	} else {
		// Nobody can place the call: fail it straight away.
		s.acts = append(s.acts, func() { s.RingFailed(id, att, "no SIP side") })
	}
}

func (s *Server) cancelRing(c *Call) {
	if c.ring == nil {
		return
	}
	r := *c.ring
	c.ring = nil
	if s.actions != nil {
		s.acts = append(s.acts, func() { s.actions.CancelRing(r) })
	}
}

func (s *Server) onRingTimeout(id CallID, gen uint64, att uint64) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.gen != gen || c.phase != phRinging || c.ring == nil || c.ring.Attempt != att {
		return
	}
	kind := c.ring.Kind
	s.cancelRing(c)
	s.ringFailedLocked(c, kind, "no answer")
}

// RingFailed reports that a ring attempt ended without an answer (busy,
// declined, unreachable). Stale attempts are ignored.
func (s *Server) RingFailed(id CallID, attempt uint64, reason string) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.phase != phRinging || c.ring == nil || c.ring.Attempt != attempt {
		return
	}
	kind := c.ring.Kind
	c.ring = nil
	s.ringFailedLocked(c, kind, reason)
}

func (s *Server) ringFailedLocked(c *Call, kind RingKind, reason string) {
	sl := s.slotOf(c)
	if sl == nil {
		return
	}
	s.stopTimer(c)
	if kind == RingParker {
		s.fallbackOrReturn(c, sl, "ring-back "+reason)
		return
	}
	s.returnToSlot(c, sl, string(kind)+" "+reason) // fallback, or a ring from the desk
}

// RingAnswered reports that a ring attempt was answered. It returns the
// call and true if the answerer gets it; false means the attempt is stale
// (cancelled, or the call was retrieved or hung up) and the answered leg
// must be released. On true the call is being connected: finish with
// Retrieved, or Unretrieve if the connection fails.
func (s *Server) RingAnswered(id CallID, attempt uint64, answerer Party) (*Call, bool) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.phase != phRinging || c.ring == nil || c.ring.Attempt != attempt {
		return nil, false
	}
	kind := c.ring.Kind
	c.ring = nil
	s.stopTimer(c)
	c.phase, c.taker, c.retr = phTaking, string(kind), answerer
	if sl := s.slotOf(c); sl != nil {
		s.notify(sl)
	}
	return c.snapshot(), true
}

// MayRetrieve reports whether user may pick up from slot.
func (s *Server) MayRetrieve(slotName, user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.slots[slotName]
	return ok && allowedPickup(sl.pickup, user, s.groups)
}

// Retrieve claims the call in a slot for retriever. Of several racing
// retrievers exactly one gets the call; the others get ErrBusy, or ErrEmpty
// once the slot is free. A ring-back in progress is cancelled. Finish with
// Retrieved, or Unretrieve if connecting fails.
func (s *Server) Retrieve(slotName string, retriever Party) (*Call, error) {
	s.mu.Lock()
	defer s.unlock()
	refuse := func(c *Call, err error) (*Call, error) {
		e := events.Event{Type: events.CallRefused, Slot: slotName, Retriever: retriever.String(), Reason: err.Error()}
		if c != nil {
			e.Lot, e.Label, e.Caller, e.Parker = c.Lot, c.Label, c.Caller.String(), c.Parker.String()
		}
		s.publish(e)
		return nil, err
	}
	sl, ok := s.slots[slotName]
	if !ok {
		return refuse(nil, ErrUnknownExt)
	}
	if !allowedPickup(sl.pickup, retriever.User, s.groups) {
		return refuse(sl.call, ErrForbidden)
	}
	c := sl.call
	if c == nil {
		return refuse(nil, ErrEmpty)
	}
	if c.phase == phTaking {
		return refuse(c, ErrBusy)
	}
	s.cancelRing(c)
	s.stopTimer(c)
	c.phase, c.taker, c.retr = phTaking, "pickup", retriever
	s.notify(sl)
	return c.snapshot(), nil
}

// Retrieved completes a Retrieve or an answered ring: the call has left
// its slot.
func (s *Server) Retrieved(id CallID) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.phase != phTaking {
		return
	}
	e := c.event(events.CallRetrieved)
	e.Retriever, e.Reason = c.retr.String(), c.taker
	s.leave(c)
	s.publish(e)
}

// Unretrieve puts a call whose connection failed back into its slot with a
// fresh timeout.
func (s *Server) Unretrieve(id CallID, reason string) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.phase != phTaking {
		return
	}
	sl := s.slotOf(c)
	if sl == nil {
		return
	}
	s.returnToSlot(c, sl, reason)
}

// Hangup removes a call whose caller hung up (or whose media died).
func (s *Server) Hangup(id CallID, reason string) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.phase == phGone {
		return
	}
	s.cancelRing(c)
	e := c.event(events.CallAbandoned)
	e.Reason = reason
	s.leave(c)
	s.publish(e)
}

// leave frees c's slot.
func (s *Server) leave(c *Call) {
	s.stopTimer(c)
	c.phase = phGone
	delete(s.calls, c.ID)
	s.drainCheck()
	s.touch(c.ID)
	sl := s.slotOf(c)
	if sl == nil {
		return
	}
	sl.call = nil
	if sl.lot == nil {
		delete(s.slots, sl.name) // removed by a reload; gone with its call
		s.notify(&slot{name: sl.name, num: sl.num, label: sl.label})
		return
	}
	s.notify(sl)
}

// Replace is an attended transfer completed onto a parked call: newCaller
// (who sent the INVITE with Replaces) takes the slot of call id, whose
// caller (the one who dialled the park extension) becomes the parker. The
// timeout restarts.
func (s *Server) Replace(id CallID, newCaller Party, info CallInfo) (*Call, error) {
	s.mu.Lock()
	defer s.unlock()
	c := s.calls[id]
	if c == nil || c.phase == phGone {
		return nil, ErrNoCall
	}
	if why := s.privacy.check(info); why != "" {
		s.publish(events.Event{Type: events.CallRefused, Lot: c.Lot, Slot: c.Slot, Label: c.Label, Caller: newCaller.String(), Parker: c.Caller.String(), Reason: fmt.Sprintf("%v (%s)", ErrPrivate, why)})
		return nil, fmt.Errorf("%w (%s)", ErrPrivate, why)
	}
	sl := s.slotOf(c)
	if sl == nil {
		return nil, ErrNoCall
	}
	if c.phase == phTaking {
		return nil, ErrBusy
	}
	s.cancelRing(c)
	c.Parker, c.Caller = c.Caller, newCaller
	c.Since = s.clock.Now()
	c.parkedAt, c.returned = c.Since, false
	s.startTimeout(c, sl)
	e := c.event(events.CallParked)
	e.Source, e.Reason = "local", "attended transfer"
	s.publish(e)
	s.notify(sl)
	return c.snapshot(), nil
}

// Call returns a snapshot of a parked call.
func (s *Server) Call(id CallID) (*Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[id]
	if c == nil {
		return nil, false
	}
	return c.snapshot(), true
}
