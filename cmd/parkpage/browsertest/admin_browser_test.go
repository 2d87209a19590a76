// Package browsertest drives parkpage's admin page in a real browser
// (headless Chromium through chromedp). It is a module of its own so that
// chromedp and its dependencies stay out of the requirements of the main
// module, which a user of parkpage downloads; `make test` runs it. It
// tests the parkpage binary as built from the main module (a replace
// directive points there), with sipp as the caller and a multicast
// receiver on lo as the zone.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
)

// repoRoot is the main module's directory.
const repoRoot = "../../.."

// binary is parkpage, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parkpage-browsertest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "parkpage")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=test", "-o", binary, "./cmd/parkpage")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build parkpage: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if artefacts != "" {
		fmt.Fprintf(os.Stderr, "browser test artefacts (screenshots): %s\n", artefacts)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// appliance is a parkpage process on loopback.
type appliance struct {
	api string // http://127.0.0.1:port
	sip string // 127.0.0.1:port
}

// startAppliance runs parkpage on config y (SIP listener, RTP ports,
// trusted loopback and the state directory added) until it says it runs.
// seed functions fill the state directory first.
func startAppliance(t *testing.T, y string, seed ...func(stateDir string)) *appliance {
	t.Helper()
	return startApplianceSIP(t, "", y, seed...)
}

// startApplianceSIP is startAppliance with more lines for the sip section
// (indented by two spaces, each ending in a newline).
func startApplianceSIP(t *testing.T, sipExtra, y string, seed ...func(stateDir string)) *appliance {
	t.Helper()
	dir := t.TempDir()
	sipPort := proctest.FreePort(t, "udp")
	rtpBase := 10000 + (sipPort % 200 * 100) // below the ephemeral ports FreePort hands out
	y = fmt.Sprintf("log: {level: debug}\nsip:\n  listen: [{transport: udp, address: \"127.0.0.1:%d\"}]\n  trusted: [127.0.0.0/8]\n  rtp_ports: %d-%d\n",
		sipPort, rtpBase, rtpBase+99) + sipExtra + y
	path := filepath.Join(dir, "parkpage.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range seed {
		f(filepath.Join(dir, "state"))
	}
	p := proctest.Start(t, binary, "run", "-config", path, "-state-dir", filepath.Join(dir, "state"), "-http", "127.0.0.1:0")
	m := p.WaitLine(t, `parkpage running.* http=(http://127\.0\.0\.1:[0-9]+)/`, 30*time.Second)
	return &appliance{api: m[1], sip: fmt.Sprintf("127.0.0.1:%d", sipPort)}
}

// parkCall is a caller blind-transferred by 201 to ext (sipp, park.xml),
// staying parked for hold before hanging up.
func (ap *appliance) parkCall(t *testing.T, ext string, hold time.Duration) *sipptest.Sipp {
	t.Helper()
	return sipptest.Start(t, sipptest.Options{
		Scenario: filepath.Join(repoRoot, "park/testdata/sipp/park.xml"),
		Target:   ap.sip,
		Service:  ext,
		Timeout:  60 * time.Second,
		Keys: map[string]string{"from": "2065550100", "parker": "201@127.0.0.1", "hold": fmt.Sprint(hold.Milliseconds()),
			"mport": fmt.Sprint(proctest.FreePort(t, "udp")), "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"},
		Args: []string{"-mp", fmt.Sprint(proctest.FreePort(t, "udp"))},
	})
}

// The admin page in a real browser (headless Chromium): the slot board
// shows a call parked over SIP, live events arrive over SSE, and the test
// announcement form pages a zone that a multicast listener hears.
func TestAdminPageInBrowser(t *testing.T) {
	t.Parallel()
	browser := ""
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Fatal("no Chromium (apt-get install chromium; make test installs it)")
	}
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
    description: Front office
    outputs:
      - {type: rtp, group: 239.255.90.1, port: %d, codec: pcmu, interface: lo, loopback: true}
`, port)
	l := mcasttest.Record(t, "239.255.90.1", port)
	ap := startAppliance(t, y)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("headless", "new"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute) // three browsers share the machine in make test
	defer cancel()

	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	if err := chromedp.Do(ctx,
		// The first admin page, now beside the console (its test form and
		// event log have no console page of their own yet).
		chromedp.Navigate(ap.api+"/classic"),
		chromedp.WaitVisible(`#slots tbody tr[data-slot="703"]`),
	); err != nil {
		t.Fatalf("load the admin page: %v", err)
	}
	status, zones := text(`#status`), text(`#zones tbody`)
	if !strings.Contains(status, "version test") || !strings.Contains(zones, "rtp 239.255.90.1") {
		t.Errorf("status %q, zones %q", status, zones)
	}

	// A call parked over SIP shows on the board (the SSE event refreshes it).
	caller := ap.parkCall(t, "700", 6000*time.Millisecond)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#slots tbody tr.parked[data-slot="701"]`)); err != nil {
		t.Fatalf("parked call on the board: %v", err)
	}
	row := text(`#slots tbody tr[data-slot="701"]`)
	if !strings.Contains(row, "ACME Supply") || !strings.Contains(row, "parked") {
		t.Errorf("board row %q", row)
	}

	// The test announcement form.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#text`, "Testing the front office"),
		chromedp.Click(`#announce button`),
	); err != nil {
		t.Fatalf("submit the form: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#result').textContent.startsWith('queued')`)); err != nil {
		t.Fatalf("form result: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#log').textContent.includes('page.ended')`)); err != nil {
		t.Fatalf("page.ended in the event log: %v", err)
	}
	log := text(`#log`)
	if n := len(l.Packets()); n < 50 {
		t.Errorf("the zone heard %d packets of the form's page", n)
	}
	if !strings.Contains(log, "call.parked 701") || !strings.Contains(log, "page.started") {
		t.Errorf("event log %q", log)
	}
	caller.MustPass(20 * time.Second)
}
