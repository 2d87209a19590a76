package imagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	disk "github.com/parkpage/parkpage/internal/diskimage"
)

// testImage is what `make image-test` builds: the amd64 image with the
// test-only gpiosim service (mkimage -test-gpiosim).
const testImage = "parkpage-amd64-test.img"

// testToken is the bearer token in testdata/qemu-site.yaml, baked into the
// test image only.
const testToken = "image-test-token-0123456789"

// bootDeadline is generous: TCG on a busy 2-core machine (a first boot
// under load 30+ took 5 min to reach init and 10 min to healthy).
const bootDeadline = 15 * time.Minute

// TestAMD64ParkAndPickup boots the amd64 image in QEMU (TCG), waits for
// /healthz through the forwarded port, then parks a sipp call in 701 over
// the forwarded SIP port, sees it in the API and picks it up. On the same
// boot it proves line out and GPIO on the image's kernel: a test page's
// chime comes out of the VM's HDA sound card into QEMU's WAV recording,
// the zone relay (a gpio-sim line) is on during pages and off after, and
// after a kill -9 of parkpage during a page the restarted one drives it
// off.
func TestAMD64ParkAndPickup(t *testing.T) {
	// The test image (`make image` plus gpiosim), with the test's site
	// config dropped on the FAT boot partition as an installer would; the
	// VM has an HDA sound card recorded to a WAV file.
	img, fat := copyImage(t, imagePath(t, "PARKPAGE_IMAGE_AMD64", testImage))
	mtools(t, "mcopy", "-i", fat, siteWithRelay(t), "::parkpage.yaml")
	wav := filepath.Join(t.TempDir(), "lineout.wav")
	v := startVM(t, vmOptions{arch: "amd64", image: img, write: true, wav: wav})
	took := v.waitHealthy(bootDeadline)
	t.Logf("amd64: QEMU start to /healthz ok: %v", took.Round(100*time.Millisecond))
	fmt.Printf("amd64 boot-to-healthy: %.1f s\n", took.Seconds())

	// The service's start-up line shows it runs as configured on the image.
	v.waitConsole("parkpage", 30*time.Second)

	// Real time on the image: the pacer's sending thread got SCHED_FIFO
	// (its log line, in gokrazy's log of the service, and its gauge).
	if m := apiText(t, v, "/metrics"); !strings.Contains(m, "parkpage_pacer_realtime 1") {
		t.Errorf("/metrics lacks parkpage_pacer_realtime 1:\n%s", grepLines(m, "pacer"))
	}
	logs := gokrazyLog(t, v, "/user/parkpage", " mode=", time.Minute) // the pacer's second line
	if !strings.Contains(logs, "pacer: running with real-time priority") || !strings.Contains(logs, "SCHED_FIFO") {
		t.Errorf("the service log lacks the pacer's SCHED_FIFO line:\n%s", grepLines(logs, "pacer"))
	}
	// ... and sends through io_uring (gokrazy's open-file limit once made
	// the kernel refuse its socket table).
	if !strings.Contains(logs, "pacer: sending through io_uring") {
		t.Errorf("the pacer does not send through io_uring on the image:\n%s", grepLines(logs, "pacer"))
	}

	caller := runSipp(t, v, "park_wait_bye.xml", "701", map[string]string{
		"from": "2065550100", "parker": "201@pbx.lan", "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"})
	var slot map[string]any
	deadline := time.Now().Add(90 * time.Second)
	for {
		slot = findSlot(t, v, "701")
		if slot != nil && slot["state"] == "parked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot 701 not parked within 90 s: %v; caller sipp:\n%s", slot, caller.output())
		}
		select {
		case <-caller.done:
			t.Fatalf("caller sipp ended before the call was parked: %v\n%s", caller.err, caller.output())
		case <-time.After(300 * time.Millisecond):
		}
	}
	t.Logf("parked: %v", slot)
	if c, _ := slot["caller"].(string); c == "" {
		t.Errorf("slot 701 has no caller: %v", slot)
	}

	picker := runSipp(t, v, "retrieve_hangup.xml", "701", map[string]string{
		"from": "202", "hdr": "X-Test: 1", "hold": "2000"})
	for _, s := range []*sippRun{picker, caller} {
		select {
		case <-s.done:
			if s.err != nil {
				t.Fatalf("sipp %s: %v\n%s", s.name, s.err, s.output())
			}
		case <-time.After(3 * time.Minute):
			t.Fatalf("sipp %s still running after 3 min\n%s", s.name, s.output())
		}
	}
	if s := findSlot(t, v, "701"); s == nil || s["state"] != "free" {
		t.Errorf("slot 701 after the pickup: %v, want free", s)
	}
	v.consoleMatch(regexp.MustCompile(`(parkpage: imported parkpage.yaml from the boot partition)`), time.Minute)

	// Line out and GPIO on the image's own kernel: HDA sound, gpio-sim.
	// parkpage names the sound card on the console for the installer.
	t.Logf("console: %s", v.consoleMatch(regexp.MustCompile(`parkpage: (sound card 0 [^\n]*hw:0,0)`), time.Minute))
	checkRelayAndLineOut(t, v)
	t.Logf("relay log lines:\n%s", grepLines(gokrazyLog(t, v, "/user/parkpage", "pin appeared", 5*time.Second), "relays"))
	v.stop()
	checkWAV(t, wav)
	// The imported config left the FAT partition (it lives in /perm now).
	if out, err := exec.Command("mtype", "-i", fat, "::parkpage.yaml").CombinedOutput(); err == nil {
		t.Errorf("parkpage.yaml still on the boot partition after import:\n%s", out)
	}
}

