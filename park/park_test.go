package park

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
)

func parseCfg(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

const baseCfg = `
state_dir: /tmp
sip:
  users:
    "1001": {password: a, groups: [reception]}
    "1002": {password: b}
    "1003": {password: c, groups: [managers]}
park:
  lots:
    - extension: "700"
      slots: 701-704
      find_slot: next
      timeout: 90s
      ringback_time: 30s
      fallback: "sip:operator@pbx.lan"
      label: Generic
    - extension: "800"
      slots: 801-803
      find_slot: first
      on_taken: next
      timeout: 60s
      pickup: ["@managers", "1002"]
  slots:
    "702": {label: Sales, timeout: 45s}
    "703": {pickup: ["1001"]}
`

// recorder implements Actions and Observer.
type recorder struct {
	mu       sync.Mutex
	rings    []Ring
	cancels  []Ring
	observed []SlotState
}

func (r *recorder) Ring(x Ring)       { r.mu.Lock(); r.rings = append(r.rings, x); r.mu.Unlock() }
func (r *recorder) CancelRing(x Ring) { r.mu.Lock(); r.cancels = append(r.cancels, x); r.mu.Unlock() }
func (r *recorder) observe(s SlotState) {
	r.mu.Lock()
	r.observed = append(r.observed, s)
	r.mu.Unlock()
}
func (r *recorder) lastRing(t *testing.T) Ring {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rings) == 0 {
		t.Fatal("no ring placed")
	}
	return r.rings[len(r.rings)-1]
}
func (r *recorder) ringCount() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.rings) }

type harness struct {
	s     *Server
	clock *clocktest.Clock
	rec   *recorder
	sub   *events.Subscription
}

func newHarness(t *testing.T, yaml string) *harness {
	t.Helper()
	bus := events.New()
	sub := bus.Subscribe(1000)
	rec := &recorder{}
	clock := clocktest.New(time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC))
	s, err := New(parseCfg(t, yaml), Options{Clock: clock, Bus: bus, Actions: rec, Observer: rec.observe})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{s: s, clock: clock, rec: rec, sub: sub}
}

// events drains the types published so far.
func (h *harness) events() []events.Event {
	var out []events.Event
	for {
		select {
		case e := <-h.sub.C():
			out = append(out, e)
		default:
			return out
		}
	}
}

func types(es []events.Event) string {
	var s []string
	for _, e := range es {
		s = append(s, string(e.Type))
	}
	return strings.Join(s, ",")
}

func party(user string) Party { return Party{URI: "sip:" + user + "@pbx.lan", User: user} }

func (h *harness) park(t *testing.T, ext string, parker string) *Call {
	t.Helper()
	p := Party{}
	if parker != "" {
		p = party(parker)
	}
	c, err := h.s.Park(ParkRequest{Ext: ext, Caller: Party{Display: "ACME", URI: "sip:+15551234567@pbx.lan", User: "+15551234567"}, Parker: p})
	if err != nil {
		t.Fatalf("park to %s: %v", ext, err)
	}
	return c
}

