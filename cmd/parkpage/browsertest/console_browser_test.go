package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
)

const sippDir = repoRoot + "/park/testdata/sipp/"

// sipp runs a sipp UAC scenario against the appliance (caller 2065550100,
// parker 201 where the scenario has one).
func (ap *appliance) sipp(t *testing.T, scenario, service string, keys map[string]string) *sipptest.Sipp {
	t.Helper()
	k := map[string]string{"from": "2065550100", "parker": "201@127.0.0.1", "mport": fmt.Sprint(proctest.FreePort(t, "udp")), "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"}
	for n, v := range keys {
		k[n] = v
	}
	if !strings.Contains(scenario, "/") {
		scenario = filepath.Join(sippDir, scenario)
	}
	return sipptest.Start(t, sipptest.Options{Scenario: scenario, Target: ap.sip, Service: service,
		Timeout: 60 * time.Second, Keys: k, Args: []string{"-mp", fmt.Sprint(proctest.FreePort(t, "udp"))}})
}

// do runs browser actions, failing the test with what it was doing.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JS expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll waits until the JS expression is true.
func poll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr)); err != nil {
		t.Fatalf("%s (waiting for %s): %v", what, expr, err)
	}
}

// waitSecs parses a lamp's wait ("1:05", "1:02:03") into seconds.
func waitSecs(s string) int {
	n := 0
	for _, p := range strings.Split(strings.TrimSpace(s), ":") {
		v, err := strconv.Atoi(p)
		if err != nil {
			return -1
		}
		n = n*60 + v
	}
	return n
}

func lampSel(slot string) string { return fmt.Sprintf(`.lamp[data-slot="%s"]`, slot) }

// apiSlotState is a slot's state as GET /api/v1/slots says (basic auth).
func apiSlotState(t *testing.T, ap *appliance, pw, slot string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", ap.api+"/api/v1/slots", nil)
	req.SetBasicAuth("admin", pw)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Slots []struct{ Slot, State string }
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("GET /api/v1/slots: %d %v", res.StatusCode, err)
	}
	for _, s := range body.Slots {
		if s.Slot == slot {
			return s.State
		}
	}
	return ""
}

