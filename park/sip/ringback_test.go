package parksip

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/park"
)

func ringLot(fallbackPort int) string {
	fb := ""
	if fallbackPort > 0 {
		fb = fmt.Sprintf("    fallback: \"sip:operator@127.0.0.1:%d\"\n", fallbackPort)
	}
	return `
lots:
  - extension: "700"
    slots: 701-705
    timeout: 1s
    ringback_time: 1s
` + fb + `slots:
  "701": {label: Sales}
`
}

func pbx(port int) string { return fmt.Sprintf("pbx: \"sip:127.0.0.1:%d\"", port) }

// uasOpts runs a sipp phone as a server on its own port.
func uasOpts(port int, user string) sippOpts {
	return sippOpts{port: port, target: "-", keys: map[string]string{"from": user}}
}

// The timeout rings the parker (through the PBX route) with the slot and
// label as display name; the parker answers, hears the whisper alone, and
// is then connected to the caller.
func TestRingbackAnsweredViaPBX(t *testing.T) {
	t.Parallel()
	phonePort := proctest.FreeUDPPair(t)
	e := newEnv(t, pbx(phonePort), ringLot(0))
	phone := e.startSipp("uas_answer.xml", uasOpts(phonePort, "1001"))
	phoneRTP := newRTPPeer(t, phone.MPort)
	caller := e.startSipp("park.xml", sippOpts{service: "700", keys: map[string]string{"hold": "4000"}})
	callerRTP := newRTPPeer(t, caller.MPort)
	e.waitEvent(events.CallParked, "701", 5*time.Second)
	e.waitEvent(events.CallTimedOut, "701", 3*time.Second)
	rb := e.waitEvent(events.CallRangBack, "701", 2*time.Second)
	if rb.Target != "1001" || rb.Reason != "ringback" {
		t.Fatalf("ring-back %+v", rb)
	}
	if st := e.slot("701"); st.State != park.StateRingback {
		t.Errorf("slot during ring-back: %s", st.State)
	}
	ret := e.waitEvent(events.CallRetrieved, "701", 5*time.Second)
	if ret.Reason != "ringback" || !strings.Contains(ret.Retriever, "1001") {
		t.Fatalf("retrieved %+v", ret)
	}
	said := strings.Join(e.speak.said(), "|")
	if !strings.Contains(said, "returning call from seven oh one") {
		t.Errorf("whisper not spoken: %q", said)
	}
	// The whisper reached the answerer: tone packets before the bridge.
	if n := phoneRTP.count(); n < 5 {
		t.Errorf("answerer got %d whisper packets", n)
	}
	// Connected: the caller's audio reaches the parker.
	before := phoneRTP.count()
	callerRTP.send(10, 0x33333333, 0x44)
	phoneRTP.waitPackets(before+8, 3*time.Second)
	caller.MustPass(10 * time.Second)
	phone.MustPass(10 * time.Second) // BYE from the server when the caller left
}

// A parker registered to parkpage is rung at its registered contact.
func TestRingbackToRegisteredParker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `users:
  "1001": {password: s3cret}`, ringLot(0))
	phonePort := proctest.FreeUDPPair(t)
	phone := e.startSipp("uas_answer.xml", uasOpts(phonePort, "1001"))
	reg := e.startSipp("register.xml", sippOpts{keys: map[string]string{"from": "1001", "contact_port": fmt.Sprint(phonePort)},
		extra: []string{"-au", "1001", "-ap", "s3cret"}})
	reg.MustPass(5 * time.Second)
	if b := e.stack.Contacts("1001"); len(b) != 1 || !strings.Contains(b[0].Contact, fmt.Sprint(phonePort)) {
		t.Fatalf("bindings %+v", b)
	}
	caller := e.startSipp("park.xml", sippOpts{service: "700", keys: map[string]string{"hold": "3000"}})
	ret := e.waitEvent(events.CallRetrieved, "701", 6*time.Second)
	if ret.Reason != "ringback" {
		t.Fatalf("retrieved %+v", ret)
	}
	caller.MustPass(10 * time.Second)
	phone.MustPass(10 * time.Second)
}

// Unanswered ring-back is cancelled after ringback_time and the fallback
// destination is called; it answers.
func TestRingbackUnansweredIntoFallback(t *testing.T) {
	t.Parallel()
	phonePort, opPort := proctest.FreeUDPPair(t), proctest.FreeUDPPair(t)
	e := newEnv(t, pbx(phonePort), ringLot(opPort))
	phone := e.startSipp("uas_noanswer.xml", uasOpts(phonePort, "1001"))
	operator := e.startSipp("uas_answer.xml", uasOpts(opPort, "operator"))
	caller := e.startSipp("park.xml", sippOpts{service: "700", keys: map[string]string{"hold": "4500"}})
	e.waitEvent(events.CallTimedOut, "701", 5*time.Second)
	first := e.waitEvent(events.CallRangBack, "701", 2*time.Second)
	second := e.waitEvent(events.CallRangBack, "701", 4*time.Second)
	if first.Reason != "ringback" || second.Reason != "fallback" || !strings.HasPrefix(second.Target, "sip:operator@") {
		t.Fatalf("rings %+v then %+v", first, second)
	}
	phone.MustPass(5 * time.Second) // it saw the CANCEL
	ret := e.waitEvent(events.CallRetrieved, "701", 5*time.Second)
	if ret.Reason != "fallback" {
		t.Fatalf("retrieved %+v", ret)
	}
	caller.MustPass(10 * time.Second)
	operator.MustPass(10 * time.Second)
}

