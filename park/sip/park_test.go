package parksip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/park"
)

const lot700 = `
lots:
  - extension: "700"
    slots: 701-705
    timeout: 60s
    ringback_time: 2s
slots:
  "702": {label: Sales}
`

// A blind transfer to 700 parks the caller in the next slot with hold
// music; a phone dialling the slot gets the caller, with RTP relayed both
// ways and each stream continuous across the switch from music.
func TestBlindParkToLotMusicAndRetrieve(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700)
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "700"})
	callerRTP := newRTPPeer(t, caller.MPort)
	ev := e.waitEvent(events.CallParked, "", 5*time.Second)
	if ev.Slot != "701" || ev.Parker != "sip:1001@pbx.lan" || !strings.Contains(ev.Caller, "ACME Supply") {
		t.Fatalf("parked event %+v", ev)
	}
	st := e.slot("701")
	if st.State != park.StateParked || st.CallerName != "ACME Supply" || st.CallerURI != "sip:+15551234567@pbx.lan" {
		t.Fatalf("board %+v", st)
	}
	// Hold music: PCMU, 20 ms apart, one continuous stream.
	moh := callerRTP.waitPackets(25, 3*time.Second)
	for i := 1; i < len(moh); i++ {
		a, b := moh[i-1].pkt, moh[i].pkt
		if b.PayloadType != 0 || len(b.Payload) != 160 || b.SSRC != a.SSRC || b.SequenceNumber != a.SequenceNumber+1 || b.Timestamp-a.Timestamp != 160 {
			t.Fatalf("music packet %d: PT %d len %d seq %d->%d ts %d->%d", i, b.PayloadType, len(b.Payload), a.SequenceNumber, b.SequenceNumber, a.Timestamp, b.Timestamp)
		}
	}
	silent := 0
	for _, r := range moh {
		if r.pkt.Payload[0] == 0xff || r.pkt.Payload[0] == 0x7f {
			silent++
		}
	}
	if silent == len(moh) {
		t.Fatal("hold music is silence")
	}

	retriever := e.startSipp("retrieve_hangup.xml", sippOpts{service: "701", keys: map[string]string{"from": "1002", "hold": "1500"}})
	retrRTP := newRTPPeer(t, retriever.MPort)
	rev := e.waitEvent(events.CallRetrieved, "701", 5*time.Second)
	if rev.Reason != "pickup" || !strings.Contains(rev.Retriever, "1002") {
		t.Fatalf("retrieved event %+v", rev)
	}
	if e.slot("701").State != park.StateFree {
		t.Fatal("slot not free after retrieval")
	}
	// The caller talks: its packets reach the retriever with the
	// retriever leg's own stream.
	before := callerRTP.count()
	callerRTP.send(20, 0x11111111, 0x55)
	got := retrRTP.waitPackets(15, 3*time.Second)
	for i := 1; i < len(got); i++ {
		if got[i].pkt.SSRC != got[0].pkt.SSRC || got[i].pkt.SequenceNumber != got[i-1].pkt.SequenceNumber+1 {
			t.Fatalf("retriever stream broken at %d", i)
		}
		if got[i].pkt.SSRC == 0x11111111 {
			t.Fatal("caller SSRC leaked to the retriever")
		}
	}
	if got[len(got)-1].pkt.Payload[0] != 0x55 {
		t.Fatalf("payload not relayed unchanged")
	}
	// The caller's identity is shown to the retriever.
	if m := retriever.Messages(); !strings.Contains(m, `P-Asserted-Identity: "ACME Supply" <sip:+15551234567@pbx.lan>`) {
		t.Errorf("200 to the retriever does not name the caller:\n%s", proctest.Tail(m, 40))
	}
	// A DTMF key pressed by the caller reaches the retriever as RFC 4733
	// telephone-event on the retriever's payload type, in its stream.
	n0 := retrRTP.count()
	callerRTP.sendDTMF(0x11111111, 5)
	dt := retrRTP.waitPackets(n0+3, 3*time.Second)[n0:]
	events := 0
	for _, r := range dt {
		if r.pkt.PayloadType == 101 {
			events++
			if r.pkt.Payload[0] != 5 || r.pkt.SSRC != got[0].pkt.SSRC {
				t.Fatalf("relayed event %v on SSRC %x", r.pkt.Payload, r.pkt.SSRC)
			}
		}
	}
	if events < 3 {
		t.Fatalf("%d telephone-event packets reached the retriever, want 3", events)
	}
	// The retriever talks back: the caller's stream continues from the
	// music with the same SSRC and the next sequence number.
	retrRTP.send(20, 0x22222222, 0x66)
	all := callerRTP.waitPackets(before+15, 3*time.Second)
	last := moh[len(moh)-1].pkt
	// Timestamps continue too: the jump from the last music packet to the
	// first relayed one is the wall time between them, not a new origin.
	for i := len(moh); i < len(all); i++ {
		if all[i].pkt.Payload[0] == 0x66 {
			jump := all[i].pkt.Timestamp - all[i-1].pkt.Timestamp
			wall := all[i].at.Sub(all[i-1].at)
			want := uint32(wall.Seconds() * 8000)
			if int64(jump) < int64(want)-1600 || int64(jump) > int64(want)+1600 || jump > 1<<30 {
				t.Errorf("timestamp jumps %d over %v of wall time (want about %d)", jump, wall, want)
			}
			break
		}
	}
	for i := len(moh); i < len(all); i++ {
		p := all[i].pkt
		if p.SSRC != last.SSRC {
			t.Fatalf("caller stream SSRC changed after pickup")
		}
		if p.SequenceNumber != all[i-1].pkt.SequenceNumber+1 {
			t.Fatalf("caller stream seq %d after %d", p.SequenceNumber, all[i-1].pkt.SequenceNumber)
		}
	}
	retriever.MustPass(10 * time.Second) // hangs up after 1.5 s
	caller.MustPass(10 * time.Second)    // the server hangs up the caller
}