func TestAllocation(t *testing.T) {
	h := newHarness(t, baseCfg)
	// Lot 700 is "next": round-robin after the last used slot.
	var got []string
	for i := 0; i < 4; i++ {
		got = append(got, h.park(t, "700", "1001").Slot)
	}
	if strings.Join(got, " ") != "701 702 703 704" {
		t.Fatalf("next allocation %v", got)
	}
	if _, err := h.s.Park(ParkRequest{Ext: "700"}); !errors.Is(err, ErrNoSlot) || SIPStatus(err) != 486 {
		t.Fatalf("full lot: %v", err)
	}
	// Free 702; "next" continues after 704 and wraps to 702.
	st, _ := h.s.Slot("702")
	h.s.Hangup(st.Call, "test")
	if c := h.park(t, "700", ""); c.Slot != "702" {
		t.Fatalf("wrapped to %s, want 702", c.Slot)
	}
	// Directed park to a taken slot with on_taken refuse.
	if _, err := h.s.Park(ParkRequest{Ext: "703"}); !errors.Is(err, ErrTaken) || SIPStatus(err) != 486 {
		t.Fatalf("taken slot: %v", err)
	}
	// Lot 800 is "first" with on_taken next.
	if c := h.park(t, "802", ""); c.Slot != "802" {
		t.Fatalf("directed %s", c.Slot)
	}
	if c := h.park(t, "800", ""); c.Slot != "801" {
		t.Fatalf("first free %s, want 801", c.Slot)
	}
	if c := h.park(t, "802", ""); c.Slot != "803" {
		t.Fatalf("on_taken next gave %s, want 803", c.Slot)
	}
	if _, err := h.s.Park(ParkRequest{Ext: "801"}); !errors.Is(err, ErrNoSlot) {
		t.Fatalf("on_taken next with a full lot: %v", err)
	}
	if _, err := h.s.Park(ParkRequest{Ext: "999"}); !errors.Is(err, ErrUnknownExt) || SIPStatus(err) != 404 {
		t.Fatalf("unknown ext: %v", err)
	}
	// Labels: slot override, lot default.
	if st, _ := h.s.Slot("702"); st.Label != "Sales" {
		t.Errorf("702 label %q", st.Label)
	}
	if st, _ := h.s.Slot("701"); st.Label != "Generic" || st.Lot != "700" || st.State != StateParked {
		t.Errorf("701 state %+v", st)
	}
	board := h.s.Slots()
	if len(board) != 7 || board[0].Slot != "701" || board[6].Slot != "803" {
		t.Fatalf("board %+v", board)
	}
	if board[0].Caller != `"ACME" <sip:+15551234567@pbx.lan>` || board[0].Parker != "sip:1001@pbx.lan" || board[0].Since.IsZero() {
		t.Errorf("board row %+v", board[0])
	}
	if k := h.s.Kind("700"); k != ExtLot {
		t.Errorf("kind 700 = %v", k)
	}
	if k := h.s.Kind("704"); k != ExtSlot {
		t.Errorf("kind 704 = %v", k)
	}
	if k := h.s.Kind("705"); k != ExtNone {
		t.Errorf("kind 705 = %v", k)
	}
}

func TestPickupPermissions(t *testing.T) {
	h := newHarness(t, baseCfg)
	cases := []struct {
		slot, user string
		ok         bool
	}{
		{"701", "1002", true},  // lot default: everyone
		{"701", "", true},      // even unknown
		{"703", "1001", true},  // slot list
		{"703", "1002", false}, // not on it
		{"703", "", false},
		{"801", "1003", true}, // @managers
		{"801", "1002", true}, // named
		{"801", "1001", false},
		{"801", "9999", false},
	}
	for _, c := range cases {
		if got := h.s.MayRetrieve(c.slot, c.user); got != c.ok {
			t.Errorf("MayRetrieve(%s, %q) = %v", c.slot, c.user, got)
		}
	}
	h.park(t, "703", "1001")
	if _, err := h.s.Retrieve("703", party("1002")); !errors.Is(err, ErrForbidden) || SIPStatus(err) != 403 {
		t.Fatalf("forbidden retrieve: %v", err)
	}
	if st, _ := h.s.Slot("703"); st.State != StateParked {
		t.Fatalf("refused pickup changed the slot: %+v", st)
	}
	c, err := h.s.Retrieve("703", party("1001"))
	if err != nil {
		t.Fatal(err)
	}
	h.s.Retrieved(c.ID)
	if st, _ := h.s.Slot("703"); st.State != StateFree {
		t.Fatalf("slot after retrieval %+v", st)
	}
	if _, err := h.s.Retrieve("703", party("1001")); !errors.Is(err, ErrEmpty) || SIPStatus(err) != 404 {
		t.Fatalf("empty slot: %v", err)
	}
	es := h.events()
	if types(es) != "call.parked,call.refused,call.retrieved,call.refused" {
		t.Fatalf("events %s", types(es))
	}
	if es[2].Retriever != "sip:1001@pbx.lan" || es[2].Reason != "pickup" || es[2].Slot != "703" {
		t.Errorf("retrieved event %+v", es[2])
	}
}