// copyImage copies an image (sparse) for a test that lets the guest write
// it, and returns the copy and its FAT boot partition in mtools' syntax.
func copyImage(t *testing.T, src string) (img, fat string) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "disk.img")
	if out, err := exec.Command("cp", "--sparse=always", src, img).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	parts, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	return img, fmt.Sprintf("%s@@%d", img, parts[0].Start)
}

// findSlot returns slot's entry from GET /api/v1/slots.
func findSlot(t testing.TB, v *vm, slot string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", v.url("/api/v1/slots"), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Logf("GET /api/v1/slots: %v", err)
		return nil
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /api/v1/slots: %s", res.Status)
	}
	var body any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("GET /api/v1/slots: %v", err)
	}
	var list []any
	switch b := body.(type) {
	case []any:
		list = b
	case map[string]any:
		list, _ = b["slots"].([]any)
	}
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && m["slot"] == slot {
			return m
		}
	}
	return nil
}

// sippRun is one sipp process talking to the VM through the forward.
type sippRun struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

func (s *sippRun) output() string { return s.out.String() }

// runSipp runs a scenario from testdata/sipp against the VM's forwarded
// SIP port. The host is 10.0.2.2 inside the VM (QEMU's user-net gateway):
// the scenarios write that address as [vmhost] in Via, Contact and SDP.
func runSipp(t testing.TB, v *vm, scenario, service string, keys map[string]string) *sippRun {
	t.Helper()
	return runSippFor(t, v, scenario, service, keys, 240*time.Second)
}

