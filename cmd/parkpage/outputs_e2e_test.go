package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

// The setup console's output test against real peers: a multicast
// listener on lo, a SIP amplifier that answers (sipp), one that is busy
// (sipp) and a relay (gpiotest pin). Each output reports what happened to
// it, and testing one output pages that output only.
func TestOutputTestReportsEachOutput(t *testing.T) {
	t.Parallel()
	const group = "239.255.91.7"
	port := proctest.FreePort(t, "udp")
	heard := mcasttest.Record(t, group, port)
	rtpSink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rtpSink.Close()
	ampDir := filepath.Join("..", "..", "gateway", "output", "sipamp", "testdata")
	answering := runSipp(t, "", filepath.Join(ampDir, "amp.xml"), "", map[string]string{
		"rtp_port": fmt.Sprint(rtpSink.LocalAddr().(*net.UDPAddr).Port), "codec_pt": "0", "codec_name": "PCMU"})
	busy := runSipp(t, "", filepath.Join(ampDir, "busy.xml"), "", nil)
	ap := startInproc(t, fmt.Sprintf(`
park:
  lots: [{extension: "700", slots: 701-702}]
announce: {chime: none, lead_in: 100ms}
relays:
  amp-power: {pin: GPIO17, lead: 50ms, hold: 50ms}
zones:
  front:
    relays: [amp-power]
    outputs:
      - {type: rtp, group: %s, port: %d, codec: pcmu, interface: lo, loopback: true}
      - {type: sip, uri: %q, settle: 0s, after_code: 0s, answer_timeout: 5s}
      - {type: sip, uri: %q, answer_timeout: 5s}
`, group, port, answering.URI("page"), busy.URI("page")), "GPIO17")

	test := func(body string) api.OutputTestResult {
		t.Helper()
		res, err := http.Post(ap.api+"/api/v1/zones/front/test", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("test %s: %d %s", body, res.StatusCode, b)
		}
		var r api.OutputTestResult
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	statuses := func(r api.OutputTestResult) string {
		var s []string
		for _, o := range r.Outputs {
			s = append(s, fmt.Sprintf("%s=%s", o.Output, o.Status))
		}
		return strings.Join(s, " ")
	}

	r := test(`{"text": "Testing the front office."}`)
	want := "front/outputs[0]=sent front/outputs[1]=answered front/outputs[2]=busy front/relays=pulsed"
	if got := statuses(r); got != want {
		t.Errorf("zone test:\n got %s\nwant %s\n%+v", got, want, r)
	}
	if r.Reason != "done" || r.Text != "Testing the front office." {
		t.Errorf("page %s ended %q, text %q", r.Page, r.Reason, r.Text)
	}
	if n := len(heard.Packets()); n < 50 {
		t.Errorf("the multicast listener heard %d packets", n)
	}
	// The relay switches off after its hold (50 ms) once the page ended.
	runtest.WaitFor(t, "the relay off after the test", 10*time.Second, func() bool { return !bool(ap.pins["GPIO17"].Read()) })
	answering.MustPass(30 * time.Second)
	busy.MustPass(30 * time.Second)

	// One output: only it plays (and the zone's relays switch).
	before := len(heard.Packets())
	r = test(`{"output": 0, "tone": true}`)
	if got := statuses(r); got != "front/outputs[0]=sent front/relays=pulsed" {
		t.Errorf("one-output test: %s", got)
	}
	if n := len(heard.Packets()) - before; n < 10 {
		t.Errorf("the tone reached the listener in %d packets", n)
	}

	// A bad output index and an unknown zone are refused, naming the field.
	res, _ := http.Post(ap.api+"/api/v1/zones/front/test", "application/json", strings.NewReader(`{"output": 5}`))
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("output 5 of 3: %d", res.StatusCode)
	}
	res, _ = http.Post(ap.api+"/api/v1/zones/nowhere/test", "application/json", strings.NewReader(`{}`))
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("unknown zone: %d", res.StatusCode)
	}
}