func TestPrivacyRules(t *testing.T) {
	h := newHarness(t, baseCfg+`
  privacy:
    headers: ["X-Secret", "X-Class=confidential"]
    calling: ["+1555XXXXXX9", "911", "0044."]
    called: ["8."]
    sources: [10.9.0.0/16]
`)
	hdr := func(kv ...string) func(string) []string {
		return func(name string) []string {
			var out []string
			for i := 0; i+1 < len(kv); i += 2 {
				if strings.EqualFold(kv[i], name) {
					out = append(out, kv[i+1])
				}
			}
			return out
		}
	}
	cases := []struct {
		name string
		ci   CallInfo
		want bool
	}{
		{"plain", CallInfo{Calling: "+15551234567", Called: "700"}, false},
		{"privacy id", CallInfo{Header: hdr("Privacy", "id")}, true},
		{"privacy header;user", CallInfo{Header: hdr("Privacy", "user; header")}, true},
		{"privacy none", CallInfo{Header: hdr("Privacy", "none")}, false},
		{"configured header", CallInfo{Header: hdr("x-secret", "1")}, true},
		{"header value", CallInfo{Header: hdr("X-Class", "Confidential")}, true},
		{"header other value", CallInfo{Header: hdr("X-Class", "public")}, false},
		{"calling X pattern", CallInfo{Calling: "+15551234569"}, true},
		{"calling X no match", CallInfo{Calling: "+15551234568"}, false},
		{"calling exact", CallInfo{Calling: "911"}, true},
		{"calling exact longer", CallInfo{Calling: "9111"}, false},
		{"calling dot", CallInfo{Calling: "00441234"}, true},
		{"calling dot empty rest", CallInfo{Calling: "0044"}, true},
		{"called dot", CallInfo{Called: "8123"}, true},
		{"source", CallInfo{Source: netip.MustParseAddr("10.9.1.2")}, true},
		{"source v4-mapped", CallInfo{Source: netip.MustParseAddr("::ffff:10.9.1.2")}, true},
		{"other source", CallInfo{Source: netip.MustParseAddr("10.8.1.2")}, false},
	}
	for _, c := range cases {
		if got := h.s.Private(c.ci) != ""; got != c.want {
			t.Errorf("%s: private=%v, want %v", c.name, got, c.want)
		}
	}
	_, err := h.s.Park(ParkRequest{Ext: "700", Info: CallInfo{Header: hdr("Privacy", "id")}})
	if !errors.Is(err, ErrPrivate) || SIPStatus(err) != 403 {
		t.Fatalf("private park: %v", err)
	}
	if st, _ := h.s.Slot("701"); st.State != StateFree {
		t.Fatalf("private call was parked")
	}
	// privacy_header: false turns the Privacy header rule off.
	h2 := newHarness(t, baseCfg+"\n  privacy:\n    privacy_header: false\n")
	if h2.s.Private(CallInfo{Header: hdr("Privacy", "id")}) != "" {
		t.Errorf("privacy_header false still refuses")
	}
}

func TestMatchNumber(t *testing.T) {
	for _, c := range []struct {
		p, n string
		ok   bool
	}{
		{"911", "911", true}, {"911", "91", false}, {"9X1", "951", true}, {"9X1", "9a1", false},
		{"9.", "9", true}, {"9.", "95551212", true}, {"9.", "8", false}, {".", "", true}, {"", "", true},
		{"+1555XXXXXXX", "+15551234567", true}, {"+1555XXXXXXX", "15551234567", false}, {"*7X", "*71", true},
	} {
		if got := MatchNumber(c.p, c.n); got != c.ok {
			t.Errorf("MatchNumber(%q, %q) = %v", c.p, c.n, got)
		}
	}
}

