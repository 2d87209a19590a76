package browsertest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// The Setup and Test outputs pages against the real binary: set a zone's
// RTP output (interface lo) and a slot label in the forms, save, see the
// problem of a bad value at its field (nothing written), fix it and save
// (file written with its comments, previous version kept, running config
// reloaded), then test the zone (a multicast listener on lo receives the
// page at the port the form set) and hear the slot's announcement in the
// zone's codec. An uploaded config with a problem is refused.
func TestConsoleSetupAndTestOutputs(t *testing.T) {
	t.Parallel()
	const pw = "installer-pass"
	const group = "239.255.90.3"
	oldPort := proctest.FreePort(t, "udp")
	port := proctest.FreePort(t, "udp")
	heard := mcasttest.Record(t, group, port)
	ap := startAppliance(t, fmt.Sprintf(`
http: {password_hash: %q}
park:
  lots:
    - extension: "700" # the park key
      slots: 701-703
      label: Front
      announce: {zones: [front]}
announce:
  chime: none
  lead_in: 100ms
zones:
  # The front office ceiling speakers.
  front:
    description: Front office
    outputs:
      - {type: rtp, group: %s, port: %d, codec: pcmu, interface: lo, loopback: true}
`, hashPassword(t, pw), group, oldPort))
	ctx := newBrowser(t, 3*time.Minute)
	login(t, ctx, ap.api, pw)

	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	waitJS := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(90*time.Second))); err != nil {
			t.Fatalf("%s (%s): %v", what, expr, err)
		}
	}
	// shot takes the screenshots from the top of the page (the save
	// scrolls to the first problem).
	shot := func(name string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0), true`)); err != nil {
			t.Fatal(err)
		}
		screenshot(t, ctx, name)
	}
	input := func(key string) string { return fmt.Sprintf(`.field[data-pstr=%q] .cfg`, key) }
	typeInto := func(key, v string) {
		t.Helper()
		do("find "+key, chromedp.WaitVisible(input(key)))
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(e => (e.value = '', true))(document.querySelector(%q))`, input(key)))); err != nil {
			t.Fatalf("clear %s: %v", key, err)
		}
		do("type "+key, chromedp.SendKeys(input(key), v))
	}

	do("open Setup", chromedp.Navigate(ap.api+"/setup"), chromedp.WaitVisible(`#setup.ready .slots`))
	path, err := chromedp.Run(ctx, chromedp.AttributeValue(`#setup`, "data-path"))
	if err != nil || !path.Exists {
		t.Fatalf("config path on the page: %v", err)
	}
	original, err := os.ReadFile(path.Value)
	if err != nil {
		t.Fatal(err)
	}
	shot("setup-park")

	// A slot label, and a port no UDP port can be.
	typeInto("park.slots.702.label", "Sales")
	do("open Zones", chromedp.Click(`.setup-nav a[href="#zones"]`))
	typeInto("zones.front.outputs[0].port", "70000")
	typeInto("zones.front.align_wait", "45s") // longer than a zone may wait
	if n := text(`#savebar-text`); n != "3 unsaved changes" {
		t.Errorf("save bar says %q", n)
	}
	shot("setup-zones")
	do("save", chromedp.Click(`#save`))
	badField := `.field.field-error[data-pstr="zones.front.outputs[0].port"] .field-msg`
	do("the problem at the port field", chromedp.WaitVisible(badField))
	if msg := text(badField); !strings.HasPrefix(msg, "70000 is not a UDP port") {
		t.Errorf("message at the port field: %q", msg)
	}
	if b := text(`#setup-banner`); !strings.Contains(b, "Not saved") {
		t.Errorf("banner %q", b)
	}
	waitField := `.field.field-error[data-pstr="zones.front.align_wait"] .field-msg`
	if msg := text(waitField); !strings.HasPrefix(msg, "45s is out of range 250ms-30s") {
		t.Errorf("message at the align_wait field: %q", msg)
	}
	if n := text(`.setup-nav a[href="#zones"] .count`); n != "2" {
		t.Errorf("zones tab counts %q problems", n)
	}
	shot("setup-error")
	if now, _ := os.ReadFile(path.Value); !bytes.Equal(now, original) {
		t.Errorf("a refused save changed the file:\n%s", now)
	}

	// Fixed: saved, applied, comments and the previous version kept.
	typeInto("zones.front.outputs[0].port", fmt.Sprint(port))
	typeInto("zones.front.align_wait", "1s")
	// The zone favours latency over its outputs starting in step.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`(e => (e.value = 'latency', e.dispatchEvent(new Event('change', {bubbles: true})), true))(document.querySelector(%q))`, input("zones.front.align")))); err != nil {
		t.Fatalf("choose align: latency: %v", err)
	}
	do("save again", chromedp.Click(`#save`), chromedp.WaitVisible(`#setup-banner .alert-ok`))
	if b := text(`#setup-banner`); !strings.Contains(b, "Saved and applied") || !strings.Contains(b, path.Value+".prev") {
		t.Errorf("banner after the save: %q", b)
	}
	saved, _ := os.ReadFile(path.Value)
	for _, want := range []string{"# The front office ceiling speakers.", "# the park key", fmt.Sprintf("port: %d", port), "label: Sales", "align: latency", "align_wait: 1s"} {
		if !bytes.Contains(saved, []byte(want)) {
			t.Errorf("saved config lacks %q:\n%s", want, saved)
		}
	}
	if prev, err := os.ReadFile(path.Value + ".prev"); err != nil || !bytes.Equal(prev, original) {
		t.Errorf("previous version (%v):\n%s", err, prev)
	}
	shot("setup-saved")

	// Test the zone: the page goes out on the port just saved.
	do("open Test outputs", chromedp.Navigate(ap.api+"/test"), chromedp.WaitVisible(`.zone-test[data-zone="front"]`))
	do("test the zone", chromedp.Click(`.zone-test[data-zone="front"] .test-zone`))
	waitJS("the RTP output's result", `document.querySelector('tr[data-name="front/outputs[0]"]').dataset.status === 'sent'`)
	heard.Wait(t, 50, 30*time.Second)
	if s := text(`.zone-test[data-zone="front"] .zone-test-summary`); !strings.Contains(s, "1 of 1 went out") {
		t.Errorf("test summary %q", s)
	}

	// Hear slot 702 as the zone hears it: its new label, in G.711 (8 kHz).
	do("hear slot 702", chromedp.SetValue(`#hear-what`, "slot:702"), chromedp.Click(`#hear-form button[type=submit]`))
	waitJS("the player loaded the announcement", `document.getElementById('hear-audio').duration > 0.5`)
	rate, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch('/api/v1/hear?slot=702').then(r => r.arrayBuffer()).then(b => new DataView(b).getUint32(24, true))`, chromedp.EvalAwaitPromise))
	if err != nil || rate != 8000 {
		t.Errorf("hear slot 702: %d Hz (%v), want the zone's pcmu at 8000", rate, err)
	}
	shot("test-outputs")

	// An uploaded config with a problem replaces nothing.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("park:\n  lots:\n    - {extension: \"700\", slots: 701-703, timeout: 0s}\n"), 0o644)
	do("upload a bad config", chromedp.Navigate(ap.api+"/setup#files"), chromedp.WaitVisible(`#upload-file`),
		chromedp.SetUploadFiles(`#upload-file`, []string{bad}), chromedp.Click(`#upload-save`), chromedp.WaitVisible(`#upload-result .alert-error`))
	if r := text(`#upload-result`); !strings.Contains(r, "park.lots[0].timeout") || !strings.Contains(r, "refused") {
		t.Errorf("upload result %q", r)
	}
	if now, _ := os.ReadFile(path.Value); !bytes.Equal(now, saved) {
		t.Errorf("a refused upload changed the file:\n%s", now)
	}
	shot("setup-upload-refused")
}