// runSippFor is runSipp with sipp's overall timeout; a key mport given
// replaces the free port runSipp picks for the SDP.
func runSippFor(t testing.TB, v *vm, scenario, service string, keys map[string]string, timeout time.Duration) *sippRun {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is not installed (apt-get install sip-tester): %v", err)
	}
	sf, _ := filepath.Abs(filepath.Join("..", "testdata", "sipp", scenario))
	dir := t.TempDir()
	port := freePort(t)
	args := []string{fmt.Sprintf("127.0.0.1:%d", v.sipPort), "-sf", sf, "-s", service, "-m", "1",
		"-i", "127.0.0.1", "-p", fmt.Sprint(port), "-mp", fmt.Sprint(freePort(t)),
		"-key", "vmhost", v.peerHost(),
		"-nostdin", "-timeout", fmt.Sprintf("%ds", int(timeout.Seconds())), "-timeout_error", "-trace_msg",
		"-message_file", filepath.Join(dir, "msg.log"), "-max_recv_loops", "1000"}
	if _, ok := keys["mport"]; !ok {
		args = append(args, "-key", "mport", fmt.Sprint(freePort(t)))
	}
	for k, val := range keys {
		if k == "hold" {
			args = append(args, "-set", k, val)
		} else {
			args = append(args, "-key", k, val)
		}
	}
	s := &sippRun{name: scenario, out: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command("sipp", args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("sipp: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		if b, err := os.ReadFile(filepath.Join(dir, "msg.log")); err == nil {
			s.out.Write(b)
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// apiText GETs an admin API path with the test token.
func apiText(t testing.TB, v *vm, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", v.url(path), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, res.Status)
	}
	return string(b)
}

// gokrazyLog reads gokrazy's log stream of a service's stderr (its
// recent lines first) through the forward of gokrazy's port 80, with the
// image's gokrazy password (kept by mkimage in the instance directory),
// until want appears or wait passes; it returns what it read.
func gokrazyLog(t testing.TB, v *vm, svc, want string, wait time.Duration) string {
	t.Helper()
	got, err := v.readServiceLog(svc, want, wait)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// serviceLog reads what gokrazy keeps of a service's stderr, for failure
// reports: it never fails the test itself.
func (v *vm) serviceLog(svc string, wait time.Duration) string {
	got, err := v.readServiceLog(svc, "", wait)
	if err != nil {
		return fmt.Sprintf("(%v)\n%s", err, got)
	}
	return got
}

// readServiceLog streams gokrazy's log of svc until want appears (never,
// for ""), the stream ends or wait passes.
func (v *vm) readServiceLog(svc, want string, wait time.Duration) (string, error) {
	pw, err := os.ReadFile(filepath.Join("..", "..", "bin", "gokrazy", "parkpage-amd64", "http-password.txt"))
	if err != nil {
		return "", fmt.Errorf("gokrazy password: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/log?path=%s&stream=stderr", v.gokPort, svc), nil)
	req.SetBasicAuth("gokrazy", strings.TrimSpace(string(pw)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("gokrazy log %s: %w", svc, err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return "", fmt.Errorf("gokrazy log %s: %s", svc, res.Status)
	}
	var got strings.Builder
	buf := make([]byte, 32<<10)
	for want == "" || !strings.Contains(got.String(), want) {
		n, err := res.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break // the stream ends with wait
		}
	}
	return got.String(), nil
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAMD64BIOSVirtio boots the amd64 image the other way a PC or VM
// does: legacy BIOS (the image's MBR boot loader) with a virtio disk and
// network card, which its kernel must have drivers for, to /healthz.
func TestAMD64BIOSVirtio(t *testing.T) {
	img, fat := copyImage(t, imagePath(t, "PARKPAGE_IMAGE_AMD64", testImage))
	mtools(t, "mcopy", "-i", fat, filepath.Join("..", "testdata", "qemu-site.yaml"), "::parkpage.yaml")
	v := startVM(t, vmOptions{arch: "amd64", image: img, write: true, biosVirtio: true})
	took := v.waitHealthy(bootDeadline)
	fmt.Printf("amd64 boot-to-healthy (BIOS, virtio disk and net): %.1f s\n", took.Seconds())
	// The root file system came from the virtio disk, the network through
	// virtio-net: the kernel's log names both.
	v.consoleMatch(regexp.MustCompile(`(virtio_blk virtio\d+: \[vda\])`), time.Second)
	t.Logf("serial console: %s", v.consoleMatch(regexp.MustCompile(`(parkpage: running on [^\n]*)`), time.Minute))
}
