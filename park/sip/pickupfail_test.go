package parksip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/park"
)

// heardMusic fails t unless pkts are a continuous, non-silent PCMU stream.
func heardMusic(t testing.TB, what string, pkts []recvd) {
	t.Helper()
	silent := 0
	for i, r := range pkts {
		if r.pkt.PayloadType != 0 || len(r.pkt.Payload) != 160 {
			t.Fatalf("%s: packet %d is PT %d, %d bytes, not music", what, i, r.pkt.PayloadType, len(r.pkt.Payload))
		}
		if r.pkt.Payload[0] == 0xff || r.pkt.Payload[0] == 0x7f {
			silent++
		}
	}
	if silent == len(pkts) {
		t.Fatalf("%s: %d packets of silence, no hold music", what, len(pkts))
	}
}

// musicAgain waits for 25 packets after the n-th one on the caller's leg
// and checks they are hold music.
func musicAgain(t *testing.T, p *rtpPeer, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.count() < n+25 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the caller got %d packets in 5 s, want 25 of hold music", what, p.count()-n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	heardMusic(t, what, p.snapshot()[n:])
}

// A pickup that fails after the retriever got its 200 OK (here: the
// answer reported as not completed, as when the ACK never comes) must not
// leave the retriever connected to nobody: it gets a BYE, the reason is
// logged, and the caller stays parked on hold music for the next pickup.
func TestPickupFailingAfterAnswerHangsUpRetriever(t *testing.T) {
	t.Parallel()
	var answers atomic.Int32
	e := newEnv(t, "", lot700, func(o *Options) {
		o.pickupAnswered = func(*sipstack.IncomingCall) error {
			if answers.Add(1) == 1 {
				return errors.New("injected: no ACK")
			}
			return nil
		}
	})
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "704"})
	callerRTP := newRTPPeer(t, caller.MPort)
	e.waitEvent(events.CallParked, "704", 5*time.Second)
	heardMusic(t, "parked", callerRTP.waitPackets(10, 5*time.Second))

	// retrieve.xml waits 20 s for a BYE after its ACK.
	r := e.startSipp("retrieve.xml", sippOpts{service: "704", keys: map[string]string{"from": "1002"}})
	if err := r.Wait(30 * time.Second); err != nil {
		t.Fatalf("retriever answered with 200 OK was never hung up: %v\n%s", err, r.Messages())
	}
	if !strings.Contains(r.Messages(), "SIP/2.0 200 OK") {
		t.Fatalf("retriever was not answered:\n%s", r.Messages())
	}
	if l := e.logs(); !strings.Contains(l, "pickup failed after answering the retriever") || !strings.Contains(l, "injected: no ACK") {
		t.Errorf("the failed pickup's reason is not logged")
	}
	musicAgain(t, callerRTP, callerRTP.count(), "after the failed pickup")

	// Back in its slot: the next retriever gets the caller, bridged.
	r2 := e.startSipp("retrieve_hangup.xml", sippOpts{service: "704", keys: map[string]string{"from": "1003", "hold": "1500"}})
	r2RTP := newRTPPeer(t, r2.MPort)
	ev := e.waitEvent(events.CallRetrieved, "704", 5*time.Second)
	if !strings.Contains(ev.Retriever, "1003") {
		t.Fatalf("retrieved by %q, want 1003", ev.Retriever)
	}
	callerRTP.send(20, 0x11111111, 0x55)
	if got := r2RTP.waitPackets(15, 5*time.Second); got[len(got)-1].pkt.Payload[0] != 0x55 {
		t.Fatal("caller's audio not relayed to the second retriever")
	}
	r2.MustPass(10 * time.Second)
	caller.MustPass(10 * time.Second)
}

// A retriever whose bridge cannot be built (late offer, and an ACK
// without the answer: no codec on its leg) is hung up, the reason is
// logged, and the caller, back in its slot, hears hold music again rather
// than the silence left when the music was stopped before the bridge.
func TestPickupBridgeFailureKeepsCallerOnMusic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700)
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "702"})
	callerRTP := newRTPPeer(t, caller.MPort)
	e.waitEvent(events.CallParked, "702", 5*time.Second)
	heardMusic(t, "parked", callerRTP.waitPackets(10, 5*time.Second))

	r := e.startSipp("retrieve_late_noanswer.xml", sippOpts{service: "702", keys: map[string]string{"from": "1002"}})
	if err := r.Wait(30 * time.Second); err != nil {
		t.Fatalf("retriever without media was never hung up: %v\n%s", err, r.Messages())
	}
	if l := e.logs(); !strings.Contains(l, "pickup failed after answering the retriever") || !strings.Contains(l, "bridge") {
		t.Errorf("the failed bridge's reason is not logged")
	}
	if st := e.slot("702"); st.State != park.StateParked {
		t.Fatalf("slot 702 is %s after the failed pickup", st.State)
	}
	musicAgain(t, callerRTP, callerRTP.count(), "after the failed bridge")

	// A late-offer retriever that does answer in its ACK is bridged.
	r2 := e.startSipp("retrieve_late.xml", sippOpts{service: "702", keys: map[string]string{"from": "1003"},
		extra: []string{"-cid_str", "late-702-%u@test"}})
	r2RTP := newRTPPeer(t, r2.MPort)
	e.waitEvent(events.CallRetrieved, "702", 5*time.Second)
	bothWays(t, callerRTP, r2RTP, 0x55, 0x66)
	e.hangupCall(t, "late-702-1@test")
	r2.MustPass(10 * time.Second)
	caller.MustPass(10 * time.Second)
}

// bothWays checks a bridge relays RTP from a to b and from b to a: b must
// have sent to the server first (its source is learned from what arrived).
func bothWays(t testing.TB, a, b *rtpPeer, ab, ba byte) {
	t.Helper()
	if err := relays(a, b, ab); err != nil {
		t.Fatal(err)
	}
	if err := relays(b, a, ba); err != nil {
		t.Fatal(err)
	}
}

// relays sends packets of payload byte v from one peer and waits until
// the other receives one.
func relays(from, to *rtpPeer, v byte) error {
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; ; n++ {
		mark := to.count()
		from.send(5, 0x10000000+uint32(v), v)
		for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
			for _, r := range to.snapshot()[mark:] {
				if len(r.pkt.Payload) > 0 && r.pkt.Payload[0] == v {
					return nil
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("payload %#x not relayed within 5 s (%d rounds)", v, n+1)
		}
	}
}

// hangupCall hangs up, from the server's side, the dialogs with callID.
func (e *env) hangupCall(t testing.TB, callID string) {
	t.Helper()
	ds := e.stack.DialogsByCallID(callID)
	if len(ds) == 0 {
		t.Fatalf("no dialog with Call-ID %s", callID)
	}
	for _, d := range ds {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.Hangup(ctx)
		cancel()
	}
}
