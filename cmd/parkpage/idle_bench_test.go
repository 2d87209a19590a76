package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// idleBinEnv names the binary BenchmarkIdle measures: `make bench` sets it
// to the static appliance build (`make static`, what `make deb` and the
// image ship). Unset, the benchmark builds a normal binary.
const idleBinEnv = "PARKPAGE_IDLE_BIN"

// BenchmarkIdle runs the appliance on the embedded default config (its
// outputs moved to lo, its ports to free ones: nothing leaves the box and
// nothing is paged) with no call and no page, IDLE_BENCH_RUNS times
// (default 3), and reports the medians of the CPU it uses over
// IDLE_BENCH_SECONDS (default 60 s) once its start-up phrase rendering is
// done (goal < 0.1 % of a core: no timer ticks with nothing to send), its
// wake-ups per second (voluntary context switches of all its threads), and
// its RSS at the end of the window with the anonymous and file-backed
// parts (goal < 30 MB). As the same-run reference for the machine, the
// CPU `sleep` uses over the same window (what no program goes below).
func BenchmarkIdle(b *testing.B) {
	bin := os.Getenv(idleBinEnv)
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "parkpage")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
	}
	runs, window := 3, 60*time.Second
	if n, err := strconv.Atoi(os.Getenv("IDLE_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	if n, err := strconv.Atoi(os.Getenv("IDLE_BENCH_SECONDS")); err == nil && n > 0 {
		window = time.Duration(n) * time.Second
	}
	var cpu, wakeups, rss, anon, file, ref []float64
	for range b.N {
		for range runs {
			r := idleOnce(b, bin, window)
			cpu, wakeups = append(cpu, r.cpuPct), append(wakeups, r.wakeups)
			rss, anon, file = append(rss, r.rss), append(anon, r.anon), append(file, r.file)
			ref = append(ref, r.refPct)
		}
	}
	b.ReportMetric(median(cpu), "idle-cpu-%")
	b.ReportMetric(median(wakeups), "idle-wakeups/s")
	b.ReportMetric(median(rss), "idle-rss-MiB")
	b.ReportMetric(median(anon), "idle-rss-anon-MiB")
	b.ReportMetric(median(file), "idle-rss-file-MiB")
	b.ReportMetric(median(ref), "sleep-cpu-%")
}

type idleResult struct {
	cpuPct, wakeups, rss, anon, file, refPct float64
}

func idleOnce(b *testing.B, bin string, window time.Duration) idleResult {
	dir := b.TempDir()
	def, err := exec.Command(bin, "print-default-config").Output()
	if err != nil {
		b.Fatalf("print-default-config: %v", err)
	}
	cfg := string(def)
	sipPort, api := proctest.FreePort(b, "udp"), fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(b, "tcp"))
	for _, r := range [][2]string{
		{"state_dir: /var/lib/parkpage", "state_dir: " + filepath.Join(dir, "state")},
		{`"0.0.0.0:5060"`, fmt.Sprintf(`"127.0.0.1:%d"`, sipPort)},
		{"level: info", "level: debug"}, // for "announcements prepared"
		{"        ttl: 1\n", "        ttl: 1\n        interface: lo\n"},
		{"rtp_ports: 10000-10999", "rtp_ports: 31100-31199"},
	} {
		if !strings.Contains(cfg, r[0]) {
			b.Fatalf("default config has no %q any more: update BenchmarkIdle", r[0])
		}
		cfg = strings.ReplaceAll(cfg, r[0], r[1])
	}
	if n := strings.Count(cfg, "interface: lo"); n != strings.Count(cfg, "- type: ") {
		b.Fatalf("%d outputs moved to lo, want all of them:\n%s", n, cfg)
	}
	f := filepath.Join(dir, "parkpage.yaml")
	if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-config", f, "-http", api)
	p := proctest.StartCmd(b, cmd)
	defer func() { _ = cmd.Process.Kill(); _ = p.Wait(10 * time.Second) }()
	p.WaitLine(b, `announcements prepared`, 2*time.Minute)
	time.Sleep(5 * time.Second) // the render workers' last wake-ups

	sleeper := exec.Command("sleep", strconv.Itoa(int(window/time.Second)+5))
	if err := sleeper.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
	pid := cmd.Process.Pid
	t0, ref0, cs0 := procCPU(b, pid), procCPU(b, sleeper.Process.Pid), ctxSwitches(pid)
	start := time.Now()
	time.Sleep(window)
	t1, ref1, cs1 := procCPU(b, pid), procCPU(b, sleeper.Process.Pid), ctxSwitches(pid)
	secs := time.Since(start).Seconds()
	var r idleResult
	r.cpuPct = (t1 - t0) / secs * 100
	r.refPct = (ref1 - ref0) / secs * 100
	r.wakeups = float64(cs1-cs0) / secs
	st := procStatus(b, pid)
	r.rss, r.anon, r.file = st["VmRSS"]/1024, st["RssAnon"]/1024, st["RssFile"]/1024
	b.Logf("idle %.0f s: %.4f %% of a core (sleep: %.4f %%), %.1f wake-ups/s, RSS %.1f MiB (anon %.1f, file %.1f)",
		secs, r.cpuPct, r.refPct, r.wakeups, r.rss, r.anon, r.file)
	return r
}

// procCPU is the process's user+system CPU time so far, in seconds
// (/proc/PID/stat, in clock ticks of 10 ms).
func procCPU(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after the command name
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100
}

// ctxSwitches sums the voluntary context switches of the process's
// threads: each is a wake-up after a sleep.
func ctxSwitches(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	n := 0
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		for _, l := range strings.Split(string(raw), "\n") {
			var v int
			if _, err := fmt.Sscanf(l, "voluntary_ctxt_switches: %d", &v); err == nil {
				n += v
			}
		}
	}
	return n
}

// procStatus returns the kB figures of /proc/PID/status.
func procStatus(b *testing.B, pid int) map[string]float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	m := map[string]float64{}
	for _, l := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			m[k], _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}
