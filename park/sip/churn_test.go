package parksip

import (
	"flag"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/park"
)

// The churn that once left one pickup in 1,333 answered and connected to
// nobody; `go test -run Churn -parksip.churn 2000 ./park/sip` runs it long.
var churnCycles = flag.Int("parksip.churn", 200, "park/pickup cycles in TestParkPickupChurn (40 with -short)")

// Park/pickup churn against real sipp callers and retrievers, five slots
// at a time: every parked caller hears hold music, every pickup is bridged
// (RTP both ways), and at the end nothing is left parked or half-picked.
// Retrievers alternate between an offer in the INVITE and a late offer
// answered in the ACK; the call is ended by the server from either side.
func TestParkPickupChurn(t *testing.T) {
	t.Parallel()
	n := *churnCycles
	if testing.Short() && n > 40 {
		n = 40
	}
	e := newEnv(t, "", lot700)
	slots := []string{"701", "702", "703", "704", "705"}
	start := time.Now()
	t.Run("slots", func(t *testing.T) {
		for w, slot := range slots {
			cycles := n / len(slots)
			if w < n%len(slots) {
				cycles++
			}
			t.Run(slot, func(t *testing.T) {
				t.Parallel()
				we := *e
				we.t = t
				for i := 0; i < cycles && !t.Failed(); i++ {
					churnCycle(t, &we, slot, i)
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("%d park/pickup cycles in %v", n, time.Since(start).Round(time.Millisecond))
	for _, slot := range slots {
		e.waitSlot(slot, park.StateFree, 5*time.Second)
	}
	e.srv.mu.Lock()
	left := len(e.srv.calls)
	e.srv.mu.Unlock()
	if left != 0 {
		t.Errorf("%d parked legs left after the churn", left)
	}
	if l := e.logs(); strings.Contains(l, "pickup failed") {
		t.Errorf("a pickup failed during the churn")
	}
}

// churnCycle parks one caller in slot, checks its music, picks it up and
// checks the bridge, then ends the call.
func churnCycle(t *testing.T, e *env, slot string, i int) {
	t.Helper()
	callerID := fmt.Sprintf("churn-c-%s-%d-%%u@test", slot, i)
	callerRTP := freeRTPPeer(t)
	caller := startUntil(t, e, "park_wait_bye.xml", sippOpts{service: slot, mport: callerRTP.port(), extra: []string{"-cid_str", callerID}}, slot, park.StateParked)
	heardMusic(t, fmt.Sprintf("cycle %d in %s: parked caller", i, slot), callerRTP.waitPackets(10, 10*time.Second))

	scenario := "retrieve.xml"
	if i%2 == 1 {
		scenario = "retrieve_late.xml"
	}
	retrID := fmt.Sprintf("churn-r-%s-%d-%%u@test", slot, i)
	rRTP := freeRTPPeer(t)
	r := startUntil(t, e, scenario, sippOpts{service: slot, mport: rRTP.port(), keys: map[string]string{"from": "1002"}, extra: []string{"-cid_str", retrID}}, slot, park.StateFree)
	if err := relays(callerRTP, rRTP, 0x55); err != nil {
		t.Fatalf("cycle %d in %s (%s): caller to retriever: %v\n%s", i, slot, scenario, err, r.Messages())
	}
	if err := relays(rRTP, callerRTP, 0x66); err != nil {
		t.Fatalf("cycle %d in %s (%s): retriever to caller: %v", i, slot, scenario, err)
	}
	if i%4 < 2 {
		e.hangupCall(t, strings.Replace(retrID, "%u", "1", 1))
	} else {
		e.hangupCall(t, strings.Replace(callerID, "%u", "1", 1))
	}
	r.MustPass(10 * time.Second)
	caller.MustPass(10 * time.Second)
}

// startUntil starts a sipp and waits until slot is in state. A sipp that
// could not bind a port that was free when chosen (other tests run sipp
// too) is started again on new ports; any other early exit fails the test.
func startUntil(t *testing.T, e *env, scenario string, o sippOpts, slot, state string) *sipp {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := e.startSipp(scenario, o)
		deadline := time.Now().Add(15 * time.Second)
		for e.slot(slot).State != state {
			select {
			case <-s.Done():
				if e.slot(slot).State == state {
					return s
				}
				if strings.Contains(s.Logs(), "Unable to bind") && attempt < 4 {
					t.Logf("%s could not bind its ports (attempt %d); starting it again", scenario, attempt)
					goto again
				}
				t.Fatalf("%s ended before slot %s was %s:\n%s", scenario, slot, state, s.Logs())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("slot %s is %s 15 s after %s started, want %s", slot, e.slot(slot).State, scenario, state)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return s
	again:
	}
}

// freeRTPPeer binds an RTP peer on a free even port, choosing again when
// another process takes the port first.
func freeRTPPeer(t *testing.T) *rtpPeer {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, err := tryRTPPeer(t, proctest.FreeUDPPair(t))
		if err == nil {
			return p
		}
		if attempt == 4 {
			t.Fatal(err)
		}
	}
}

func (p *rtpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }
