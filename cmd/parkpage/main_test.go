package main

import (
	"bytes"
	"encoding/json"
	"fmt"
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

	"github.com/parkpage/parkpage/internal/testsupport/proctest"
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
	for _, c := range []string{"run", "check-config", "print-default-config", "version", "page", "render", "relays-off", "hash-password", "appliance", "drain"} {
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
// startupTimeout bounds the wait for a started process's readiness line:
// generous, since a -race build on a busy 2-core machine has taken over
// a minute; a healthy start takes about a second, and a process that ends
// fails the wait at once.
const startupTimeout = 3 * time.Minute

type appliance struct {
	*proctest.Proc
	cmd  *exec.Cmd
	base string
}

// testConfig is a config whose every socket is on loopback.
func testConfig(t *testing.T, extra string) string {
	sip := proctest.FreePort(t, "udp")
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
	port := proctest.FreePort(t, "tcp")
	all := append([]string{"run", "-config", f, "-state-dir", filepath.Join(dir, "state"), "-http", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	return startLogged(t, exec.Command(binary, all...), fmt.Sprintf("http://127.0.0.1:%d", port))
}

// startLogged starts cmd (parkpage run, perhaps wrapped), collects its log
// lines and waits until it is running; base is its admin API URL.
func startLogged(t *testing.T, cmd *exec.Cmd, base string) *appliance {
	t.Helper()
	p := proctest.StartCmd(t, cmd)
	a := &appliance{Proc: p, cmd: p.Cmd, base: base}
	a.waitLog(t, "parkpage running")
	return a
}

// waitLog waits for a log line matching re (after the previous one) and
// returns it.
func (a *appliance) waitLog(t *testing.T, re string) string {
	t.Helper()
	// Generous: a -race binary on a busy 2-core machine may take this long to
	// render its announcements and open its sockets; a healthy one takes 1 s.
	// WaitLine fails at once, with the output, if the process ends.
	return a.WaitLine(t, ".*(?:"+re+").*", startupTimeout)[0]
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
	// Generous: the process bounds its own shutdown (below); this only
	// waits for a busy machine to run it.
	err := a.Wait(time.Minute)
	if err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	// The process bounds its own shutdown: past 2 s it says so and exits 1,
	// which fails here whatever the machine's load.
	if st := a.cmd.ProcessState; !st.Success() {
		t.Errorf("exit after SIGTERM: %v", st)
	}
	if out := a.Output(); strings.Contains(out, "shutdown took longer") || !strings.Contains(out, "parkpage stopped") {
		t.Errorf("shutdown after %v; output:\n%s", time.Since(start), out)
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

// Every command's usage line names every flag its FlagSet has: the line is
// what users read first, so a flag missing there is a flag nobody finds.
func TestUsageLinesListEveryFlag(t *testing.T) {
	flagRe := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, c := range commands() {
		var out, errOut bytes.Buffer
		if code := dispatch([]string{c.name, "-h"}, &out, &errOut); code != 0 {
			t.Errorf("%s -h: exit %d", c.name, code)
			continue
		}
		help := out.String() + errOut.String()
		if !strings.Contains(help, "Usage: parkpage "+c.name+" "+c.args) {
			t.Errorf("%s -h does not show its usage line %q:\n%s", c.name, c.args, help)
		}
		for _, m := range flagRe.FindAllStringSubmatch(help, -1) {
			name := m[1]
			if !regexp.MustCompile(`(^|[\s\[(|])--?` + regexp.QuoteMeta(name) + `($|[\s\]|)])`).MatchString(c.args) {
				t.Errorf("parkpage %s: flag -%s is missing from the usage line %q", c.name, name, c.args)
			}
		}
	}
}

// README's command list shows each command's usage line as -h prints it.
func TestREADMECommandsMatchUsage(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands() {
		line := strings.TrimSpace("parkpage " + c.name + " " + c.args)
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `\s*$`).Match(readme) {
			t.Errorf("README.md has no line %q", line)
		}
	}
}
