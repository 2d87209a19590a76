package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// After a blind park, the parker's phone registered to parkpage gets a
// SIP MESSAGE "Parked at 701" (sipp plays the phone: it registers as 201
// with digest auth, then answers the MESSAGE at its Contact).
func TestParkerGetsParkedAtMessage(t *testing.T) {
	t.Parallel()
	// Indented: users continue the sip section startInproc writes first.
	ap := startInproc(t, `  users:
    "201": {password: reception-pw}
park:
  lots:
    - {extension: "700", slots: 701-703, find_slot: first}
`)
	phone := runSipp(t, "", "../../park/feedback/testdata/message_uas.xml", "", nil)
	reg := ap.sipp(sippDir+"register.xml", "", map[string]string{"from": "201", "contact_port": fmt.Sprint(phone.Port())},
		"-au", "201", "-ap", "reception-pw")
	reg.MustPass(10 * time.Second)
	caller := ap.parkCall("700", 3*time.Second) // Referred-By: 201
	parked, _ := ap.waitEvent(events.CallParked, 0, 10*time.Second)
	if parked.e.Slot != "701" {
		t.Fatalf("parked in %s", parked.e.Slot)
	}
	phone.MustPass(10 * time.Second)
	if msgs := phone.Messages(); !strings.Contains(msgs, "Parked at 701") || !strings.Contains(msgs, "MESSAGE sip:201@") {
		t.Fatalf("the phone's MESSAGE:\n%s", msgs)
	}
	caller.MustPass(15 * time.Second)
}
