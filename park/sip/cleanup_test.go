package parksip

import (
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

// A parked leg that sends no RTP for park.rtp_timeout is hung up and its
// slot freed; a leg the far end has put on hold (a=inactive) is not.
func TestRTPTimeoutCleanup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700+"rtp_timeout: 5s\n")
	held := e.startSipp("park_hold.xml", sippOpts{service: "702", keys: map[string]string{"hold": "6500"}})
	silent := e.startSipp("park_wait_bye.xml", sippOpts{service: "701"})
	ev := e.waitEvent(events.CallAbandoned, "701", 9*time.Second)
	if !strings.Contains(ev.Reason, "no RTP") {
		t.Fatalf("abandoned %+v", ev)
	}
	silent.MustPass(5 * time.Second) // it got the BYE
	if e.slot("702").State != "parked" {
		t.Fatal("held leg was cleaned up")
	}
	held.MustPass(10 * time.Second)
}

// RFC 4028: a parked leg that asked for a session timer and stops
// refreshing is hung up when the interval lapses; one below Min-SE gets 422.
func TestSessionTimer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", lot700)
	c := e.startSipp("park_wait_bye.xml", sippOpts{service: "701", keys: map[string]string{"hdr": "Session-Expires: 2", "hdr2": "Supported: timer"}})
	e.waitEvent(events.CallParked, "701", 5*time.Second)
	if !strings.Contains(c.Messages(), "Session-Expires: 2;refresher=uac") {
		runtest.WaitFor(t, "200 with Session-Expires", 2*time.Second, func() bool { return strings.Contains(c.Messages(), "Session-Expires: 2;refresher=uac") })
	}
	ev := e.waitEvent(events.CallAbandoned, "701", 5*time.Second)
	if ev.Reason != "session timer expired" {
		t.Fatalf("abandoned %+v", ev)
	}
	c.MustPass(5 * time.Second)

	strict := newEnv(t, "", lot700, func(o *Options) { o.Housekeep, o.MinSE = 100*time.Millisecond, 90*time.Second })
	r := strict.startSipp("refuse_422.xml", sippOpts{service: "700", keys: map[string]string{"hdr": "Session-Expires: 30", "hdr2": "Supported: timer"}})
	r.MustPass(10 * time.Second)
	if !strings.Contains(r.Messages(), "Min-SE: 90") {
		t.Error("422 without Min-SE")
	}
}
