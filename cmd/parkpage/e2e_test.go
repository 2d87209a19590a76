package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"periph.io/x/conn/v3/gpio"

	"github.com/parkpage/parkpage/gateway/announcer"
	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/multicast/polycom"
)

const sippDir = "../../park/testdata/sipp/"

// The mission's central workflow, end to end over loopback: a caller is
// blind-transferred to 700 and lands in 704; the zone linked to 704 hears
// "Call for Sales on seven oh four" on its multicast listener (the exact
// rendered frames) while its relay is on; a phone picks the call up from
// 704 during a repeat and the page stops at once; no repeats follow.
func TestParkAndPageEndToEnd(t *testing.T) {
	t.Parallel()
	rtpPort, pcPort, otherPort := proctest.FreePort(t, "udp"), proctest.FreePort(t, "udp"), proctest.FreePort(t, "udp")
	// A paging amplifier: sipp auto-answers, its RTP goes to ampRTP.
	ampRTP, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ampRTP.Close()
	ampHeard := make(chan []byte, 4096)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := ampRTP.ReadFrom(buf)
			if err != nil {
				return
			}
			ampHeard <- bytes.Clone(buf[:n])
		}
	}()
	ampSIP := proctest.FreePort(t, "udp")
	amp := runSipp(t, "", "../../gateway/output/sipamp/testdata/amp.xml", "", map[string]string{"sip_port": fmt.Sprint(ampSIP), "calls": "2",
		"rtp_port": fmt.Sprint(ampRTP.LocalAddr().(*net.UDPAddr).Port), "codec_pt": "0", "codec_name": "PCMU"})
	y := fmt.Sprintf(`
park:
  lots:
    - extension: "700"
      slots: 704-706
      find_slot: first
      timeout: 120s
  slots:
    "704":
      label: Sales
      announce:
        zones: [sales]
        repeat_every: 10s
        repeat_max: 5
announce:
  chime: none
  lead_in: 100ms
relays:
  sales_amp: {pin: AMP, lead: 50ms, hold: 100ms}
zones:
  sales:
    relays: [sales_amp]
    outputs:
      - {type: rtp, group: 239.255.70.4, port: %d, codec: pcmu, interface: lo, loopback: true}
      - {type: polycom, group: 239.255.70.5, port: %d, codec: pcmu, channel: 26, interface: lo, loopback: true}
      - {type: sip, uri: "sip:page@127.0.0.1:%d", preset: generic}
  other:
    outputs:
      - {type: rtp, group: 239.255.70.6, port: %d, codec: pcmu, interface: lo, loopback: true}
`, rtpPort, pcPort, ampSIP, otherPort)
	rtpL := mcasttest.Record(t, "239.255.70.4", rtpPort)
	pcL := mcasttest.Record(t, "239.255.70.5", pcPort)
	otherL := mcasttest.Record(t, "239.255.70.6", otherPort)
	ap := startInproc(t, y, "AMP")

	// What the zone must hear: the slot's phrase, rendered as the
	// announcer renders it.
	cfg := ap.app.Config()
	rule, _ := announcer.RuleFor(cfg, "704")
	specs, err := announcer.Compose(cfg, rule, announce.Fields{}, nil)
	if err != nil || len(specs) != 1 || specs[0].Text != "Call for Sales on seven oh four" {
		t.Fatalf("specs = %+v, %v", specs, err)
	}
	want, err := ap.core.audio.Get(context.Background(), specs[0].Request)
	if err != nil {
		t.Fatal(err)
	}
	wantFrames, _ := want.Frames(codec.PCMU)

	// The caller stays until well after the pickup (about 12 s after the
	// park: the repeat comes 10 s after the first page): a pickup delayed
	// by a loaded machine must still find it.
	caller := ap.parkCall("700", 20*time.Second)
	select {
	case <-caller.Done():
		t.Fatalf("park call ended early: %v", caller.Wait(0))
	case <-time.After(2 * time.Second):
	}
	pe, _ := ap.waitEvent(events.CallParked, 0, 10*time.Second)
	if pe.e.Slot != "704" {
		t.Fatalf("parked in %q, want 704 (find_slot first)", pe.e.Slot)
	}

	// The first announcement, whole, on the RTP listener.
	pkts := rtpL.Wait(t, len(wantFrames), 20*time.Second)
	firstPacket := pkts[0].At.Sub(pe.e.Time)
	order, by := rtpStreams(t, pkts)
	first := by[order[0]]
	if len(first) < len(wantFrames) {
		t.Fatalf("first stream has %d packets, want %d", len(first), len(wantFrames))
	}
	for i, p := range first[:len(wantFrames)] {
		if !bytes.Equal(p.Payload, wantFrames[i]) {
			t.Fatalf("packet %d payload differs from the rendered announcement", i)
		}
		if i > 0 && (p.SequenceNumber != first[i-1].SequenceNumber+1 || p.Timestamp != first[i-1].Timestamp+160) {
			t.Fatalf("packet %d: seq %d ts %d after %d %d", i, p.SequenceNumber, p.Timestamp, first[i-1].SequenceNumber, first[i-1].Timestamp)
		}
		if p.Marker != (i == 0) {
			t.Fatalf("packet %d marker %v", i, p.Marker)
		}
	}
	// The Polycom listener heard the same page (Alert, Transmits, End).
	pc := pcL.Wait(t, 3+len(wantFrames)+3, 10*time.Second)
	ops := map[polycom.Op]int{}
	for _, h := range pc {
		p, err := polycom.Parse(h.Data)
		if err != nil {
			t.Fatalf("polycom packet: %v", err)
		}
		ops[p.Op]++
	}
	t.Logf("park event to first announcement packet: %v; polycom ops %v", firstPacket, ops)
	// The amplifier answered and heard the same announcement.
	var ampFrames [][]byte
	timeout := time.After(10 * time.Second)
	for len(ampFrames) < len(wantFrames) {
		select {
		case b := <-ampHeard:
			var p rtp.Packet
			if err := p.Unmarshal(b); err != nil || p.PayloadType != 0 {
				continue // telephone-event or junk
			}
			ampFrames = append(ampFrames, p.Payload)
		case <-timeout:
			t.Fatalf("amplifier heard %d of %d frames", len(ampFrames), len(wantFrames))
		}
	}
	for i := range wantFrames {
		if !bytes.Equal(ampFrames[i], wantFrames[i]) {
			t.Fatalf("amplifier frame %d differs from the rendered announcement", i)
		}
	}
	// Only the slot's zone: nothing on the other zone's group.
	if n := len(otherL.Packets()); n != 0 {
		t.Errorf("zone other heard %d packets of 704's announcement", n)
	}
	// The relay was switched on for the page and off after it.
	ap.waitEvent(events.RelayOn, 0, time.Second)
	_, endIdx := ap.waitEvent(events.PageEnded, 0, 20*time.Second)
	ap.waitEvent(events.RelayOff, 0, 2*time.Second)
	if l := ap.pins["AMP"].Read(); l != gpio.Low {
		t.Errorf("relay pin %v after the page, want Low", l)
	}

	// The repeat starts; pick up during it.
	ap.waitEvent(events.PageStarted, endIdx, 10*time.Second)
	rtpL.Wait(t, len(pkts)+25, 5*time.Second) // 0.5 s into the repeat
	retriever := ap.sipp(sippDir+"retrieve.xml", "704", map[string]string{"from": "202", "mport": fmt.Sprint(proctest.FreePort(t, "udp")), "hdr": "X-Test: 1"})
	re, _ := ap.waitEvent(events.CallRetrieved, 0, 10*time.Second)
	pend, _ := ap.waitEvent(events.PageEnded, endIdx+1, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	all := rtpL.Packets()
	last := all[len(all)-1].At
	stopAfter := last.Sub(re.e.Time)
	t.Logf("pickup to last announcement packet: %v (a negative figure: the stream stopped before its next 20 ms packet was due); pickup to page ended (Polycom End burst sent, relays released): %v",
		stopAfter, pend.e.Time.Sub(re.e.Time))
	// The Polycom stream was ended cleanly: End packets after the pickup.
	ends := 0
	for _, h := range pcL.Packets() {
		if p, err := polycom.Parse(h.Data); err == nil && p.Op == polycom.OpEnd && h.At.After(re.e.Time) {
			ends++
		}
	}
	if ends == 0 {
		t.Error("no Polycom End packets after the pickup")
	}
	if stopAfter > 250*time.Millisecond {
		t.Errorf("announcement went on %v after the pickup", stopAfter)
	}
	// No repeat after the pickup: the slot's announcement run is over.
	if a := ap.core.ann.Active(); len(a) != 0 {
		t.Errorf("announcements still running for %v after the pickup", a)
	}
	time.Sleep(time.Second)
	if n := len(rtpL.Packets()); n != len(all) {
		t.Errorf("%d packets after the pickup: the announcement repeated", n-len(all))
	}
	if l := ap.pins["AMP"].Read(); l != gpio.Low {
		t.Errorf("relay pin %v after pickup, want Low", l)
	}
	caller.MustPass(20 * time.Second)
	retriever.MustPass(10 * time.Second)
	amp.MustPass(10 * time.Second) // both calls (announcement, cut repeat) ended with a BYE
}