// The console end to end in headless Chromium against the real binary with
// sipp peers: the login page refuses a wrong password and takes the right
// one; a cross-site form and a script POST without the JSON Content-Type
// are refused; a call parked with sipp shows on the front desk with a wait
// time counting up; a call whose ring-back cannot be made shows returned,
// red; each front-desk action works on a real call: move it to another
// slot, hang it up, ring it to an extension (a sipp phone behind sip.pbx
// answers); a pickup (sipp dials the slot) clears the lamp; and a call
// parked while the browser's connection was cut shows once it reconnects
// (the board reloads, it does not rely on events since). Screenshots of
// the login page and the front desk at desktop and 768 px width are kept.
func TestConsoleLoginAndFrontDesk(t *testing.T) {
	t.Parallel()
	const pw = "front-desk-pass"
	// The "PBX" behind which extension 202 answers the desk's ring (its
	// sipp starts just before the ring).
	phonePort := proctest.FreePort(t, "udp")
	ap := startApplianceSIP(t, fmt.Sprintf("  pbx: \"sip:127.0.0.1:%d\"\n", phonePort), fmt.Sprintf(`
http: {password_hash: %q}
park:
  lots:
    - {extension: "700", slots: 701-706, label: Reception, find_slot: first, timeout: 10m}
    - {extension: "800", slots: 801-802, label: Warehouse, find_slot: first, timeout: 2s}
`, hashPassword(t, pw)))
	// The browser reaches the appliance through a proxy the test can cut.
	proxy := newCutProxy(t, strings.TrimPrefix(ap.api, "http://"))
	base := proxy.URL()
	ctx := newBrowser(t, 4*time.Minute)

	// Not logged in: the front desk sends the browser to the login page.
	do(t, ctx, "front desk without a session", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#password`))
	if u := eval[string](t, ctx, `location.pathname + location.search`); u != "/login?next=%2F" {
		t.Errorf("redirected to %s", u)
	}
	// A wrong password: refused, said on the page, still on the login page.
	do(t, ctx, "wrong password",
		chromedp.SendKeys(`#password`, "not-the-password"),
		chromedp.Click(`form.login button[type=submit]`),
		chromedp.WaitVisible(`#login-error`))
	if msg := eval[string](t, ctx, `document.querySelector('#login-error').textContent`); !strings.Contains(msg, "Wrong user name or password") {
		t.Errorf("login error %q", msg)
	}
	screenshot(t, ctx, "login")
	login(t, ctx, base, pw)
	poll(t, ctx, "the board's live stream", `document.querySelector('#conn').classList.contains('live')`)

	// A call parked with sipp shows on the board, its wait counting up.
	// (It waits up to 120 s for the BYE that ends it after the pickup.)
	caller := ap.sipp(t, "testdata/park_wait_long.xml", "700", nil)
	poll(t, ctx, "parked call on the board", `document.querySelector('`+lampSel("701")+`')?.dataset.state === 'parked'`)
	lamp := eval[string](t, ctx, `document.querySelector('`+lampSel("701")+`').innerText`)
	for _, want := range []string{"ACME Supply", "2065550100", "Parked by 201"} {
		if !strings.Contains(lamp, want) {
			t.Errorf("lamp 701 %q lacks %q", lamp, want)
		}
	}
	if strings.Contains(lamp, "sip:") {
		t.Errorf("lamp 701 shows a SIP URI: %q", lamp)
	}
	if title := eval[string](t, ctx, `document.title`); title != "(1) Front desk · parkpage" {
		t.Errorf("window title %q: a background tab should count the waiting calls", title)
	}
	first := waitSecs(eval[string](t, ctx, `document.querySelector('`+lampSel("701")+` .lamp-wait').textContent`))
	poll(t, ctx, "the wait counts up", fmt.Sprintf(`(() => { const [m, s] = document.querySelector('%s .lamp-wait').textContent.split(':').map(Number); return m*60+s >= %d })()`, lampSel("701"), first+2))

	// A call in the warehouse lot (timeout 2 s) whose parker has no
	// extension to ring back: back in its slot, red.
	stray := ap.sipp(t, "testdata/park_wait_long.xml", "800", map[string]string{"parker": "127.0.0.1", "from": "4255550142"})
	poll(t, ctx, "returned call, red", `(() => { const l = document.querySelector('`+lampSel("801")+`'); return l?.dataset.state === 'returned' && l.classList.contains('age-red') })()`)
	if c := eval[string](t, ctx, `document.querySelector('`+lampSel("701")+`').className`); !strings.Contains(c, "age-ok") {
		t.Errorf("lamp 701 after a few seconds: %q, want age-ok", c)
	}
	screenshot(t, ctx, "frontdesk")

	// Move 701 to 703.
	do(t, ctx, "move 701 to 703",
		chromedp.Click(lampSel("701")+` button[data-action="move"]`),
		chromedp.WaitVisible(`#act-move[open] select`),
		chromedp.SetValue(`#move-to`, "703"),
		chromedp.Click(`#act-move button[value="ok"]`))
	poll(t, ctx, "moved call on the board", `document.querySelector('`+lampSel("703")+`')?.dataset.state === 'parked' && document.querySelector('`+lampSel("701")+`').dataset.state === 'free'`)

	// CSRF: a page on another origin posting a form to the appliance (the
	// browser sends the session cookie: same site) is refused, and so is a
	// same-origin script POST to the JSON API without its Content-Type.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" enctype="text/plain" action="%s/api/v1/slots/703/hangup"><input name="{}" value=""></form><script>document.getElementById('f').submit()</script>`, base)
	}))
	defer evil.Close()
	do(t, ctx, "cross-site form", chromedp.Navigate(evil.URL))
	poll(t, ctx, "cross-site form refused", `location.href.startsWith('`+base+`') && document.body.innerText.includes('cross-site request refused')`)
	do(t, ctx, "back to the front desk", chromedp.Navigate(base+"/"), chromedp.WaitVisible(lampSel("703")))
	if code := eval[int](t, ctx, `fetch('/api/v1/slots/703/hangup', {method: 'POST', body: '{}'}).then(r => r.status)`); code != http.StatusUnsupportedMediaType {
		t.Errorf("same-origin POST without Content-Type: application/json: %d, want 415", code)
	}
	if st := eval[string](t, ctx, `document.querySelector('`+lampSel("703")+`').dataset.state`); st != "parked" {
		t.Fatalf("after the refused requests slot 703 is %q", st)
	}

	// A phone picks it up (sipp dials the slot, talks a second and hangs
	// up): the lamp goes free.
	retriever := ap.sipp(t, "retrieve_hangup.xml", "703", map[string]string{"from": "205", "hold": "1000"})
	poll(t, ctx, "picked-up call leaves the board", `document.querySelector('`+lampSel("703")+`').dataset.state === 'free'`)
	caller.MustPass(60 * time.Second)
	retriever.MustPass(30 * time.Second)

	// Hang up the warehouse call from the desk: its caller gets a BYE.
	do(t, ctx, "hang up 801",
		chromedp.Click(lampSel("801")+` button[data-action="hangup"]`),
		chromedp.WaitVisible(`#act-hangup[open]`),
		chromedp.Click(`#act-hangup button[value="ok"]`))
	poll(t, ctx, "hung-up call leaves the board", `document.querySelector('`+lampSel("801")+`').dataset.state === 'free'`)
	stray.MustPass(30 * time.Second)

	// The connection drops; a call parks meanwhile; once the browser is
	// back the board shows it (no event for it ever reached the page).
	proxy.cut()
	poll(t, ctx, "the board sees the connection gone", `document.querySelector('#conn').classList.contains('down')`)
	caller = ap.sipp(t, "testdata/park_wait_long.xml", "700", nil)
	for apiSlotState(t, ap, pw, "701") != "parked" {
		select {
		case <-caller.Done():
			t.Fatalf("the caller ended before it was parked:\n%s", caller.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if st := eval[string](t, ctx, `document.querySelector('`+lampSel("701")+`').dataset.state`); st != "free" {
		t.Fatalf("slot 701 %q on a board that is cut off", st)
	}
	proxy.restore()
	poll(t, ctx, "the call parked during the outage, after the reconnect", `document.querySelector('#conn').classList.contains('live') && document.querySelector('`+lampSel("701")+`').dataset.state === 'parked'`)

	// Ring it to extension 202 (through sip.pbx): a bad target is refused
	// at the field; 202 answers, gets the call and hangs up after a while.
	do(t, ctx, "a bad extension is refused at the field",
		chromedp.Click(lampSel("701")+` button[data-action="ring"]`),
		chromedp.WaitVisible(`#act-ring[open] input`),
		chromedp.SendKeys(`#ring-to`, "sip:evil@example.com"),
		chromedp.Click(`#act-ring button[value="ok"]`),
		chromedp.WaitVisible(`#act-ring .field-msg`))
	if msg := eval[string](t, ctx, `document.querySelector('#act-ring .field-msg').textContent`); !strings.Contains(msg, "not an extension or number") {
		t.Errorf("bad ring target: %q", msg)
	}
	phone := sipptest.Start(t, sipptest.Options{Scenario: "testdata/uas_answer_hangup.xml", Port: phonePort, Timeout: 90 * time.Second,
		Keys: map[string]string{"from": "202", "mport": fmt.Sprint(proctest.FreePort(t, "udp"))}, Args: []string{"-mp", fmt.Sprint(proctest.FreePort(t, "udp"))}})
	do(t, ctx, "ring 202",
		chromedp.SetValue(`#ring-to`, "202"),
		chromedp.Click(`#act-ring button[value="ok"]`))
	poll(t, ctx, "answered ring takes the call off the board", `document.querySelector('`+lampSel("701")+`').dataset.state === 'free'`)
	phone.MustPass(30 * time.Second)
	caller.MustPass(30 * time.Second)
}
