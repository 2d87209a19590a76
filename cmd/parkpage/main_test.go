package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parkpage-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "parkpage")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &o, &e, strings.NewReader(stdin)
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, o.String(), e.String()
}

func TestDefaultConfigPassesCheck(t *testing.T) {
	code, out, _ := run(t, "", "print-default-config")
	if code != 0 || !strings.Contains(out, "224.0.1.116") {
		t.Fatalf("print-default-config: %d %q", code, out)
	}
	f := filepath.Join(t.TempDir(), "parkpage.yaml")
	os.WriteFile(f, []byte(out), 0o644)
	code, out, _ = run(t, "", "check-config", f)
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "parkpage.yaml: ok") {
		t.Errorf("check-config default: %d %q", code, out)
	}
}

func TestCheckConfigReportsEveryProblem(t *testing.T) {
	f := filepath.Join(t.TempDir(), "parkpage.yaml")
	os.WriteFile(f, []byte("log:\n  format: xml\nzones:\n  a:\n    outputs:\n      - type: rtp\n        group: \"239.1.1\"\n        port: 5000\n"), 0o644)
	code, out, _ := run(t, "", "check-config", f)
	want := "parkpage.yaml:2:11: log.format: \"xml\" is not text or json\nparkpage.yaml:7:16: zones.a.outputs[0].group: \"239.1.1\" is not an IPv4 multicast address\n"
	if code != 1 || out != want {
		t.Errorf("check-config: %d\n%s\nwant\n%s", code, out, want)
	}
}

func TestHelp(t *testing.T) {
	for _, c := range []string{"run", "check-config", "print-default-config", "version", "page", "render", "relays-off", "hash-password", "appliance"} {
		code, out, errOut := run(t, "", c, "-h")
		if code != 0 || !strings.Contains(out+errOut, "Usage: parkpage "+c) {
			t.Errorf("%s -h: %d %q %q", c, code, out, errOut)
		}
	}
	code, out, _ := run(t, "", "-h")
	if code != 0 || !strings.Contains(out, "parkpage check-config FILE") {
		t.Errorf("-h: %d %q", code, out)
	}
	if code, _, _ := run(t, "", "frobnicate"); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

func TestHashPassword(t *testing.T) {
	code, out, _ := run(t, "correct horse\n", "hash-password")
	if code != 0 || !strings.HasPrefix(out, "$2a$") {
		t.Errorf("hash-password: %d %q", code, out)
	}
}

// appliance is a running parkpage process.
type appliance struct {
	cmd  *exec.Cmd
	base string
	logs *syncBuffer
}

type syncBuffer struct {
	ch  chan string
	all strings.Builder
}

func freePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testConfig is a config whose every socket is on loopback.
func testConfig(t *testing.T, extra string) string {
	sip := freePort(t, "udp")
	return fmt.Sprintf(`sip:
  listen:
    - {transport: udp, address: "127.0.0.1:%d"}
  rtp_ports: 30000-30999
zones:
  all:
    outputs:
      - {type: polycom, interface: lo}
      - {type: rtp, group: 224.5.6.20, port: 10008, interface: lo}
%s`, sip, extra)
}

func startAppliance(t *testing.T, cfg string, args ...string) *appliance {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "parkpage.yaml")
	if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "tcp")
	all := append([]string{"run", "-config", f, "-state-dir", filepath.Join(dir, "state"), "-http", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	cmd := exec.Command(binary, all...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &appliance{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &syncBuffer{ch: make(chan string, 1000)}}
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			a.logs.ch <- s.Text()
		}
		close(a.logs.ch)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		pw.Close()
	})
	a.waitLog(t, "parkpage running")
	return a
}

// waitLog waits for a log line matching re and returns it.
func (a *appliance) waitLog(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-a.logs.ch:
			if !ok {
				t.Fatalf("process ended before log %q; logs:\n%s", re, a.logs.all.String())
			}
			a.logs.all.WriteString(l + "\n")
			if rx.MatchString(l) {
				return l
			}
		case <-deadline:
			t.Fatalf("no log %q; logs:\n%s", re, a.logs.all.String())
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("%s: %s", url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestRunServesAPIAndStopsCleanly(t *testing.T) {
	a := startAppliance(t, testConfig(t, ""))
	var st struct {
		Version      string `json:"version"`
		ConfigSource string `json:"config_source"`
	}
	getJSON(t, a.base+"/api/v1/status", &st)
	if !strings.HasSuffix(st.ConfigSource, "parkpage.yaml") {
		t.Errorf("status %+v", st)
	}
	start := time.Now()
	a.cmd.Process.Signal(syscall.SIGTERM)
	err := a.cmd.Wait()
	if err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
}

func TestReloadKeepsRunningConfigWhenInvalid(t *testing.T) {
	a := startAppliance(t, testConfig(t, ""))
	path := a.cmd.Args[3]
	// A bad file is refused, its problems logged, the old config kept.
	os.WriteFile(path, []byte("log:\n  format: xml\n"), 0o644)
	a.cmd.Process.Signal(syscall.SIGHUP)
	l := a.waitLog(t, "config reload refused")
	if !strings.Contains(l, `parkpage.yaml:2:11: log.format: \"xml\" is not text or json`) {
		t.Errorf("log line %q", l)
	}
	res, err := http.Post(a.base+"/api/v1/reload", "application/json", nil)
	if err != nil || res.StatusCode != 422 {
		t.Fatalf("API reload of bad config: %v %v", res, err)
	}
	res.Body.Close()
	// A good file is applied.
	os.WriteFile(path, []byte(testConfig(t, "announce:\n  voice: kal16\n")), 0o644)
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, "config reloaded")
}

func TestStartupErrorsAreOneClearLine(t *testing.T) {
	// Every socket on loopback (the default config would bind 0.0.0.0:5060).
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "parkpage.yaml")
	os.WriteFile(cfgFile, []byte(testConfig(t, "")), 0o644)
	// An unwritable state directory: a file where the directory should be.
	blocker := filepath.Join(dir, "state")
	os.WriteFile(blocker, nil, 0o644)
	code, _, errOut := run(t, "", "run", "-config", cfgFile, "-state-dir", filepath.Join(blocker, "sub"), "-http", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "state directory "+filepath.Join(blocker, "sub")+" is not writable") ||
		!strings.Contains(errOut, "set state_dir (or -state-dir)") {
		t.Errorf("state dir: %d %q", code, errOut)
	}
	// The HTTP port already in use.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, _, errOut = run(t, "", "run", "-config", cfgFile, "-state-dir", t.TempDir(), "-http", l.Addr().String())
	if code != 1 || !strings.Contains(errOut, "is already in use: stop the other program or set http.listen") {
		t.Errorf("port in use: %d %q", code, errOut)
	}
	// The SIP port already in use.
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	sipCfg := filepath.Join(dir, "sip-taken.yaml")
	taken := fmt.Sprintf("sip:\n  listen:\n    - {transport: udp, address: \"%s\"}\n  rtp_ports: 30000-30999\n", u.LocalAddr())
	os.WriteFile(sipCfg, []byte(taken), 0o644)
	code, _, errOut = run(t, "", "run", "-config", sipCfg, "-state-dir", t.TempDir(), "-http", "127.0.0.1:0")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "address already in use: stop the other SIP service or set sip.listen") {
		t.Errorf("SIP port in use: %d %q", code, errOut)
	}
}