// A blind transfer to a slot parks there; a second park to the occupied
// slot is refused with 486 (on_taken: refuse); the caller hanging up frees
// the slot and publishes call.abandoned.
func TestDirectedParkOccupiedAndHangup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700)
	first := e.startSipp("park.xml", sippOpts{service: "703", keys: map[string]string{"hold": "1500"}})
	ev := e.waitEvent(events.CallParked, "703", 5*time.Second)
	if ev.Label != "" {
		t.Errorf("label %q", ev.Label)
	}
	second := e.startSipp("refuse_486.xml", sippOpts{service: "703", keys: map[string]string{"from": "+15550000000"}})
	second.MustPass(10 * time.Second)
	ref := e.waitEvent(events.CallRefused, "703", 2*time.Second)
	if !strings.Contains(ref.Reason, "taken") {
		t.Errorf("refusal %+v", ref)
	}
	first.MustPass(10 * time.Second)
	ab := e.waitEvent(events.CallAbandoned, "703", 3*time.Second)
	if ab.Reason != "caller hung up" {
		t.Errorf("abandoned %+v", ab)
	}
	if e.slot("703").State != park.StateFree {
		t.Fatal("slot not freed")
	}
}

// on_taken: next parks a directed call to an occupied slot in the next one.
func TestDirectedParkOnTakenNext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", `
lots:
  - extension: "700"
    slots: 701-703
    on_taken: next
    timeout: 60s
`)
	a := e.startSipp("park.xml", sippOpts{service: "702", keys: map[string]string{"hold": "1200"}})
	e.waitEvent(events.CallParked, "702", 5*time.Second)
	b := e.startSipp("park.xml", sippOpts{service: "702", keys: map[string]string{"hold": "200"}})
	ev := e.waitEvent(events.CallParked, "", 5*time.Second)
	if ev.Slot != "703" {
		t.Fatalf("second park went to %s, want 703", ev.Slot)
	}
	b.MustPass(10 * time.Second)
	a.MustPass(10 * time.Second)
}

// Two phones retrieving one slot at the same moment: exactly one gets the
// call, the other 486 (or 404 once the slot is empty).
func TestRetrieversRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700)
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "704"})
	e.waitEvent(events.CallParked, "704", 5*time.Second)
	r1 := e.startSipp("retrieve_race.xml", sippOpts{service: "704", keys: map[string]string{"from": "1002", "hold": "500"}})
	r2 := e.startSipp("retrieve_race.xml", sippOpts{service: "704", keys: map[string]string{"from": "1003", "hold": "500"}})
	r1.MustPass(10 * time.Second)
	r2.MustPass(10 * time.Second)
	caller.MustPass(10 * time.Second)
	evs := e.collect(300 * time.Millisecond)
	retrieved, refused := 0, 0
	for _, ev := range evs {
		switch ev.Type {
		case events.CallRetrieved:
			retrieved++
		case events.CallRefused:
			refused++
			if !strings.Contains(ev.Reason, "being retrieved") && !strings.Contains(ev.Reason, "no call parked") {
				t.Errorf("loser refused with %q", ev.Reason)
			}
		}
	}
	if retrieved != 1 || refused != 1 {
		t.Fatalf("%d retrieved, %d refused; want 1 and 1 (%v)", retrieved, refused, evs)
	}
	won := 0
	for _, r := range []*sipp{r1, r2} {
		if strings.Contains(r.Messages(), "SIP/2.0 200 OK") && strings.Contains(r.Messages(), "BYE sip:704") {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d retrievers were connected, want 1", won)
	}
}

// An INVITE with Replaces naming a parked caller's own dialog (a phone
// picking up from a BLF key by Replaces) is a pickup: the retriever gets
// the caller, who is never dropped; permission rules still apply.
func TestReplacesNamingParkedCallIsPickup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700)
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "704", extra: []string{"-cid_str", "parked-%u@test"}})
	e.waitEvent(events.CallParked, "704", 5*time.Second)
	ds := e.stack.DialogsByCallID("parked-1@test")
	if len(ds) != 1 {
		t.Fatalf("%d parked dialogs", len(ds))
	}
	rep := fmt.Sprintf("Replaces: parked-1@test;to-tag=%s;from-tag=%s", ds[0].LocalTag, ds[0].RemoteTag)
	r := e.startSipp("retrieve_hangup.xml", sippOpts{service: "700", keys: map[string]string{"from": "1002", "hold": "500", "hdr": rep}})
	ev := e.waitEvent(events.CallRetrieved, "704", 5*time.Second)
	if ev.Reason != "pickup" || !strings.Contains(ev.Retriever, "1002") || !strings.Contains(ev.Caller, "ACME Supply") {
		t.Fatalf("retrieved %+v", ev)
	}
	r.MustPass(10 * time.Second)
	caller.MustPass(10 * time.Second) // hung up by the server only after the retriever left
}
