package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/codec/wav"
	"github.com/parkpage/parkpage/internal/demo"
)

// `parkpage demo` runs the real binary end to end: it exits 0, the slot
// board API showed the parked call, the zone's WAV holds the announcement
// (its loudness envelope matches `parkpage render` of the same slot), and
// nothing left loopback. As root it runs in a fresh network namespace
// whose only other interface, leak0 (a veth whose peer stays in the
// namespace), carries the default route: any packet not meant for lo
// would be counted on leak0.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	root := os.Geteuid() == 0
	demoArgs := []string{"demo", "-dir", dir, "-pickup-after", "2s", "-sound", "off"}
	var cmd *exec.Cmd
	if root {
		script := `set -e
ip link set lo up
ip link add leak0 type veth peer name leak1
for i in leak0 leak1; do echo 1 > /proc/sys/net/ipv6/conf/$i/disable_ipv6 2>/dev/null || true; done
ip addr add 10.201.0.1/24 dev leak0
ip link set leak1 up
ip link set leak0 up
ip route add default dev leak0
cat /proc/net/dev > "$DIR/dev-before"
set +e
"$@"
rc=$?
cat /proc/net/dev > "$DIR/dev-after"
exit $rc`
		cmd = exec.Command("unshare", append([]string{"-n", "sh", "-c", script, "sh", binary}, demoArgs...)...)
		cmd.Env = append(os.Environ(), "DIR="+dir)
	} else {
		t.Log("not root: running without a private network namespace (no leak0 counter)")
		cmd = exec.Command(binary, demoArgs...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var stdout strings.Builder
	sockets := ""
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait(); pw.Close() }()
	timeout := time.After(3 * time.Minute)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			stdout.WriteString(l + "\n")
			if strings.Contains(l, "Slot board:") {
				// The calls are up and the page is starting: every socket
				// in the demo's namespace (or process) is open now.
				sockets = socketTable(t, cmd.Process.Pid, root)
			}
		case <-timeout:
			t.Fatalf("demo still running after 3 min\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}
	err := <-waitErr
	logs, _ := os.ReadFile(filepath.Join(dir, demo.LogFile))
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s\nappliance log:\n%s", err, stdout.String(), stderr.String(), logs)
	}
	out := stdout.String()
	t.Logf("demo output:\n%s", out)
	if !strings.Contains(out, "(slot 701: parked, caller \"ACME Supply\"") || !strings.Contains(out, "/api/v1/slots confirms it") {
		t.Errorf("the slot board did not show the parked call:\n%s", out)
	}
	if !strings.Contains(out, "Slot 701 is free again") {
		t.Errorf("no pickup:\n%s", out)
	}

	// The zone's WAV is the announcement: long enough, loud, and shaped
	// like the same slot's announcement rendered offline.
	got, err := wav.LoadFile16kMono(filepath.Join(dir, demo.ZoneWAV))
	if err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "render.wav")
	if code, _, e := run(t, "", "render", "-slot", "701", "-config", filepath.Join(dir, demo.ConfigFile), "-codec", "g722", "-o", ref); code != 0 {
		t.Fatalf("render: %d %s", code, e)
	}
	want, err := wav.LoadFile16kMono(ref)
	if err != nil {
		t.Fatal(err)
	}
	if lvl := demo.DBFS(got); lvl < -40 {
		t.Errorf("zone WAV level %.1f dBFS: silence, not an announcement", lvl)
	}
	if r := float64(len(got)) / float64(len(want)); r < 0.9 || r > 1.3 {
		t.Errorf("zone WAV is %.2f s, the rendered announcement %.2f s", float64(len(got))/16000, float64(len(want))/16000)
	}
	if c := envelopeCorrelation(got, want); c < 0.8 {
		t.Errorf("zone WAV does not match the rendered announcement: envelope correlation %.2f", c)
	}
	for _, f := range []string{demo.ParkedWAV, demo.PickupWAV} {
		pcm, err := wav.LoadFile16kMono(filepath.Join(dir, f))
		if err != nil || demo.DBFS(pcm) < -45 {
			t.Errorf("%s: %v, level %.1f dBFS", f, err, demo.DBFS(pcm))
		}
	}

	// Nothing left loopback.
	checkLoopbackSockets(t, sockets)
	if root {
		before, after := leakTx(t, filepath.Join(dir, "dev-before")), leakTx(t, filepath.Join(dir, "dev-after"))
		if after != before {
			t.Errorf("%d packets left through leak0 (the default route): something did not stay on loopback", after-before)
		}
	}
}

// socketTable returns /proc/PID/net/{tcp,tcp6,udp,udp6}: with root, every
// socket in the demo's private namespace (only the demo has any there).
func socketTable(t *testing.T, pid int, root bool) string {
	var b strings.Builder
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n")[1:] {
			if strings.TrimSpace(l) != "" {
				b.WriteString(f + " " + l + "\n")
			}
		}
	}
	if !root {
		t.Log("socket table is the host's: only the demo's own listener ports are checked")
	}
	return b.String()
}

// checkLoopbackSockets: every TCP socket and every UDP socket but the
// multicast ones is bound to 127.0.0.1. The multicast sender and the
// demo's listener bind the wildcard address (the kernel's way for
// multicast) and are pinned to lo by IP_MULTICAST_IF and a join on lo;
// the leak0 counter covers them.
func checkLoopbackSockets(t *testing.T, table string) {
	t.Helper()
	if table == "" {
		t.Error("no socket table captured")
		return
	}
	wildcardUDP := 0
	for _, l := range strings.Split(strings.TrimSpace(table), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		proto, local := f[0], f[2]
		host := local[:strings.IndexByte(local, ':')]
		switch {
		case host == "0100007F": // 127.0.0.1
		case proto == "udp" && host == "00000000":
			wildcardUDP++
		default:
			t.Errorf("socket not on loopback: %s", l)
		}
	}
	if wildcardUDP > 2 {
		t.Errorf("%d wildcard UDP sockets, want at most the multicast sender and the zone listener:\n%s", wildcardUDP, table)
	}
}

func leakTx(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && name == "leak0" {
			f := strings.Fields(rest)
			n, _ := strconv.Atoi(f[9]) // transmit packets
			return n
		}
	}
	t.Fatalf("no leak0 in %s", path)
	return 0
}

// envelopeCorrelation is the best Pearson correlation of the two signals'
// 20 ms RMS envelopes over lags of up to ±1 s.
func envelopeCorrelation(a, b []int16) float64 {
	env := func(x []int16) []float64 {
		var e []float64
		for i := 0; i+320 <= len(x); i += 320 {
			var s float64
			for _, v := range x[i : i+320] {
				s += float64(v) * float64(v)
			}
			e = append(e, math.Sqrt(s/320))
		}
		return e
	}
	ea, eb := env(a), env(b)
	best := -1.0
	for lag := -50; lag <= 50; lag++ {
		var xs, ys []float64
		for i := range eb {
			if j := i + lag; j >= 0 && j < len(ea) {
				xs, ys = append(xs, ea[j]), append(ys, eb[i])
			}
		}
		if len(xs) < len(eb)/2 {
			continue
		}
		if c := pearson(xs, ys); c > best {
			best = c
		}
	}
	return best
}

func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}
