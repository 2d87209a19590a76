package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
)

// `parkpage drain` with five parked calls: four parked by 201 are rung
// back through the PBX route (sip.pbx) and answered, one parked by 202 is
// rung at 202's registered contact, which is busy, so it goes back into its
// slot and is picked up there while the park drains. New parks to the lot
// and to a free slot get 480. The command shows its progress and says the
// lot is empty; status and metrics show the drain; `drain --cancel` takes
// parks again.
func TestDrainRingsEveryCallBack(t *testing.T) {
	t.Parallel()
	pbxPort, busyPort := proctest.FreePort(t, "udp"), proctest.FreePort(t, "udp")
	pbx := runSipp(t, "", sippDir+"phone_answer_bye.xml", "", map[string]string{
		"sip_port": fmt.Sprint(pbxPort), "calls": "4", "from": "201", "talk": "500", "mport": fmt.Sprint(proctest.FreePort(t, "udp"))})
	busy := runSipp(t, "", sippDir+"uas_busy.xml", "", map[string]string{
		"sip_port": fmt.Sprint(busyPort), "calls": "2", "from": "202", "mport": fmt.Sprint(proctest.FreePort(t, "udp"))})
	// (calls 2: the ring-back INVITE and the "Parked at" MESSAGE to 202.)
	// The lines below continue the sip: section startInprocPBX writes.
	y := `  users:
    "202": {password: s3cret-202}
park:
  whisper: ""
  lots:
    - extension: "700"
      slots: 701-706
      find_slot: first
      timeout: 10m
      ringback_time: 20s
`
	ap := startInprocPBX(t, y, fmt.Sprintf("sip:127.0.0.1:%d", pbxPort))
	ap.sipp(sippDir+"register.xml", "", map[string]string{"from": "202", "contact_port": fmt.Sprint(busyPort)},
		"-au", "202", "-ap", "s3cret-202").MustPass(30 * time.Second)

	var callers []*sipptest.Sipp
	for i, parker := range []string{"201", "201", "202", "201", "201"} {
		callers = append(callers, ap.sipp(sippDir+"caller_until_bye.xml", "700", map[string]string{
			"from": fmt.Sprintf("20655501%02d", i), "parker": parker + "@127.0.0.1", "mport": fmt.Sprint(proctest.FreePort(t, "udp"))}))
		ap.waitEvent(events.CallParked, 0, 30*time.Second)
		waitCount(t, ap, events.CallParked, i+1)
	}
	var busySlot string
	for _, s := range ap.core.slots() {
		if strings.Contains(s.Parker, "202@") {
			busySlot = s.Slot
		}
	}
	if busySlot == "" {
		t.Fatalf("no slot parked by 202: %+v", ap.core.slots())
	}

	drain := proctest.StartCmd(t, exec.Command(binary, "drain", "--api", ap.api, "--timeout", "2m"))
	drain.WaitLine(t, `^draining: new parks are refused \(480\), pickups still work; 5 calls parked, each rung back to its parker$`, time.Minute)

	// Five ring-backs, each to its parker: four through the PBX, one to
	// 202's contact.
	waitCount(t, ap, events.CallRangBack, 5)
	targets := map[string]int{}
	for _, e := range ap.snapshotEvents() {
		if e.e.Type == events.CallRangBack {
			targets[e.e.Reason+":"+e.e.Target]++
		}
		if e.e.Type == events.CallTimedOut && e.e.Reason != "draining" {
			t.Errorf("timed_out %+v, want reason draining", e.e)
		}
	}
	if targets["ringback:201"] != 4 || targets["ringback:202"] != 1 {
		t.Errorf("ring-backs %v, want 4 to 201 and 1 to 202", targets)
	}

	// New parks are refused while draining: the lot and a free slot.
	for _, ext := range []string{"700", "706"} {
		ap.sipp(sippDir+"refuse_480.xml", ext, map[string]string{"from": "2065559999", "parker": "201@127.0.0.1",
			"mport": fmt.Sprint(proctest.FreePort(t, "udp")), "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"}).MustPass(30 * time.Second)
	}
	var st api.Status
	getJSON(t, ap.api+"/api/v1/status", &st)
	if !st.Draining || st.Drain == nil || st.Drain.ParkedAtStart != 5 || st.Drain.Parked < 1 {
		t.Errorf("status while draining: draining=%v drain=%+v", st.Draining, st.Drain)
	}
	if m := metricsText(t, ap.api); !strings.Contains(m, "\nparkpage_draining 1\n") {
		t.Errorf("metrics while draining lack parkpage_draining 1")
	}

	// 202 was busy: the call is back in its slot, and a pickup still works.
	if _, i := ap.waitEvent(events.CallReturned, 0, 30*time.Second); ap.snapshotEvents()[i].e.Slot != busySlot {
		t.Errorf("returned %+v, want slot %s", ap.snapshotEvents()[i].e, busySlot)
	}
	busy.MustPass(10 * time.Second)
	// The command shows the progress: one call left.
	drain.WaitLine(t, `^draining: 1 call left, [01] ringing back \([0-9]+s\)$`, time.Minute)
	ap.sipp(sippDir+"retrieve_hangup.xml", busySlot, map[string]string{"from": "203", "hold": "300",
		"mport": fmt.Sprint(proctest.FreePort(t, "udp")), "hdr": "X-Test: 1"}).MustPass(30 * time.Second)

	// The command reports the empty lot and exits 0.
	drain.WaitLine(t, `^lot empty after [0-9]+s: no calls parked; parkpage can be stopped now`, 2*time.Minute)
	if err := drain.Wait(30 * time.Second); err != nil {
		t.Errorf("parkpage drain: %v\n%s", err, drain.Output())
	}
	t.Logf("parkpage drain said:\n%s", drain.Output())
	retrieved := map[string]int{}
	for _, e := range ap.snapshotEvents() {
		if e.e.Type == events.CallRetrieved {
			retrieved[e.e.Reason]++
		}
	}
	if retrieved["ringback"] != 4 || retrieved["pickup"] != 1 {
		t.Errorf("retrieved %v, want 4 ring-backs answered and 1 pickup", retrieved)
	}
	ap.waitEvent(events.Drained, 0, 10*time.Second)
	for _, c := range callers {
		c.MustPass(30 * time.Second) // each got its BYE only once its bridged party hung up
	}
	pbx.MustPass(30 * time.Second)

	// --cancel: parks are taken again.
	code, out, errOut := run(t, "", "drain", "--cancel", "--api", ap.api)
	if code != 0 || out != "drain ended: parks are accepted again (0 calls parked)\n" {
		t.Errorf("drain --cancel: %d %q %q", code, out, errOut)
	}
	getJSON(t, ap.api+"/api/v1/status", &st)
	if st.Draining {
		t.Errorf("still draining after --cancel")
	}
	n := ap.count(events.CallParked)
	ap.parkCall("700", 300*time.Millisecond).MustPass(30 * time.Second)
	if ap.count(events.CallParked) != n+1 {
		t.Errorf("park after --cancel not taken")
	}
}

