package parksip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/park"
)

// The front desk's hang-up sends the parked caller a BYE and frees the
// slot; a second one finds the slot empty.
func TestDeskHangupSendsBye(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", ringLot(0))
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "700"})
	callerRTP := newRTPPeer(t, caller.MPort)
	e.waitEvent(events.CallParked, "701", 5*time.Second)
	// The call is up (its ACK long in) once the caller hears music: the
	// desk never hangs up a call in the milliseconds of its answer.
	heardMusic(t, "parked", callerRTP.waitPackets(10, 10*time.Second))
	if err := e.srv.HangupSlot(context.Background(), "701"); err != nil {
		t.Fatal(err)
	}
	if ev := e.waitEvent(events.CallAbandoned, "701", 5*time.Second); ev.Reason != "hung up at the front desk" {
		t.Errorf("abandoned %+v", ev)
	}
	caller.MustPass(10 * time.Second) // it got the BYE
	if err := e.srv.HangupSlot(context.Background(), "701"); !errors.Is(err, park.ErrEmpty) {
		t.Errorf("second hang-up: %v", err)
	}
}

// A moved call is picked up at its new slot: the parked leg follows the
// call, not the slot.
func TestDeskMoveThenPickup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", ringLot(0))
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "700"})
	e.waitEvent(events.CallParked, "701", 5*time.Second)
	if err := e.srv.MoveSlot(context.Background(), "701", "704"); err != nil {
		t.Fatal(err)
	}
	if ev := e.waitEvent(events.CallMoved, "704", 5*time.Second); ev.From != "701" {
		t.Errorf("moved %+v", ev)
	}
	r := e.startSipp("retrieve_hangup.xml", sippOpts{service: "704", keys: map[string]string{"from": "1002", "hold": "500"}})
	e.waitEvent(events.CallRetrieved, "704", 5*time.Second)
	r.MustPass(10 * time.Second)
	caller.MustPass(10 * time.Second)
}
