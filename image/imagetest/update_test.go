package imagetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAMD64Update updates a running box over HTTP with the admin
// credential (`parkpage update`, the one-line command of the README) to a
// rebuilt image: the box reboots into it for a trial boot, the guard
// commits it once parkpage is healthy. Then a deliberately broken update
// (parkpage exits at once with a usage error) never becomes healthy: the
// guard reboots and the box runs the committed version again, which also
// proves the first update was kept across a reboot.
//
// Two calls parked before the first update are held across it: they hear
// hold music again on the same stream once the new version runs (the
// longest gap is printed), keep their slots and are picked up; a setting
// saved from the web console before the update is still there after it.
func TestAMD64Update(t *testing.T) {
	base := imagePath(t, "PARKPAGE_IMAGE_AMD64", "parkpage-amd64.img")
	good := imagePath(t, "PARKPAGE_IMAGE_AMD64_UPDATE", "parkpage-amd64-update.img")
	broken := imagePath(t, "PARKPAGE_IMAGE_AMD64_BROKEN", "parkpage-amd64-broken.img")
	client := hostParkpage(t)

	img, fat := copyImage(t, base)
	mtools(t, "mcopy", "-i", fat, filepath.Join("..", "testdata", "qemu-site.yaml"), "::parkpage.yaml")
	// The image's RTP range (testdata/qemu-site.yaml) forwarded port by
	// port: the held callers' RTP reaches the box through it.
	var rtpPorts []int
	for p := 10000; p <= 10009; p++ {
		rtpPorts = append(rtpPorts, p)
	}
	v := startVM(t, vmOptions{arch: "amd64", image: img, write: true, udp: rtpPorts})
	took := v.waitHealthy(bootDeadline)
	t.Logf("booted the base image: healthy after %v", took.Round(100*time.Millisecond))
	v1 := boxVersion(t, v)

	// Two callers parked before the update (one at 701, one through the
	// lot's extension 700 into 702), each hearing hold music through
	// QEMU's forwards, and a setting saved from the web console: all of
	// it must survive the update's reboot.
	held := []*heldCall{parkHeldAt(t, v, "701", "701", "2065550101"), parkHeldAt(t, v, "700", "702", "2065550102")}
	callers := map[string]any{}
	for _, h := range held {
		h.waitMusic(t, time.Time{}, 50, 2*time.Minute)
		callers[h.slot] = findSlot(t, v, h.slot)["caller"]
	}
	doc, saved := saveFromConsole(t, v)
	t.Logf("console save written to %s", doc.Path)
	if !strings.HasPrefix(doc.Path, "/perm/") {
		t.Errorf("the console saves to %s, not under /perm (lost at the next boot)", doc.Path)
	}

	// 1. A good update: the box comes back on the new version and the
	// guard commits it.
	start := time.Now()
	out, err := runUpdate(client, v, good)
	if err != nil {
		t.Fatalf("parkpage update (good image): %v\n%s", err, out)
	}
	if want := fmt.Sprintf("%d calls are parked", len(held)); !strings.Contains(out, want) {
		t.Errorf("parkpage update did not say %q before the reboot:\n%s", want, out)
	}
	v2 := boxVersion(t, v)
	if v2 == v1 {
		t.Fatalf("after the update the box still runs %s\n%s", v1, out)
	}
	if want := os.Getenv("PARKPAGE_UPDATE_VERSION"); want != "" && v2 != want {
		t.Errorf("after the update the box runs %s, want %s", v2, want)
	}
	v.waitConsole("parkpage-guard: update healthy; committed", 5*time.Minute)
	took = time.Since(start)
	t.Logf("update %s -> %s: pushed, rebooted, healthy and committed in %v\n%s", v1, v2, took.Round(time.Second), out)
	fmt.Printf("amd64 update (push, trial boot, commit): %.0f s\n", took.Seconds())

	// The parked callers hear the music again on the same stream, stay in
	// their slots, and can be picked up; the console's save is kept.
	back := time.Now()
	var gap time.Duration
	for _, h := range held {
		h.waitMusic(t, back, 50, 2*time.Minute)
		g := h.checkContinued(t)
		_, last, first := h.longestGap()
		t.Logf("slot %s: longest gap %v (from %s to %s)", h.slot, g.Round(10*time.Millisecond), last.at.Format("15:04:05.000"), first.at.Format("15:04:05.000"))
		gap = max(gap, g)
		s := findSlot(t, v, h.slot)
		if s == nil || s["state"] != "parked" || s["caller"] != callers[h.slot] {
			t.Errorf("slot %s after the update: %v, want parked with caller %v", h.slot, s, callers[h.slot])
		}
	}
	fmt.Printf("amd64 update with %d parked calls: longest gap in hold music %.1f s (resume_within 10m)\n", len(held), gap.Seconds())
	var kept configDoc
	apiGet(t, v, "/api/v1/config", &kept)
	if got := zoneDescription(kept, "all"); got != saved {
		t.Errorf("after the update's reboot zones.all.description is %q, want the console's save %q (config %s)", got, saved, kept.Path)
	}
	for _, h := range held {
		pickUp(t, v, h)
	}

	// A new update must wait for a normal boot (gokrazy's inactive
	// partition is the running one during the trial boot).
	st := updateStatus(t, v)
	if !st.TrialBoot {
		t.Errorf("GET /api/v1/update during the trial boot: %+v, want trial_boot true", st)
	}
	if out, err := runUpdate(client, v, broken); err == nil || !strings.Contains(out, "trial boot") {
		t.Errorf("update during the trial boot was not refused: %v\n%s", err, out)
	}
	mark := len(v.console.String())
	rebootBox(t, v)
	waitConsoleAfter(t, v, mark, "parkpage-guard: normal boot", bootDeadline)
	v.waitHealthy(bootDeadline)
	if got := boxVersion(t, v); got != v2 {
		t.Fatalf("after a reboot the box runs %s, want the committed %s", got, v2)
	}

	// 2. A broken update: never healthy, the guard reboots into v2.
	start = time.Now()
	before := len(v.console.String())
	out, err = runUpdate(client, v, broken)
	if err == nil || !strings.Contains(out, "rolled back") {
		t.Fatalf("parkpage update (broken image) did not report the rollback: %v\n%s", err, out)
	}
	if got := boxVersion(t, v); got != v2 {
		t.Fatalf("after the broken update the box runs %s, want %s", got, v2)
	}
	tail := v.console.String()[before:]
	if !strings.Contains(tail, "parkpage-guard: update did not become healthy") {
		t.Errorf("the console does not show the guard's fallback:\n%s", tail)
	}
	t.Logf("broken update rolled back to %s in %v\n%s", v2, time.Since(start).Round(time.Second), out)
	// gokrazy rewrites systemd-boot's entry along with cmdline.txt (root=,
	// the trial flag); it says so when its FAT reader cannot find it, and
	// a UEFI boot would then run a stale root.
	if c := v.console.String(); strings.Contains(c, "updating systemd-boot config:") {
		i := strings.Index(c, "updating systemd-boot config:")
		t.Errorf("gokrazy did not update loader/entries/gokrazy.conf: %s", c[i:min(len(c), i+120)])
	}
	fmt.Printf("amd64 broken update rolled back: %.0f s\n", time.Since(start).Seconds())
}