func waitCount(t *testing.T, ap *inproc, typ events.Type, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for ap.count(typ) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events, want %d: %v", ap.count(typ), typ, n, ap.eventTypes())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// The drain API without the command: POST starts it (202), DELETE ends it,
// status shows it; other methods get 405.
func TestDrainAPI(t *testing.T) {
	t.Parallel()
	ap := startInproc(t, "park:\n  lots:\n    - {extension: \"700\", slots: 701-702}\n")
	do := func(method string, want int) api.DrainStatus {
		t.Helper()
		req, _ := http.NewRequest(method, ap.api+"/api/v1/drain", nil)
		req.Header.Set("Content-Type", "application/json") // every state-changing API request says it
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("%s /api/v1/drain: %s, want %d", method, res.Status, want)
		}
		var st api.DrainStatus
		json.NewDecoder(res.Body).Decode(&st)
		return st
	}
	var st api.Status
	getJSON(t, ap.api+"/api/v1/status", &st)
	if st.Draining || st.Drain == nil || st.Drain.Draining {
		t.Errorf("draining at start: %+v", st.Drain)
	}
	if st := do("POST", 202); !st.Draining || !st.Empty || st.Since == nil {
		t.Errorf("after POST: %+v", st)
	}
	getJSON(t, ap.api+"/api/v1/status", &st)
	if !st.Draining || st.Drain == nil || !st.Drain.Empty {
		t.Errorf("status: %+v %+v", st.Draining, st.Drain)
	}
	ap.waitEvent(events.Drained, 0, 10*time.Second)
	if st := do("DELETE", 200); st.Draining {
		t.Errorf("after DELETE: %+v", st)
	}
	ap.waitEvent(events.DrainCancelled, 0, 10*time.Second)
	do("PUT", 405)
	do("GET", 405)
}
