package browsertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/history"
	"github.com/parkpage/parkpage/internal/history/historytest"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
)

// seedWeek writes the park history of a scripted week (historytest: the
// real park server on a fake clock) ending an hour ago into the state
// directory.
func seedWeek(t *testing.T) func(string) {
	return func(dir string) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		clk := clocktest.New(time.Now().Add(-7*24*time.Hour + time.Hour).Truncate(time.Minute))
		st, err := history.Open(dir, history.Options{Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		_, sub := historytest.ScriptWeek(t, clk)
		for {
			select {
			case e := <-sub.C():
				if e.Type == events.Lost {
					t.Fatal("lost events")
				}
				st.Record(e)
				continue
			default:
			}
			break
		}
		st.Close()
	}
}

// The usage report after a scripted week of parks: the per-slot table,
// the four findings, the CSV download; the front desk's recent-parks
// panel shows the last parks of the week.
func TestReportAfterScriptedWeek(t *testing.T) {
	t.Parallel()
	const pw = "report-pass-1"
	ap := startAppliance(t, historytest.Users+fmt.Sprintf("http: {password_hash: %q}\n", hashPassword(t, pw))+historytest.Park, seedWeek(t))
	ctx := newBrowser(t, 300*time.Second)
	login(t, ctx, ap.api, pw)

	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#recent-list li.recent[data-slot="701"]`)); err != nil {
		t.Fatalf("recent parks on the front desk: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(ap.api+"/report?days=7"), chromedp.WaitVisible(`#findings`)); err != nil {
		t.Fatalf("report page: %v", err)
	}
	kinds, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#findings .finding[data-kind]')].map(e => e.dataset.kind)`, chromedp.EvalAsValue))
	if err != nil {
		t.Fatal(err)
	}
	row702 := textOf(t, ctx, `tr[data-slot="702"]`)
	total := textOf(t, ctx, `#total-parks`)
	if strings.Join(kinds, ",") != "label_drift,queue,ring_backs,too_many_slots" {
		t.Errorf("findings %v", kinds)
	}
	if total != "385" {
		t.Errorf("total parks %q", total)
	}
	for _, want := range []string{"702", "Warehouse", "70", "0:20", "1:35", "21", "30%"} {
		if !strings.Contains(row702, want) {
			t.Errorf("row 702 %q lacks %q", row702, want)
		}
	}
	screenshot(t, ctx, "report")

	// The same report as JSON and CSV, for scripts (bearer-less here: a
	// session cookie is the browser's; the API answers with it too).
	csv, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch('/api/v1/report.csv?days=7').then(r => r.text())`, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(csv, "700,702,Warehouse,7,70,20,95,70,21,21,0") {
		t.Errorf("csv:\n%s", csv)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(ap.api+"/"), chromedp.WaitVisible(`#recent-list li.recent`)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "frontdesk-recent")
}

// The Phones page: adding a phone (a bad MAC refused at its field, then
// saved), the phone fetching its file over HTTP as a Yealink does, and
// the generator showing a Poly file with its unconfirmed settings.
func TestPhonesPage(t *testing.T) {
	t.Parallel()
	const pw = "phones-pass-1"
	ap := startAppliance(t, fmt.Sprintf(`  users:
    "2001": {password: park-account-pw, display: Reception}
http: {password_hash: %q}
park:
  lots:
    - {extension: "700", slots: 701-705, announce: {zones: [all]}}
  slots:
    "701": {label: Warehouse}
    "702": {label: Showroom}
pages:
  "801": {zones: [warehouse]}
  "804": {zones: [all]}
zones:
  warehouse:
    outputs: [{type: rtp, group: 239.255.91.1, port: 10001, codec: pcmu, interface: lo}]
  all:
    outputs:
      - {type: rtp, group: 239.255.91.4, port: 10004, codec: pcmu, interface: lo}
      - {type: polycom, group: 239.255.91.116, port: 5001, channel: 29, codec: pcmu, interface: lo}
`, hashPassword(t, pw)))
	ctx := newBrowser(t, 300*time.Second)
	login(t, ctx, ap.api, pw)
	if err := chromedp.Do(ctx, chromedp.Navigate(ap.api+"/phones"), chromedp.WaitVisible(`#add-phone`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(`#mac`, "80:5e:c0:12:34"),
		chromedp.SendKeys(`#name`, "Reception desk"),
		chromedp.SetValue(`#model`, "yealink-t54w"),
		chromedp.Click(`#add-phone input[name=sidecar]`),
		chromedp.Click(`#add-phone input[name=zones][value=all]`),
		chromedp.Click(`#add-phone button[type=submit]`),
		chromedp.WaitVisible(`#mac-msg`),
	); err != nil {
		t.Fatalf("bad MAC: %v", err)
	}
	msg := textOf(t, ctx, `#mac-msg`)
	invalid, err := chromedp.Run(ctx, chromedp.AttributeValue(`#mac`, "aria-invalid"))
	if err != nil || !strings.Contains(msg, "Not a MAC address") || invalid.Value != "true" {
		t.Fatalf("MAC error %q (aria-invalid %+v) %v", msg, invalid, err)
	}
	screenshot(t, ctx, "phones-error")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#mac`, "80:5E:C0:12:34:56"),
		chromedp.Click(`#add-phone button[type=submit]`),
		chromedp.WaitVisible(`#saved`),
		chromedp.WaitVisible(`#phones tr[data-mac="805ec0123456"]`),
	); err != nil {
		t.Fatalf("save: %v", err)
	}
	pass, yurl := textOf(t, ctx, `#prov-password`), textOf(t, ctx, `#yealink-url`)

	// The phone, pointed at the URL with the password, asks for its
	// model's common file and then its own, as a T54W does.
	get := func(path, pass string) (int, string) {
		req, _ := http.NewRequest("GET", strings.TrimSpace(yurl)+path, nil)
		req.SetBasicAuth("provision", pass)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("y000000000096.cfg", pass); code != 200 {
		t.Fatalf("common file: %d", code)
	}
	code, cfg := get("805ec0123456.cfg", pass)
	for _, want := range []string{"account.2.user_name = 2001", "account.2.password = park-account-pw", "linekey.6.type = 10",
		"expansion_module.1.key.1.value = 701", "expansion_module.1.key.1.label = Warehouse", "linekey.8.label = Pg All",
		"multicast.listen_address.1.ip_address = 239.255.91.4:10004", "## UNCONFIRMED"} {
		if code != 200 || !strings.Contains(cfg, want) {
			t.Fatalf("phone file (%d) lacks %q:\n%s", code, want, cfg)
		}
	}
	if code, _ := get("805ec0123456.cfg", "wrong"); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
	if code, _ := get("805ec0999999.cfg", pass); code != 404 {
		t.Fatalf("unknown phone: %d", code)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(ap.api+"/phones"), chromedp.WaitVisible(`#phones tr[data-mac="805ec0123456"]`)); err != nil {
		t.Fatal(err)
	}
	if fetched := textOf(t, ctx, `#phones tr[data-mac="805ec0123456"]`); !strings.Contains(fetched, "ago from 127.0.0.1") {
		t.Errorf("last fetched: %q", fetched)
	}

	// The generator: a VVX 450 listening to zone all.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#gen-model`, "poly-vvx450"),
		chromedp.Click(`#generator input[name=zone][value=all]`),
		chromedp.Click(`#gen-show`),
		chromedp.WaitVisible(`#gen-output`),
	); err != nil {
		t.Fatalf("generator: %v", err)
	}
	out, unconfirmed := textOf(t, ctx, `#gen-output`), textOf(t, ctx, `#gen-unconfirmed`)
	for _, want := range []string{`reg.2.address="2001"`, `attendant.resourceList.1.address="701@127.0.0.1"`, `ptt.pageMode.group.4.label="All"`, "UNCONFIRMED"} {
		if !strings.Contains(out, want) {
			t.Errorf("generator output lacks %s", want)
		}
	}
	if !strings.Contains(unconfirmed, "unconfirmed") {
		t.Errorf("unconfirmed count %q", unconfirmed)
	}
	// From the top: the anchor scrolled the page to the generator.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void]("window.scrollTo(0, 0)")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "phones")
}

// The Status page with a phone registered (sipp, digest auth) and a BLF
// key watching slot 702 (sipp SUBSCRIBE).
func TestStatusPage(t *testing.T) {
	t.Parallel()
	const pw = "status-pass-1"
	ap := startAppliance(t, fmt.Sprintf(`  users:
    "1001": {password: desk-phone-pw}
http: {password_hash: %q}
park:
  lots:
    - {extension: "700", slots: 701-703}
zones:
  lobby:
    outputs: [{type: rtp, group: 239.255.92.1, port: 10001, codec: pcmu, interface: lo}]
`, hashPassword(t, pw)))
	reg := sipptest.Start(t, sipptest.Options{Scenario: filepath.Join(repoRoot, "park/testdata/sipp/register.xml"), Target: ap.sip,
		Keys: map[string]string{"from": "1001", "contact_port": fmt.Sprint(proctest.FreePort(t, "udp"))}, Args: []string{"-au", "1001", "-ap", "desk-phone-pw"}})
	reg.MustPass(20 * time.Second)
	sipptest.Start(t, sipptest.Options{Scenario: filepath.Join(repoRoot, "park/testdata/sipp/subscribe.xml"), Target: ap.sip, Service: "702",
		Timeout: 120 * time.Second, Keys: map[string]string{"from": "1001"}})
	ctx := newBrowser(t, 300*time.Second)
	login(t, ctx, ap.api, pw)
	var regs, watched, version, outputs string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := chromedp.Do(ctx, chromedp.Navigate(ap.api+"/status"), chromedp.WaitVisible(`#system`)); err != nil {
			t.Fatal(err)
		}
		regs, watched, version, outputs = textOf(t, ctx, `#registrations`), textOf(t, ctx, `#watchers`), textOf(t, ctx, `#version`), textOf(t, ctx, `#outputs`)
		if strings.Contains(watched, "702") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(regs, "1001") || !strings.Contains(watched, "702") || !strings.Contains(watched, "1001") || version != "test" ||
		!strings.Contains(outputs, "239.255.92.1:10001") {
		t.Fatalf("status page: registrations %q, watchers %q, version %q, outputs %q", regs, watched, version, outputs)
	}
	logs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#logs .log-lines li').length`, chromedp.EvalAsValue))
	if err != nil || logs == 0 {
		t.Errorf("log lines: %d %v", logs, err)
	}
	screenshot(t, ctx, "status")
}

// textOf is the visible text of the first element matching sel.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}