// hostParkpage is the host's parkpage binary (the update client).
func hostParkpage(t *testing.T) string {
	p := os.Getenv("PARKPAGE_BIN")
	if p == "" {
		p = filepath.Join("..", "..", "bin", "parkpage")
	}
	abs, _ := filepath.Abs(p)
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("parkpage binary %s: %v (make build)", abs, err)
	}
	return abs
}

func runUpdate(client string, v *vm, image string) (string, error) {
	cmd := exec.Command(client, "update", "-to", v.url(""), "-image", image, "-token", testToken, "-wait", "20m")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func apiGet(t *testing.T, v *vm, path string, into any) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequest("GET", v.url(path), nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err == nil {
			err = fmt.Errorf("%s", res.Status)
			if res.StatusCode == 200 {
				err = json.NewDecoder(res.Body).Decode(into)
			}
			res.Body.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", path, err)
		}
		time.Sleep(time.Second)
	}
}

func boxVersion(t *testing.T, v *vm) string {
	t.Helper()
	var st struct {
		Version string `json:"version"`
	}
	apiGet(t, v, "/api/v1/status", &st)
	return st.Version
}

type updateState struct {
	TrialBoot bool `json:"trial_boot"`
}

func updateStatus(t *testing.T, v *vm) updateState {
	t.Helper()
	var st updateState
	apiGet(t, v, "/api/v1/update", &st)
	return st
}

// rebootBox asks parkpage to reboot and waits until gokrazy says on the
// console that it reboots (an API that stops answering for a moment on a
// loaded host is no proof of that). If it never does, parkpage's own log
// says why.
func rebootBox(t *testing.T, v *vm) {
	t.Helper()
	mark := len(v.console.String())
	req, _ := http.NewRequest("POST", v.url("/api/v1/update/reboot"), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json") // every state-changing API request says it
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/v1/update/reboot: %v %v", res, err)
	}
	res.Body.Close()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if strings.Contains(v.console.String()[mark:], "reboot requested") {
			return
		}
		select {
		case <-v.done:
			t.Fatal("QEMU exited while the box was asked to reboot")
		case <-time.After(time.Second):
		}
	}
	logs := gokrazyLog(t, v, "/user/parkpage", "(read until the wait ends)", 20*time.Second)
	t.Fatalf("gokrazy did not start a reboot within 3 min of POST /api/v1/update/reboot (202); parkpage's log:\n%s",
		lastLines(logs, 60))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitConsoleAfter waits for text on the console after its first mark bytes.
func waitConsoleAfter(t *testing.T, v *vm, mark int, text string, deadline time.Duration) {
	t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if strings.Contains(v.console.String()[mark:], text) {
			return
		}
		select {
		case <-v.done:
			t.Fatalf("QEMU exited before %q appeared on the console: %v", text, v.waitErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("%q did not appear on the console within %v", text, deadline)
}