func TestTimeoutRingbackFallbackReturn(t *testing.T) {
	h := newHarness(t, baseCfg)
	c := h.park(t, "700", "1001")
	h.events()
	h.clock.Advance(89 * time.Second)
	if h.rec.ringCount() != 0 {
		t.Fatal("rang before the timeout")
	}
	h.clock.Advance(time.Second)
	r := h.rec.lastRing(t)
	if r.Kind != RingParker || r.Target != "1001" || r.Slot != "701" || r.Display != "701 Generic" || r.Timeout != 30*time.Second {
		t.Fatalf("ring-back %+v", r)
	}
	if st, _ := h.s.Slot("701"); st.State != StateRingback {
		t.Fatalf("state during ring-back %+v", st)
	}
	// Unanswered for the ring-back time: cancelled, fallback rung.
	h.clock.Advance(30 * time.Second)
	if len(h.rec.cancels) != 1 || h.rec.cancels[0].Attempt != r.Attempt {
		t.Fatalf("ring-back not cancelled: %+v", h.rec.cancels)
	}
	fb := h.rec.lastRing(t)
	if fb.Kind != RingFallback || fb.Target != "sip:operator@pbx.lan" || fb.Attempt == r.Attempt {
		t.Fatalf("fallback %+v", fb)
	}
	// A late answer to the cancelled ring-back is refused.
	if _, ok := h.s.RingAnswered(c.ID, r.Attempt, party("1001")); ok {
		t.Fatal("stale ring-back answer accepted")
	}
	// Fallback busy: back into the slot with a fresh timeout.
	h.s.RingFailed(c.ID, fb.Attempt, "486 Busy Here")
	st, _ := h.s.Slot("701")
	if st.State != StateParked || !st.Since.Equal(h.clock.Now()) {
		t.Fatalf("after fallback failure %+v", st)
	}
	if got := types(h.events()); got != "call.timed_out,call.rang_back,call.rang_back,call.returned" {
		t.Fatalf("events %s", got)
	}
	// The cycle repeats: never dropped.
	h.clock.Advance(90 * time.Second)
	r2 := h.rec.lastRing(t)
	if r2.Kind != RingParker {
		t.Fatalf("second cycle %+v", r2)
	}
	h.s.RingFailed(c.ID, r2.Attempt, "480")
	fb2 := h.rec.lastRing(t)
	if fb2.Kind != RingFallback {
		t.Fatalf("second fallback %+v", fb2)
	}
	// Fallback answered: the call is handed over.
	got, ok := h.s.RingAnswered(c.ID, fb2.Attempt, Party{URI: "sip:operator@pbx.lan", User: "operator"})
	if !ok || got.ID != c.ID {
		t.Fatal("fallback answer refused")
	}
	if _, err := h.s.Retrieve("701", party("1002")); !errors.Is(err, ErrBusy) {
		t.Fatalf("retrieve while being handed over: %v", err)
	}
	h.s.Retrieved(c.ID)
	if st, _ := h.s.Slot("701"); st.State != StateFree {
		t.Fatalf("slot after hand-over %+v", st)
	}
	es := h.events()
	last := es[len(es)-1]
	if last.Type != events.CallRetrieved || last.Reason != "fallback" || last.Retriever != "sip:operator@pbx.lan" {
		t.Fatalf("last event %+v", last)
	}
	if h.clock.Pending() != 0 {
		t.Fatalf("%d timers left", h.clock.Pending())
	}
}

func TestPerSlotTimeoutAndUnknownParker(t *testing.T) {
	h := newHarness(t, baseCfg)
	h.park(t, "702", "") // 702 has a 45 s timeout, parker unknown
	h.clock.Advance(45 * time.Second)
	r := h.rec.lastRing(t)
	if r.Kind != RingFallback || r.Display != "702 Sales" {
		t.Fatalf("unknown parker should go to fallback: %+v", r)
	}
	// Lot 800 has no fallback: unknown parker and timeout → straight back.
	c := h.park(t, "801", "")
	h.events()
	h.clock.Advance(60 * time.Second)
	var es []events.Event
	for _, e := range h.events() {
		if e.Slot == "801" {
			es = append(es, e)
		}
	}
	if types(es) != "call.timed_out,call.returned" {
		t.Fatalf("events %s", types(es))
	}
	if st, _ := h.s.Slot("801"); st.State != StateParked || st.Call != c.ID {
		t.Fatalf("801 %+v", st)
	}
}

