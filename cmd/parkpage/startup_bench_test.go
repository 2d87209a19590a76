package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// BenchmarkStartup starts the appliance (a normal build, not the tests'
// -race one) ten times and reports the medians of: exec to /healthz
// answering (goal < 300 ms), exec to the first packet of a park's
// announcement (the park event posted as soon as /healthz answers, so its
// phrase is rendered on demand or in the start-up warm-up), the RSS once
// idle (3 s after a start with no park; goal < 30 MB), and, as the same-run reference
// for this machine's process start cost, exec to exit of `parkpage
// version` (what no start-up work can go below).
func BenchmarkStartup(b *testing.B) {
	const samples = 10
	bin := filepath.Join(b.TempDir(), "parkpage")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	var healthy, announced, rss, bare []float64
	for range samples {
		s := time.Now()
		if err := exec.Command(bin, "version").Run(); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, ms(time.Since(s)))
		h, a := startOnce(b, bin, false)
		healthy, announced = append(healthy, h), append(announced, a)
		_, r := startOnce(b, bin, true)
		rss = append(rss, r)
	}
	b.ReportMetric(median(healthy), "healthy-ms")
	b.ReportMetric(median(announced), "first-park-announced-ms")
	b.ReportMetric(median(rss), "idle-rss-MiB")
	b.ReportMetric(median(bare), "exec-version-ms")
	b.ReportMetric(median(healthy)-median(bare), "healthy-minus-exec-ms")
}

// startOnce starts the appliance and returns the time to /healthz and
// either, idle, its RSS 3 s after start or the time to the first packet of
// a park announced as soon as it is healthy.
func startOnce(b *testing.B, bin string, idle bool) (healthyMS, other float64) {
	dir := b.TempDir()
	port := proctest.FreePort(b, "udp")
	const group = "239.255.91.9"
	rec := mcasttest.Record(b, group, port)
	cfg := fmt.Sprintf(`sip:
  listen:
    - {transport: udp, address: "127.0.0.1:%d"}
  rtp_ports: 31000-31099
park:
  lots:
    - extension: "700"
      slots: 701-710
      label: Sales
      announce: {zones: [front]}
announce:
  chime: none
  lead_in: 0s
zones:
  front:
    outputs:
      - {type: rtp, group: %s, port: %d, codec: pcmu, interface: lo, loopback: true}
`, proctest.FreePort(b, "udp"), group, port)
	f := filepath.Join(dir, "parkpage.yaml")
	if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	api := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(b, "tcp"))
	cmd := exec.Command(bin, "run", "-config", f, "-state-dir", filepath.Join(dir, "state"), "-http", api)
	start := time.Now()
	p := proctest.StartCmd(b, cmd)
	client := &http.Client{Timeout: time.Second}
	for {
		res, err := client.Get("http://" + api + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("no /healthz within a minute:\n%s", proctest.Tail(p.Output(), 30))
		}
		time.Sleep(2 * time.Millisecond)
	}
	healthyMS = ms(time.Since(start))
	defer func() { _ = cmd.Process.Kill(); _ = p.Wait(10 * time.Second) }()
	if idle {
		time.Sleep(time.Until(start.Add(3 * time.Second)))
		return healthyMS, procRSS(b, cmd.Process.Pid)
	}
	res, err := http.Post("http://"+api+"/api/v1/park-events", "application/json", strings.NewReader(`{"event":"parked","slot":"701"}`))
	if err != nil || res.StatusCode != http.StatusAccepted {
		b.Fatalf("park event: %v %v\n%s", err, res, proctest.Tail(p.Output(), 30))
	}
	res.Body.Close()
	pk := rec.Wait(b, 1, time.Minute)
	return healthyMS, ms(pk[0].At.Sub(start))
}

func procRSS(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(l, "VmRSS: %f kB", &kb); err == nil {
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
