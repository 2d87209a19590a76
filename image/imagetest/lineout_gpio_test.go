package imagetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// siteWithRelay is testdata/qemu-site.yaml with a zone relay on the test
// image's simulated GPIO line RELAY0 (image/imagetest/gpiosim): the amd64
// image's own kernel has gpio-sim, the generic arm64 one does not, so the
// shared file names no relay.
func siteWithRelay(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "qemu-site.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "    description: the VM's line out\n"
	s := string(b)
	if !strings.Contains(s, anchor) {
		t.Fatalf("qemu-site.yaml lacks %q", anchor)
	}
	s = strings.Replace(s, anchor, anchor+"    relays: [zone_all]\n", 1)
	s += "\nrelays:\n  # gpiosim's simulated line; lead and hold as on a real box.\n  zone_all: { pin: RELAY0, lead: 400ms, hold: 800ms }\n"
	p := filepath.Join(t.TempDir(), "parkpage.yaml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// simState is gpiosim's GET /state.
type simState struct {
	Now     float64        `json:"now"`
	Values  map[string]int `json:"values"`
	Changes []struct {
		Line  string  `json:"line"`
		Value int     `json:"value"`
		At    float64 `json:"at"`
	} `json:"changes"`
}

func (v *vm) simURL(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", v.simPort, path) }

// gpioState reads gpiosim's state, waiting for it to answer (it creates
// the chip once parkpage runs).
func gpioState(t testing.TB, v *vm, wait time.Duration) simState {
	t.Helper()
	end := time.Now().Add(wait)
	for {
		res, err := (&http.Client{Timeout: 10 * time.Second}).Get(v.simURL("/state"))
		if err == nil {
			var st simState
			err = json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
			if err == nil && res.StatusCode == 200 {
				return st
			}
			err = fmt.Errorf("%s: %v", res.Status, err)
		}
		if time.Now().After(end) {
			t.Fatalf("gpiosim /state: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// zoneTest is POST /api/v1/zones/{zone}/test with the test token.
func zoneTest(v *vm, zone, body string) (int, string, error) {
	req, _ := http.NewRequest("POST", v.url("/api/v1/zones/"+zone+"/test"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), nil
}

// checkRelayAndLineOut runs on the booted test image (site config with
// the relay): a test tone page to zone "all" plays on the line out and
// pulses the relay, on during the page and off after; then a kill -9 of
// parkpage during a long page, after which the restarted parkpage drives
// the relay off.
func checkRelayAndLineOut(t *testing.T, v *vm) {
	st := gpioState(t, v, 2*time.Minute)
	if st.Values["RELAY0"] != 0 {
		t.Fatalf("RELAY0 on with no page playing: %+v", st)
	}
	// The test site has no park announcement: nothing paged yet.
	t.Logf("relay changes before the first page: %+v", st.Changes)

	before := st.Now
	code, body, err := zoneTest(v, "all", `{"tone": true}`)
	if err != nil || code != 200 {
		t.Fatalf("zone test: %d %v\n%s", code, err, body)
	}
	answered := gpioState(t, v, time.Minute).Now
	var res struct {
		Reason  string `json:"reason"`
		Outputs []struct {
			Type, Status, Detail string
			OK                   bool
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("zone test answer: %v\n%s", err, body)
	}
	for _, o := range res.Outputs {
		if !o.OK {
			t.Errorf("zone test: %s output %s: %s", o.Type, o.Status, o.Detail)
		}
	}
	t.Logf("zone test: %s", body)
	// The relay went on after the request and off after the page (its
	// hold may end after the API answered).
	var on, off float64
	deadline := time.Now().Add(30 * time.Second)
	for off == 0 {
		st = gpioState(t, v, time.Minute)
		on, off = 0, 0
		for _, c := range st.Changes {
			if c.Line != "RELAY0" || c.At < before {
				continue
			}
			if c.Value == 1 && on == 0 {
				on = c.At
			} else if c.Value == 0 && on != 0 {
				off = c.At
				break
			}
		}
		if off == 0 && time.Now().After(deadline) {
			t.Fatalf("RELAY0 did not go on and off again for the test page (on at %.3f): %+v", on, st.Changes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if off-on < 1 { // lead 400 ms + the chime (~1.3 s) + hold 800 ms
		t.Errorf("RELAY0 on for only %.3f s during a chime page", off-on)
	}
	fmt.Printf("amd64 relay (gpio-sim): on %.2f s after the test page was asked, on for %.2f s, off %.2f s after the API answered\n",
		on-before, off-on, off-answered)

	// kill -9 during a long page: the relay is on when parkpage dies; the
	// simulated chip keeps a released line's level like a Pi, so only the
	// restarted parkpage can drive it off.
	go zoneTest(v, "all", `{"text": "This is a long test page. It keeps the zone relay closed while the test kills the parkpage process with signal nine, and the restarted process must open it again."}`)
	deadline = time.Now().Add(2 * time.Minute)
	for gpioState(t, v, time.Minute).Values["RELAY0"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("RELAY0 not on within 2 min of the long page")
		}
		time.Sleep(100 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", v.simURL("/kill"), nil)
	kr, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("gpiosim /kill: %v", err)
	}
	kb, _ := io.ReadAll(kr.Body)
	kr.Body.Close()
	if kr.StatusCode != 200 {
		t.Fatalf("gpiosim /kill: %s\n%s", kr.Status, kb)
	}
	var kill struct {
		PID           int     `json:"pid"`
		NewPID        int     `json:"new_pid"`
		KilledAt      float64 `json:"killed_at"`
		StartedAt     float64 `json:"started_at"`
		OffAfter      float64 `json:"off_after_seconds"`
		OffAfterStart float64 `json:"off_after_start_seconds"`
	}
	if err := json.NewDecoder(bytes.NewReader(kb)).Decode(&kill); err != nil {
		t.Fatal(err)
	}
	if kill.NewPID == 0 || kill.NewPID == kill.PID {
		t.Errorf("RELAY0 went off but no new parkpage runs: %s", kb)
	}
	t.Logf("kill -9: %s", kb)
	// parkpage-guard watches parkpage (a pidfd) and drives its relays off
	// the moment it dies; gokrazy restarts parkpage only 1 s later (a
	// fixed sleep in its supervisor), whose relays.New drives them off
	// again first thing.
	if kill.OffAfter > 1 {
		t.Errorf("RELAY0 off %.2f s after kill -9 of parkpage, want within 1 s", kill.OffAfter)
	}
	if kill.StartedAt == 0 {
		t.Errorf("no start time of the restarted parkpage: %s", kb)
	}
	t.Logf("console: %s", v.consoleMatch(regexp.MustCompile(`(parkpage-guard: relay watch: parkpage \(pid \d+\) died; 1 relays driven off[^\n]*)`), time.Minute))
	fmt.Printf("amd64 relay after kill -9 of parkpage (during a page): off %.2f s after the kill (parkpage-guard); gokrazy restarted parkpage %.2f s after the kill\n",
		kill.OffAfter, kill.StartedAt-kill.KilledAt)
	took := v.waitHealthy(5 * time.Minute)
	t.Logf("healthy again after the kill (%v since QEMU start)", took.Round(time.Second))
	if st := gpioState(t, v, time.Minute); st.Values["RELAY0"] != 0 {
		t.Errorf("RELAY0 on again after the restart: %+v", st)
	}
}

// checkWAV reads QEMU's line-out recording: the two-tone chime of the
// pages played on the VM's sound card must be in it.
func checkWAV(t *testing.T, path string) {
	a, err := readWAV(path)
	if err != nil {
		t.Fatalf("line-out recording %s: %v", path, err)
	}
	ws := a.analyse()
	audible := float64(len(ws)) * 0.05
	e5, c5, ok := chimeAt(ws)
	if !ok {
		var peaks []string
		for i, w := range ws {
			if i < 60 {
				peaks = append(peaks, fmt.Sprintf("%.2fs:%.0fHz/%.2f/%.0fdB", w.at, w.peak, w.share, w.dbfs))
			}
		}
		t.Fatalf("no two-tone chime in the line-out recording (%.1f s recorded at %d Hz, %.1f s audible): %s",
			float64(len(a.samples))/float64(a.rate), a.rate, audible, strings.Join(peaks, " "))
	}
	fmt.Printf("amd64 line out (HDA, QEMU wav): chime E5 %.1f Hz (%.0f%% of the energy) at %.2f s, C5 %.1f Hz (%.0f%%) at %.2f s, level %.1f dBFS; %.1f s audible of %.1f s recorded\n",
		e5.peak, 100*e5.share, e5.at, c5.peak, 100*c5.share, c5.at, e5.dbfs, audible, float64(len(a.samples))/float64(a.rate))
}
