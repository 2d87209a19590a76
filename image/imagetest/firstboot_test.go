package imagetest

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// badSite has an unknown key ("devcie") on line 6, column 9.
const badSite = `# dropped by the installer on the boot partition
zones:
  all:
    outputs:
      - type: lineout
        devcie: hw:0,0
`

// TestAMD64FirstBoot is an installer's first boot without a shell: the
// amd64 test image (`make image`'s plus the test-only gpiosim) with an invalid
// parkpage.yaml dropped on its FAT boot partition. The box must come up on
// the embedded default, report the file's problems with line:col on the
// console and the setup page, offer only credential setup guarded by the
// one-time code from the console, and after setup restart with the admin
// API on the LAN behind that credential.
func TestAMD64FirstBoot(t *testing.T) {
	img, fat := copyImage(t, imagePath(t, "PARKPAGE_IMAGE_AMD64", testImage))
	yaml := filepath.Join(t.TempDir(), "parkpage.yaml")
	os.WriteFile(yaml, []byte(badSite), 0o644)
	mtools(t, "mcopy", "-i", fat, yaml, "::parkpage.yaml")

	v := startVM(t, vmOptions{arch: "amd64", image: img, write: true})
	took := v.waitHealthy(bootDeadline)
	t.Logf("first boot to /healthz ok (setup mode): %v", took.Round(100*time.Millisecond))
	fmt.Printf("amd64 first boot to healthy (setup page up): %.1f s\n", took.Seconds())

	problem := v.consoleMatch(regexp.MustCompile(`refused: (boot partition parkpage\.yaml:6:9:[^\r\n]*)`), time.Minute)
	code := v.consoleMatch(regexp.MustCompile(`setup code (\d{4}-\d{4})`), time.Minute)
	t.Logf("console: %q; code %s", problem, code)

	page := get(t, v.url("/"), http.StatusOK)
	if !strings.Contains(page, `name="code"`) || !strings.Contains(page, "parkpage.yaml:6:9") {
		t.Errorf("setup page lacks the form or the problem:\n%s", page)
	}
	get(t, v.url("/api/v1/slots"), http.StatusForbidden)

	form := url.Values{"code": {code}, "password": {"installer pass 1"}, "confirm": {"installer pass 1"}}
	res, err := http.PostForm(v.url("/setup"), form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "Saved") {
		t.Fatalf("setup: %s\n%s", res.Status, body)
	}
	setAt := time.Now()

	// parkpage restarts (gokrazy's supervisor) with the credential: the
	// admin API answers on the LAN, with the password only.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		req, _ := http.NewRequest("GET", v.url("/api/v1/status"), nil)
		req.SetBasicAuth("admin", "installer pass 1")
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				t.Logf("admin API with the new password %v after setup: %s", time.Since(setAt).Round(100*time.Millisecond), b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API not open with the new password 3 min after setup (last: %v)", err)
		}
		time.Sleep(time.Second)
	}
	// With the credential set there is no setup screen: the console's
	// pages carry the refused file's problems instead.
	req, _ := http.NewRequest("GET", v.url("/setup"), nil)
	req.SetBasicAuth("admin", "installer pass 1")
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("console setup page: %v", err)
	} else {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), "parkpage.yaml:6:9") {
			t.Errorf("console setup page (%s) lacks the refused file's problem:\n%s", res.Status, b)
		}
	}
	get(t, v.url("/api/v1/slots"), http.StatusUnauthorized)
	req, _ = http.NewRequest("GET", v.url("/api/v1/slots"), nil)
	req.SetBasicAuth("admin", "wrong password")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %v %v", res, err)
	}
	v.stop()

	// The refused file stays on the boot partition for the installer to
	// fix, with the problems next to it.
	report := mtools(t, "mtype", "-i", fat, "::parkpage-problems.txt")
	if !strings.Contains(report, "parkpage.yaml:6:9") {
		t.Errorf("parkpage-problems.txt on the boot partition: %q", report)
	}
	if got := mtools(t, "mtype", "-i", fat, "::parkpage.yaml"); got != badSite {
		t.Errorf("refused parkpage.yaml changed on the boot partition: %q", got)
	}
}

func mtools(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func get(t *testing.T, u string, want int) string {
	t.Helper()
	res, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Errorf("GET %s: %s, want %d", u, res.Status, want)
	}
	return string(b)
}