// A park reported by the webhook (another PBX held the call) is announced
// like our own, and its retrieval stops it; the webhook token is required
// when a credential is configured.
func TestWebhookParkEvents(t *testing.T) {
	t.Parallel()
	rtpPort := proctest.FreePort(t, "udp")
	y := fmt.Sprintf(`
http:
  listen: 127.0.0.1:0
  bearer_tokens: [admin-token-0123456789abcdef]
external:
  webhook_tokens: [hook-secret-0123456789]
  slot_map: {"71": "704"}
park:
  lots:
    - extension: "700"
      slots: 701-710
      announce:
        zones: [front]
announce:
  chime: none
  lead_in: 100ms
zones:
  front:
    outputs:
      - {type: rtp, group: 239.255.70.7, port: %d, codec: pcmu, interface: lo, loopback: true}
`, rtpPort)
	l := mcasttest.Record(t, "239.255.70.7", rtpPort)
	ap := startInproc(t, y)
	post := func(token, body string) int {
		req, _ := http.NewRequest("POST", ap.api+"/api/v1/park-events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post("", `{"event":"parked","slot":"71"}`); code != http.StatusUnauthorized {
		t.Fatalf("webhook without its token: %d, want 401", code)
	}
	if code := post("wrong-token-0123456789", `{"event":"parked","slot":"71"}`); code != http.StatusUnauthorized {
		t.Fatalf("webhook with a wrong token: %d, want 401", code)
	}
	// The webhook token opens the webhook only.
	req, _ := http.NewRequest("GET", ap.api+"/api/v1/slots", nil)
	req.Header.Set("Authorization", "Bearer hook-secret-0123456789")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("webhook token on /api/v1/slots: %v %v, want 401", res.StatusCode, err)
	}
	if code := post("hook-secret-0123456789", `{"event":"parked","slot":"71"}`); code != http.StatusAccepted {
		t.Fatalf("webhook with its token: %d", code)
	}
	e, _ := ap.waitEvent(events.CallParked, 0, 5*time.Second)
	if e.e.Slot != "704" || e.e.Source != "webhook" {
		t.Errorf("event %+v, want slot 704 from webhook", e.e)
	}
	l.Wait(t, 20, 10*time.Second)
	if code := post("hook-secret-0123456789", `{"event":"retrieved","slot":"71"}`); code != http.StatusAccepted {
		t.Fatalf("webhook retrieved: %d", code)
	}
	ap.waitEvent(events.PageEnded, 0, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	n := len(l.Packets())
	time.Sleep(time.Second)
	if m := len(l.Packets()); m != n {
		t.Errorf("%d packets after the webhook's retrieved event", m-n)
	}
	if code := post("admin-token-0123456789abcdef", `{"event":"lost","slot":"71"}`); code != http.StatusBadRequest {
		t.Errorf("bad event: %d, want 400", code)
	}
}

// The announcements API pages text and a slot's phrase, and names a bad
// zone.
func TestAnnouncementsAPI(t *testing.T) {
	t.Parallel()
	rtpPort := proctest.FreePort(t, "udp")
	y := fmt.Sprintf(`
announce:
  chime: none
  lead_in: 100ms
zones:
  front:
    outputs:
      - {type: rtp, group: 239.255.70.8, port: %d, codec: g722, interface: lo, loopback: true}
`, rtpPort)
	l := mcasttest.Record(t, "239.255.70.8", rtpPort)
	ap := startInproc(t, y)
	post := func(body string) (int, string) {
		res, err := http.Post(ap.api+"/api/v1/announcements", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		return res.StatusCode, b.String()
	}
	code, body := post(`{"zones":["front"],"text":"Testing zone front","wait":true}`)
	if code != http.StatusOK {
		t.Fatalf("announce: %d %s", code, body)
	}
	got := l.Packets()
	_, by := rtpStreams(t, got)
	if len(by) != 1 || len(got) < 50 {
		t.Fatalf("heard %d packets in %d streams", len(got), len(by))
	}
	for _, ps := range by {
		if ps[0].PayloadType != 9 {
			t.Errorf("payload type %d, want 9 (G.722)", ps[0].PayloadType)
		}
	}
	// The event counters follow the bus on their own goroutine: poll.
	wantMetrics := []string{"parkpage_parked_calls 0", "parkpage_announce_renders 1", `parkpage_events_total{type="page.ended"} 1`, "parkpage_zones_paging 0"}
	var missing []string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mres, err := http.Get(ap.api + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var mb bytes.Buffer
		mb.ReadFrom(mres.Body)
		mres.Body.Close()
		missing = missing[:0]
		for _, m := range wantMetrics {
			if !strings.Contains(mb.String(), m) {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("/metrics lacks %q", missing)
	}
	code, body = post(`{"zones":["nowhere"],"text":"x"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, `"field": "zones"`) && !strings.Contains(body, `"field":"zones"`) {
		t.Errorf("unknown zone: %d %s", code, body)
	}
	code, body = post(`{"zones":["front"],"slot":"799"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "slot") {
		t.Errorf("unknown slot: %d %s", code, body)
	}
	_ = slices.Contains[[]string]
}

// The park timeout cuts the announcement and rings the parker back through
// the PBX route; the announcement does not come back while it rings.
func TestRingbackStopsAnnouncements(t *testing.T) {
	t.Parallel()
	rtpPort, pbxPort := proctest.FreePort(t, "udp"), proctest.FreePort(t, "udp")
	pbx := runSipp(t, "", sippDir+"uas_answer.xml", "", map[string]string{"sip_port": fmt.Sprint(pbxPort), "from": "201", "mport": fmt.Sprint(proctest.FreePort(t, "udp"))})
	y := fmt.Sprintf(`
park:
  lots:
    - extension: "700"
      slots: 704-706
      find_slot: first
      timeout: 2s
      ringback_time: 10s
  slots:
    "704":
      label: Sales
      announce:
        zones: [sales]
        repeat_every: 10s
announce:
  chime: none
  lead_in: 100ms
zones:
  sales:
    outputs:
      - {type: rtp, group: 239.255.70.9, port: %d, codec: pcmu, interface: lo, loopback: true}
`, rtpPort)
	l := mcasttest.Record(t, "239.255.70.9", rtpPort)
	ap := startInprocPBX(t, y, fmt.Sprintf("sip:127.0.0.1:%d", pbxPort))
	caller := ap.parkCall("700", 6000*time.Millisecond)
	ap.waitEvent(events.CallParked, 0, 10*time.Second)
	l.Wait(t, 10, 5*time.Second)
	to, _ := ap.waitEvent(events.CallTimedOut, 0, 10*time.Second)
	pend, _ := ap.waitEvent(events.PageEnded, 0, 5*time.Second)
	if pend.e.Reason != "cancelled" {
		t.Errorf("announcement ended %q, want cancelled by the timeout", pend.e.Reason)
	}
	t.Logf("timeout to page ended: %v", pend.e.Time.Sub(to.e.Time))
	time.Sleep(200 * time.Millisecond)
	n := len(l.Packets())
	caller.MustPass(20 * time.Second)
	pbx.MustPass(10 * time.Second)
	if m := len(l.Packets()); m != n {
		t.Errorf("%d announcement packets after the ring-back began", m-n)
	}
	if a := ap.core.ann.Active(); len(a) != 0 {
		t.Errorf("announcements still running for %v", a)
	}
}

// A reload applies a new config without dropping a parked call or the page
// playing: the call stays in its slot (under its new label) and the page
// plays to its end.
func TestReloadKeepsCallsAndPages(t *testing.T) {
	t.Parallel()
	port := proctest.FreePort(t, "udp")
	y := fmt.Sprintf(`
park:
  lots:
    - {extension: "700", slots: 701-703, label: Front, find_slot: first}
announce:
  chime: none
  lead_in: 100ms
zones:
  front:
    outputs:
      - {type: rtp, group: 239.255.90.2, port: %d, codec: pcmu, interface: lo, loopback: true}
`, port)
	l := mcasttest.Record(t, "239.255.90.2", port)
	ap := startInproc(t, y)
	caller := ap.parkCall("700", 12*time.Second)
	ap.waitEvent(events.CallParked, 0, 10*time.Second)

	res, err := http.Post(ap.api+"/api/v1/announcements", "application/json",
		strings.NewReader(`{"zones":["front"],"text":"This is a long test page that must survive a configuration reload in the middle of it"}`))
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("announce: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	ap.waitEvent(events.PageStarted, 0, 10*time.Second)
	l.Wait(t, 25, 5*time.Second)

	path := ap.app.Config().Source
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), "label: Front", "label: Lobby", 1)+
		"  back:\n    outputs:\n      - {type: rtp, group: 239.255.90.3, port: 5004, codec: pcmu, interface: lo}\n"), 0o644)
	res, err = http.Post(ap.api+"/api/v1/reload", "application/json", nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("reload: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	ap.waitEvent(events.ConfigReloaded, 0, 5*time.Second)
	// Right after the reload (the caller hangs up on its own later: on a
	// busy machine that can come before the page's end).
	slots := ap.core.slots()
	if len(slots) == 0 || slots[0].Slot != "701" || slots[0].State != "parked" || slots[0].Label != "Lobby" {
		t.Errorf("slot 701 after reload: %+v", slots)
	}

	end, _ := ap.waitEvent(events.PageEnded, 0, 20*time.Second)
	if end.e.Reason != "done" {
		t.Errorf("page ended %q across the reload, want done", end.e.Reason)
	}
	if n := len(ap.core.zones()); n != 2 {
		t.Errorf("%d zones after reload, want 2", n)
	}
	caller.MustPass(40 * time.Second) // the caller's own BYE is answered: the call lived on
	if ap.count(events.CallAbandoned) != 1 {
		t.Errorf("events %v", ap.eventTypes())
	}
}

// Stopping with a call parked and a page playing: the caller gets a BYE,
// the page ends cleanly (its Polycom End burst goes out), the relay is off,
// and the whole appliance has stopped within 2 s.
func TestShutdownWithCallAndPage(t *testing.T) {
	t.Parallel()
	port := proctest.FreePort(t, "udp")
	y := fmt.Sprintf(`
park:
  lots:
    - {extension: "700", slots: 701-703, find_slot: first}
announce:
  chime: none
  lead_in: 100ms
relays:
  amp: {pin: AMP, role: page_active, lead: 50ms, hold: 100ms}
zones:
  front:
    outputs:
      - {type: polycom, group: 239.255.90.4, port: %d, codec: g722, interface: lo, loopback: true}
`, port)
	l := mcasttest.Record(t, "239.255.90.4", port)
	ap, stop := startInprocStoppable(t, y, "AMP")
	caller := ap.sipp(sippDir+"park_wait_bye.xml", "700", map[string]string{"from": "2065550100", "parker": "201@127.0.0.1",
		"mport": fmt.Sprint(proctest.FreePort(t, "udp")), "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"})
	ap.waitEvent(events.CallParked, 0, 10*time.Second)
	res, err := http.Post(ap.api+"/api/v1/announcements", "application/json",
		strings.NewReader(`{"zones":["front"],"text":"A long page that the shutdown must end cleanly, with the end burst"}`))
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("announce: %v", err)
	}
	res.Body.Close()
	l.Wait(t, 40, 5*time.Second)

	took := stop()
	t.Logf("stopped in %v", took)
	if took > 2*time.Second {
		t.Errorf("stopping took %v, want at most 2 s", took)
	}
	// Issue 12: a parked caller keeps its call across a stop (no BYE);
	// the call journal holds it for the next start to take over.
	if msgs := caller.Messages(); strings.Contains(msgs, "BYE sip:") {
		t.Errorf("the parked caller got a BYE at shutdown:\n%s", caller.Logs())
	}
	if data, err := os.ReadFile(filepath.Join(ap.app.Config().StateDir, "calls.journal")); err != nil || !strings.Contains(string(data), `"slot":"701"`) {
		t.Errorf("the call journal does not hold the parked call (%v):\n%s", err, data)
	}
	ends := 0
	for _, h := range l.Packets() {
		if p, err := polycom.Parse(h.Data); err == nil && p.Op == polycom.OpEnd {
			ends++
		}
	}
	if ends == 0 {
		t.Error("the page was not ended with a Polycom End burst")
	}
	if lv := ap.pins["AMP"].Read(); lv != gpio.Low {
		t.Errorf("relay %v after stop, want Low", lv)
	}
}

// Every configured output has its failure counter on /metrics from the
// start, so an alert on it works before the first failure.
func TestOutputFailureCountersFromStart(t *testing.T) {
	t.Parallel()
	ap := startInproc(t, "zones:\n  front:\n    outputs:\n      - {type: rtp, group: 239.255.90.9, port: 5004, codec: pcmu, interface: lo}\n      - {type: polycom, interface: lo}\n")
	res, err := http.Get(ap.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`parkpage_output_failures_total{output="front/outputs[0]"} 0`,
		`parkpage_output_failures_total{output="front/outputs[1]"} 0`,
		"# TYPE parkpage_output_failures_total counter",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A PBX that names the parker by host only (Referred-By: <sip:198.51.100.7>):
// on timeout no ring-back is possible, so with no fallback the call stays
// parked, and the event and the log say why.
func TestBareHostParkerStaysParkedAndSaysWhy(t *testing.T) {
	t.Parallel()
	y := `
park:
  lots:
    - {extension: "700", slots: 704-706, find_slot: first, timeout: 2s}
`
	ap := startInprocPBX(t, y, fmt.Sprintf("sip:127.0.0.1:%d", proctest.FreePort(t, "udp")))
	caller := ap.sipp(sippDir+"park.xml", "700", map[string]string{"from": "2065550100", "parker": "198.51.100.7",
		"hold": "6000", "mport": fmt.Sprint(proctest.FreePort(t, "udp")), "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"})
	ap.waitEvent(events.CallParked, 0, 10*time.Second)
	ap.waitEvent(events.CallTimedOut, 0, 10*time.Second)
	ret, _ := ap.waitEvent(events.CallReturned, 0, 10*time.Second)
	if !strings.Contains(ret.e.Reason, "sip:198.51.100.7 has no user part") {
		t.Errorf("returned with reason %q", ret.e.Reason)
	}
	if n := ap.count(events.CallRangBack); n != 0 {
		t.Errorf("%d ring-backs to a bare host", n)
	}
	if st, _ := ap.core.park.Park().Slot("704"); st.State != "parked" {
		t.Errorf("slot 704 %+v", st)
	}
	caller.MustPass(40 * time.Second)
}