func TestRetrieveDuringRingbackCancelsIt(t *testing.T) {
	h := newHarness(t, baseCfg)
	c := h.park(t, "704", "1001")
	h.clock.Advance(90 * time.Second)
	r := h.rec.lastRing(t)
	got, err := h.s.Retrieve("704", party("1002"))
	if err != nil || got.ID != c.ID {
		t.Fatalf("retrieve during ring-back: %v", err)
	}
	if len(h.rec.cancels) != 1 || h.rec.cancels[0].Attempt != r.Attempt {
		t.Fatalf("ring-back not cancelled")
	}
	if _, ok := h.s.RingAnswered(c.ID, r.Attempt, party("1001")); ok {
		t.Fatal("ring-back answered after a pickup won")
	}
	// The pickup fails (retriever never ACKed): back into the slot.
	h.s.Unretrieve(c.ID, "retriever gone")
	if st, _ := h.s.Slot("704"); st.State != StateParked {
		t.Fatalf("after unretrieve %+v", st)
	}
	h.clock.Advance(90 * time.Second)
	if h.rec.lastRing(t).Kind != RingParker {
		t.Fatal("no new ring-back after unretrieve")
	}
}

func TestHangupDuringRingback(t *testing.T) {
	h := newHarness(t, baseCfg)
	c := h.park(t, "701", "1001")
	h.clock.Advance(90 * time.Second)
	r := h.rec.lastRing(t)
	h.s.Hangup(c.ID, "caller hung up")
	if len(h.rec.cancels) != 1 || h.rec.cancels[0].Attempt != r.Attempt {
		t.Fatal("ring not cancelled on hang-up")
	}
	if st, _ := h.s.Slot("701"); st.State != StateFree {
		t.Fatalf("slot %+v", st)
	}
	es := h.events()
	if last := es[len(es)-1]; last.Type != events.CallAbandoned || last.Reason != "caller hung up" {
		t.Fatalf("last event %+v", last)
	}
	h.clock.Advance(time.Hour)
	if h.rec.ringCount() != 1 {
		t.Fatal("rang after hang-up")
	}
}