// Ring-back busy and fallback busy: the call goes back into its slot with
// a fresh timeout, and is never dropped; the caller hanging up then frees
// the slot.
func TestFallbackFailsBackIntoSlot(t *testing.T) {
	t.Parallel()
	phonePort, opPort := proctest.FreeUDPPair(t), proctest.FreeUDPPair(t)
	e := newEnv(t, pbx(phonePort), ringLot(opPort))
	phone := e.startSipp("uas_busy.xml", uasOpts(phonePort, "1001"))
	operator := e.startSipp("uas_busy.xml", uasOpts(opPort, "operator"))
	caller := e.startSipp("park.xml", sippOpts{service: "700", keys: map[string]string{"hold": "2500"}})
	e.waitEvent(events.CallRangBack, "701", 5*time.Second)
	e.waitEvent(events.CallRangBack, "701", 2*time.Second)
	ret := e.waitEvent(events.CallReturned, "701", 3*time.Second)
	if !strings.Contains(ret.Reason, "486") {
		t.Errorf("returned %+v", ret)
	}
	if st := e.slot("701"); st.State != park.StateParked {
		t.Fatalf("slot after return: %+v", st)
	}
	phone.MustPass(5 * time.Second)
	operator.MustPass(5 * time.Second)
	// Next cycle starts (ring-back again, now unreachable), caller leaves.
	caller.MustPass(10 * time.Second)
	e.waitEvent(events.CallAbandoned, "701", 3*time.Second)
	e.waitSlot("701", park.StateFree, time.Second)
}

// A forged Referred-By naming an outside host must not make parkpage call
// that host: with neither a registration nor a PBX route the ring-back
// fails and the call stays parked.
func TestForgedReferredByIsNotCalled(t *testing.T) {
	t.Parallel()
	trap, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	got := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 2000)
		if _, _, err := trap.ReadFrom(buf); err == nil {
			got <- struct{}{}
		}
	}()
	e := newEnv(t, "", ringLot(0))
	parker := fmt.Sprintf("1001@%s", trap.LocalAddr()) // Referred-By: <sip:1001@127.0.0.1:port>
	caller := e.startSipp("park.xml", sippOpts{service: "700", keys: map[string]string{"hold": "1800", "parker": parker}})
	rb := e.waitEvent(events.CallRangBack, "701", 5*time.Second)
	if rb.Target != "1001" {
		t.Fatalf("ring-back target %q: only the user part may be used", rb.Target)
	}
	ret := e.waitEvent(events.CallReturned, "701", 3*time.Second)
	if !strings.Contains(ret.Reason, "no route") {
		t.Errorf("returned %+v", ret)
	}
	select {
	case <-got:
		t.Fatal("parkpage sent a packet to the host named in Referred-By")
	case <-time.After(200 * time.Millisecond):
	}
	caller.MustPass(10 * time.Second)
}

// A ring-back cancelled before its Ring action ran (a retriever won the
// slot on another goroutine first) never rings the parker's phone.
func TestCancelledRingNeverDials(t *testing.T) {
	t.Parallel()
	trap, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	got := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 2000)
		if _, _, err := trap.ReadFrom(buf); err == nil {
			got <- struct{}{}
		}
	}()
	e := newEnv(t, pbx(trap.LocalAddr().(*net.UDPAddr).Port), ringLot(0))
	r := park.Ring{Call: 42, Attempt: 4242, Kind: park.RingParker, Target: "1001", Slot: "701", Display: "701 Sales", Timeout: time.Second}
	e.srv.CancelRing(r)
	e.srv.Ring(r)
	select {
	case <-got:
		t.Fatal("a cancelled ring-back dialled the parker")
	case <-time.After(300 * time.Millisecond):
	}
	// The same attempt number is not poisoned for ever: a fresh attempt rings.
	r.Attempt = 4243
	e.srv.Ring(r)
	select {
	case <-got:
	case <-time.After(3 * time.Second):
		t.Fatal("a live ring-back did not dial the parker through sip.pbx")
	}
	e.srv.CancelRing(r)
}

// A parker's phone answering just as the ring time ends (its 200 crosses
// our CANCEL) is ACKed and hung up, and the call goes back to its slot.
func TestRingbackAnswerCrossingCancel(t *testing.T) {
	t.Parallel()
	phonePort := proctest.FreeUDPPair(t)
	e := newEnv(t, pbx(phonePort), ringLot(0))
	phone := e.startSipp("uas_answer_after_cancel.xml", uasOpts(phonePort, "1001"))
	caller := e.startSipp("park.xml", sippOpts{service: "700", keys: map[string]string{"hold": "2600"}})
	e.waitEvent(events.CallRangBack, "701", 5*time.Second)
	ret := e.waitEvent(events.CallReturned, "701", 5*time.Second)
	if !strings.Contains(ret.Reason, "no answer") {
		t.Errorf("returned %+v", ret)
	}
	phone.MustPass(10 * time.Second) // got its ACK and BYE
	caller.MustPass(10 * time.Second)
}
