package parksip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
	"github.com/parkpage/parkpage/park"
)

const policyLot = `
lots:
  - extension: "700"
    slots: 701-704
    timeout: 60s
  - extension: "800"
    slots: 801-802
    timeout: 60s
    on_empty: reject
    pickup: ["@reception"]
slots:
  "703": {pickup: ["1001"]}
privacy:
  headers: ["X-Confidential"]
  calling: ["+1911XXXXXXX"]
`

const policyUsers = `users:
  "1001": {password: a}
  "1002": {password: b, groups: [reception]}
  "1003": {password: c}`

// Calls matching a privacy rule are refused with 403 before they are
// answered, so the transfer fails back to the parker.
func TestPrivacyRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, policyUsers, policyLot)
	for _, c := range []struct {
		name string
		keys map[string]string
	}{
		{"Privacy: id", map[string]string{"hdr": "Privacy: id"}},
		{"configured header", map[string]string{"hdr": "X-Confidential: yes"}},
		{"calling number pattern", map[string]string{"from": "+19115550100"}},
	} {
		r := e.startSipp("refuse_403.xml", sippOpts{service: "700", keys: c.keys})
		r.MustPass(10 * time.Second)
		ev := e.waitEvent(events.CallRefused, "", 2*time.Second)
		if !strings.Contains(ev.Reason, "cannot be parked") {
			t.Errorf("%s: refusal %+v", c.name, ev)
		}
	}
	for _, st := range e.srv.Slots() {
		if st.State != park.StateFree {
			t.Fatalf("a private call was parked: %+v", st)
		}
	}
}

// Pickup permissions: not allowed gets 403 and the call stays parked;
// groups work; an allowed user gets the call. An empty slot with
// on_empty: reject answers 404.
func TestPickupRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, policyUsers, policyLot)
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "703"})
	e.waitEvent(events.CallParked, "703", 5*time.Second)
	no := e.startSipp("pickup_refuse_403.xml", sippOpts{service: "703", keys: map[string]string{"from": "1002"}})
	no.MustPass(10 * time.Second)
	ref := e.waitEvent(events.CallRefused, "703", 2*time.Second)
	if !strings.Contains(ref.Reason, "not allowed") || !strings.Contains(ref.Retriever, "1002") {
		t.Errorf("refusal %+v", ref)
	}
	if st := e.slot("703"); st.State != park.StateParked {
		t.Fatalf("refused pickup disturbed the slot: %+v", st)
	}
	yes := e.startSipp("retrieve_hangup.xml", sippOpts{service: "703", keys: map[string]string{"from": "1001", "hold": "300"}})
	e.waitEvent(events.CallRetrieved, "703", 5*time.Second)
	yes.MustPass(10 * time.Second)
	caller.MustPass(10 * time.Second)

	// Lot 800: only @reception may pick up; empty slots answer 404.
	empty := e.startSipp("pickup_refuse_404.xml", sippOpts{service: "801", keys: map[string]string{"from": "1002"}})
	empty.MustPass(10 * time.Second)
	c2 := e.startSipp("park_wait_bye.xml", sippOpts{service: "801"})
	e.waitEvent(events.CallParked, "801", 5*time.Second)
	e.startSipp("pickup_refuse_403.xml", sippOpts{service: "801", keys: map[string]string{"from": "1003"}}).MustPass(10 * time.Second)
	grp := e.startSipp("retrieve_hangup.xml", sippOpts{service: "801", keys: map[string]string{"from": "1002", "hold": "300"}})
	e.waitEvent(events.CallRetrieved, "801", 5*time.Second)
	grp.MustPass(10 * time.Second)
	c2.MustPass(10 * time.Second)
}

// No free slot: 486 for a blind transfer (the transfer fails back).
func TestNoFreeSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", `
lots:
  - extension: "700"
    slots: 701-701
    timeout: 60s
