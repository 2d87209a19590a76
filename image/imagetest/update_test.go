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
func TestAMD64Update(t *testing.T) {
	base := imagePath(t, "PARKPAGE_IMAGE_AMD64", "parkpage-amd64.img")
	good := imagePath(t, "PARKPAGE_IMAGE_AMD64_UPDATE", "parkpage-amd64-update.img")
	broken := imagePath(t, "PARKPAGE_IMAGE_AMD64_BROKEN", "parkpage-amd64-broken.img")
	client := hostParkpage(t)

	img, fat := copyImage(t, base)
	mtools(t, "mcopy", "-i", fat, filepath.Join("..", "testdata", "qemu-site.yaml"), "::parkpage.yaml")
	v := startVM(t, vmOptions{arch: "amd64", image: img, write: true})
	took := v.waitHealthy(bootDeadline)
	t.Logf("booted the base image: healthy after %v", took.Round(100*time.Millisecond))
	v1 := boxVersion(t, v)

	// 1. A good update: the box comes back on the new version and the
	// guard commits it.
	start := time.Now()
	out, err := runUpdate(client, v, good)
	if err != nil {
		t.Fatalf("parkpage update (good image): %v\n%s", err, out)
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

// rebootBox asks parkpage to reboot and waits until the API went away.
func rebootBox(t *testing.T, v *vm) {
	t.Helper()
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
		r, err := (&http.Client{Timeout: 3 * time.Second}).Get(v.url("/healthz"))
		if err != nil {
			return
		}
		r.Body.Close()
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("the box did not go down within 3 min after the reboot request")
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
