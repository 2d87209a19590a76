package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

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
	port := freePort(t, "udp")
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
	l := listen(t, "239.255.90.1", port)
	ap := startInproc(t, y)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("headless", "new"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
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
		chromedp.Navigate(ap.api+"/"),
		chromedp.WaitVisible(`#slots tbody tr[data-slot="703"]`),
	); err != nil {
		t.Fatalf("load the admin page: %v", err)
	}
	status, zones := text(`#status`), text(`#zones tbody`)
	if !strings.Contains(status, "version test") || !strings.Contains(zones, "rtp 239.255.90.1") {
		t.Errorf("status %q, zones %q", status, zones)
	}

	// A call parked over SIP shows on the board (the SSE event refreshes it).
	caller := ap.parkCall("700", 6000*time.Millisecond)
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
	if n := len(l.snapshot()); n < 50 {
		t.Errorf("the zone heard %d packets of the form's page", n)
	}
	if !strings.Contains(log, "call.parked 701") || !strings.Contains(log, "page.started") {
		t.Errorf("event log %q", log)
	}
	caller.wait(20 * time.Second)
}