`)
	first := e.startSipp("park.xml", sippOpts{service: "700", keys: map[string]string{"hold": "1000"}})
	e.waitEvent(events.CallParked, "701", 5*time.Second)
	e.startSipp("refuse_486.xml", sippOpts{service: "700"}).MustPass(10 * time.Second)
	ev := e.waitEvent(events.CallRefused, "", 2*time.Second)
	if !strings.Contains(ev.Reason, "no park slots are free") {
		t.Errorf("refusal %+v", ev)
	}
	// An attended transfer (the parker's own call, no Referred-By) hears
	// why in early media before the 486.
	consult := e.startSipp("consult_refused.xml", sippOpts{service: "700", keys: map[string]string{"from": "1001"}})
	early := newRTPPeer(t, consult.MPort)
	consult.MustPass(10 * time.Second)
	runtest.WaitFor(t, "prompt", 3*time.Second, func() bool { return strings.Contains(strings.Join(e.speak.said(), "|"), "no park slots are free") })
	if n := early.count(); n < 5 {
		t.Errorf("the parker got %d packets of the prompt in early media", n)
	}
	first.MustPass(10 * time.Second)
}

// A PBX that consumes the REFER and drops Referred-By can name the parker
// in sip.parker_header (X-Parker by default); the timeout then rings it.
func TestParkerFromConfiguredHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700)
	c := e.startSipp("consult_hangup.xml", sippOpts{service: "702", keys: map[string]string{"hdr": "X-Parker: \"Front Desk\" <sip:1009@pbx.lan>", "hold": "300"}})
	ev := e.waitEvent(events.CallParked, "702", 5*time.Second)
	if ev.Parker != `"Front Desk" <sip:1009@pbx.lan>` {
		t.Fatalf("parker %q", ev.Parker)
	}
	if said := e.speak.said(); len(said) != 0 {
		t.Errorf("a blind park was spoken to: %q", said)
	}
	c.MustPass(10 * time.Second)
	e.waitEvent(events.CallAbandoned, "702", 3*time.Second)
}

// Attended transfer to 700: the parker's consultation call is parked and
// hears its slot; the caller's INVITE with Replaces takes the slot, the
// parker's leg is hung up, and the parker becomes the call's parker.
func TestAttendedTransferToLot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700)
	consult := e.startSipp("consult_wait_bye.xml", sippOpts{service: "700", keys: map[string]string{"from": "1001"},
		extra: []string{"-cid_str", "consult-%u@test"}})
	ev := e.waitEvent(events.CallParked, "701", 5*time.Second)
	if !strings.Contains(ev.Caller, "sip:1001@") || ev.Parker != "" {
		t.Fatalf("consultation parked as %+v", ev)
	}
	runtest.WaitFor(t, "slot prompt", 3*time.Second, func() bool { return strings.Contains(strings.Join(e.speak.said(), "|"), "seven oh one") })
	ds := e.stack.DialogsByCallID("consult-1@test")
	if len(ds) != 1 {
		t.Fatalf("%d consultation dialogs", len(ds))
	}
	replaces := fmt.Sprintf("Replaces: consult-1@test;to-tag=%s;from-tag=consult1", ds[0].LocalTag)
	caller := e.startSipp("park.xml", sippOpts{service: "700", keys: map[string]string{"hdr": replaces, "hold": "800"}})
	ev = e.waitEvent(events.CallParked, "701", 5*time.Second)
	if !strings.Contains(ev.Caller, "ACME Supply") || !strings.Contains(ev.Parker, "sip:1001@") || ev.Reason != "attended transfer" {
		t.Fatalf("after Replaces: %+v", ev)
	}
	consult.MustPass(10 * time.Second) // the server hung up the consultation
	caller.MustPass(10 * time.Second)
	e.waitEvent(events.CallAbandoned, "701", 3*time.Second)
}

// Attended transfer to an empty slot: the consultation is answered with
// "seven oh three is free"; completing the transfer parks there. A private
// caller is refused with 403 and the parker hears why.
func TestAttendedTransferToEmptySlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700+`
privacy:
  headers: ["X-Confidential"]
`)
	consult := e.startSipp("consult_wait_bye.xml", sippOpts{service: "703", keys: map[string]string{"from": "1001"},
		extra: []string{"-cid_str", "consult-%u@test"}})
	runtest.WaitFor(t, "free prompt", 5*time.Second, func() bool {
		return strings.Contains(strings.Join(e.speak.said(), "|"), "seven oh three is free")
	})
	if st := e.slot("703"); st.State != park.StateFree {
		t.Fatalf("consultation occupied the slot: %+v", st)
	}
	ds := e.stack.DialogsByCallID("consult-1@test")
	if len(ds) != 1 {
		t.Fatalf("%d consultation dialogs", len(ds))
	}
	replaces := fmt.Sprintf("Replaces: consult-1@test;to-tag=%s;from-tag=consult1", ds[0].LocalTag)
	// A private caller first: refused, the parker is told.
	e.startSipp("refuse_403.xml", sippOpts{service: "703", keys: map[string]string{"hdr": replaces, "hdr2": "X-Confidential: 1"}}).MustPass(10 * time.Second)
	runtest.WaitFor(t, "refusal prompt", 3*time.Second, func() bool {
		return strings.Contains(strings.Join(e.speak.said(), "|"), "this call cannot be parked")
	})
	// Then the real caller.
	caller := e.startSipp("park.xml", sippOpts{service: "703", keys: map[string]string{"hdr": replaces, "hold": "600"}})
	ev := e.waitEvent(events.CallParked, "703", 5*time.Second)
	if !strings.Contains(ev.Parker, "sip:1001@") {
		t.Fatalf("parked %+v", ev)
	}
	consult.MustPass(10 * time.Second)
	caller.MustPass(10 * time.Second)
	// A Replaces naming no dialog: 481.
	e.startSipp("refuse_481.xml", sippOpts{service: "703", keys: map[string]string{"hdr": "Replaces: nope@x;to-tag=a;from-tag=b"}}).MustPass(10 * time.Second)
}