func TestRetrieversRace(t *testing.T) {
	h := newHarness(t, baseCfg)
	for round := 0; round < 20; round++ {
		c := h.park(t, "701", "1001")
		var wins, busy, empty atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got, err := h.s.Retrieve("701", party("1002"))
				switch {
				case err == nil:
					wins.Add(1)
					h.s.Retrieved(got.ID)
				case errors.Is(err, ErrBusy):
					busy.Add(1)
				case errors.Is(err, ErrEmpty):
					empty.Add(1)
				default:
					t.Errorf("retrieve: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || busy.Load()+empty.Load() != 15 {
			t.Fatalf("round %d: %d winners, %d busy, %d empty", round, wins.Load(), busy.Load(), empty.Load())
		}
		if _, ok := h.s.Call(c.ID); ok {
			t.Fatal("retrieved call still listed")
		}
	}
}

func TestAttendedReplace(t *testing.T) {
	h := newHarness(t, baseCfg)
	// The parker (1001) dials 700: their own leg is parked, slot spoken.
	consult, err := h.s.Park(ParkRequest{Ext: "700", Caller: party("1001")})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(20 * time.Second)
	c, err := h.s.Replace(consult.ID, Party{Display: "ACME", URI: "sip:+1555@pbx.lan", User: "+1555"}, CallInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Slot != consult.Slot || c.Parker.User != "1001" || c.Caller.User != "+1555" {
		t.Fatalf("replaced call %+v", c)
	}
	// The timeout restarted at the replace.
	h.clock.Advance(89 * time.Second)
	if h.rec.ringCount() != 0 {
		t.Fatal("timeout not restarted")
	}
	h.clock.Advance(time.Second)
	if r := h.rec.lastRing(t); r.Target != "1001" {
		t.Fatalf("ring-back to %q", r.Target)
	}
	// A private caller cannot replace.
	consult2, _ := h.s.Park(ParkRequest{Ext: "700", Caller: party("1002")})
	_, err = h.s.Replace(consult2.ID, party("x"), CallInfo{Header: func(n string) []string {
		if n == "Privacy" {
			return []string{"id"}
		}
		return nil
	}})
	if !errors.Is(err, ErrPrivate) {
		t.Fatalf("private replace: %v", err)
	}
}

func TestReloadKeepsParkedCalls(t *testing.T) {
	h := newHarness(t, baseCfg)
	c1 := h.park(t, "702", "1001")
	c2 := h.park(t, "704", "1001")
	// New config: lot 700 shrinks to 701-703 with a new label and timeout.
	err := h.s.Reload(parseCfg(t, `
state_dir: /tmp
park:
  lots:
    - extension: "700"
      slots: 701-703
      timeout: 30s
      label: New
`))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := h.s.Slot("702")
	if st.Call != c1.ID || st.Label != "New" {
		t.Fatalf("702 after reload %+v", st)
	}
	st, ok := h.s.Slot("704")
	if !ok || st.Call != c2.ID || st.State != StateParked {
		t.Fatalf("orphaned 704 lost: %+v %v", st, ok)
	}
	if h.s.Kind("704") != ExtNone {
		t.Fatal("removed slot still dialable")
	}
	if _, err := h.s.Park(ParkRequest{Ext: "704"}); !errors.Is(err, ErrUnknownExt) {
		t.Fatalf("park into removed slot: %v", err)
	}
	// The running timers still fire (old 45 s / 90 s values).
	h.clock.Advance(90 * time.Second)
	if h.rec.ringCount() != 2 {
		t.Fatalf("%d rings after reload, want 2", h.rec.ringCount())
	}
	// The orphan leaves the board when its call goes.
	h.s.Hangup(c2.ID, "bye")
	if _, ok := h.s.Slot("704"); ok {
		t.Fatal("removed slot still on the board after its call left")
	}
	if n := len(h.s.Slots()); n != 3 { // lot 800 is gone too
		t.Fatalf("board has %d slots", n)
	}
}

func TestObserverOrder(t *testing.T) {
	h := newHarness(t, baseCfg)
	h.rec.mu.Lock()
	h.rec.observed = nil
	h.rec.mu.Unlock()
	c := h.park(t, "701", "1001")
	h.clock.Advance(90 * time.Second)
	got, _ := h.s.Retrieve("701", party("1002"))
	h.s.Retrieved(got.ID)
	_ = c
	var states []string
	for _, o := range h.rec.observed {
		if o.Slot == "701" {
			states = append(states, o.State)
		}
	}
	if strings.Join(states, ",") != "parked,ringback,parked,free" {
		t.Fatalf("observed %v", states)
	}
}

// The park timeout counts from the caller's answer when that came late
// (a slow disk held the journal write before the 200 OK); an answer in
// time changes nothing, and a call already rung back stays rung back.
func TestTimeoutFromLateAnswer(t *testing.T) {
	h := newHarness(t, baseCfg)
	c := h.park(t, "700", "1001")
	h.clock.Advance(100 * time.Millisecond)
	h.s.Answered(c.ID) // in time: the timeout keeps its start
	h.clock.Advance(89*time.Second + 900*time.Millisecond)
	if h.rec.ringCount() != 1 {
		t.Fatalf("%d ring-backs 90 s after an answer in time, want 1", h.rec.ringCount())
	}

	h = newHarness(t, baseCfg)
	late := h.park(t, "700", "1002")
	h.clock.Advance(7 * time.Second) // the journal waited for the disk
	h.s.Answered(late.ID)
	h.clock.Advance(89 * time.Second)
	if h.rec.ringCount() != 0 {
		t.Fatal("rang back before 90 s from the late answer")
	}
	h.clock.Advance(time.Second)
	if r := h.rec.lastRing(t); h.rec.ringCount() != 1 || r.Target != "1002" {
		t.Fatalf("no ring-back 90 s after the late answer: %d, %+v", h.rec.ringCount(), r)
	}
	// Answered again (rung back already): nothing changes.
	h.s.Answered(late.ID)
	if st, _ := h.s.Slot(late.Slot); st.State != StateRingback {
		t.Fatalf("state after a second Answered: %+v", st)
	}
}
