package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lanPair is two network namespaces joined by a veth pair: the appliance
// at 10.200.0.1 and a LAN device at 10.200.0.2. Nothing in them reaches
// the host's networks; both are deleted when the test ends.
type lanPair struct{ srv, cli string }

const (
	lanServer = "10.200.0.1"
	lanClient = "10.200.0.2"
)

func newLANPair(t *testing.T) lanPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root to create network namespaces: run make test as root or with sudo (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip (iproute2) is not installed: %v", err)
	}
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, len(t.Name())%10)
	p := lanPair{srv: "pp-srv-" + id, cli: "pp-cli-" + id}
	va, vb := "ppa"+id, "ppb"+id
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", p.srv)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.srv).Run() })
	ip("netns", "add", p.cli)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.cli).Run() })
	ip("link", "add", va, "netns", p.srv, "type", "veth", "peer", "name", vb, "netns", p.cli)
	ip("-n", p.srv, "addr", "add", lanServer+"/24", "dev", va)
	ip("-n", p.cli, "addr", "add", lanClient+"/24", "dev", vb)
	for _, l := range [][2]string{{p.srv, va}, {p.srv, "lo"}, {p.cli, vb}, {p.cli, "lo"}} {
		ip("-n", l[0], "link", "set", l[1], "up")
	}
	return p
}

// startInNetns runs `parkpage run` inside namespace ns with config file
// cfg ("" for the embedded default) and waits until it is running.
func startInNetns(t *testing.T, ns, cfg string) *appliance {
	t.Helper()
	dir := t.TempDir()
	args := []string{"netns", "exec", ns, binary, "run", "-state-dir", filepath.Join(dir, "state"), "-http", "127.0.0.1:8080"}
	if cfg != "" {
		f := filepath.Join(dir, "parkpage.yaml")
		if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-config", f)
	}
	return startLogged(t, exec.Command("ip", args...), "")
}

// sippFrom runs a sipp scenario from the LAN device's namespace against
// the appliance and returns its exit error and message trace. keys are
// -key pairs; set are -set pairs (the scenario's global variables).
func sippFrom(t *testing.T, ns, scenario, service string, set []string, keys ...string) (error, string) {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is not installed (apt-get install sip-tester): %v", err)
	}
	msgs := filepath.Join(t.TempDir(), "msg.log")
	args := []string{"netns", "exec", ns, "sipp", lanServer + ":5060", "-sf", scenario, "-s", service, "-m", "1",
		"-i", lanClient, "-p", "5070", "-nostdin", "-timeout", "30s", "-timeout_error",
		"-trace_msg", "-message_file", msgs}
	for i := 0; i+1 < len(keys); i += 2 {
		args = append(args, "-key", keys[i], keys[i+1])
	}
	for i := 0; i+1 < len(set); i += 2 {
		args = append(args, "-set", set[i], set[i+1])
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	trace, _ := os.ReadFile(msgs)
	return err, string(out) + string(trace)
}

// The embedded default config refuses a call from a LAN address nobody
// named (403), and the same call is taken once that address is named as
// the PBX. The appliance and the caller are in namespaces of their own,
// so nothing reaches a real network.
func TestDefaultConfigRefusesUnconfiguredLANSource(t *testing.T) {
	p := newLANPair(t)
	keys := []string{"from", "2000", "parker", "1001@pbx.lan", "mport", "6000", "hdr", "X-Test: 1", "hdr2", "X-Test: 2"}

	a := startInNetns(t, p.srv, "")
	if err, out := sippFrom(t, p.cli, sippDir+"refuse_403.xml", "700", nil, keys...); err != nil {
		t.Fatalf("INVITE from %s to the default config was not refused with 403: %v\n%s\nappliance:\n%s", lanClient, err, out, a.Output())
	}
	a.cmd.Process.Kill()
	_ = a.Wait(time.Minute)

	// The control: name the caller as the PBX and the same INVITE parks.
	named := strings.Replace(string(defaultConfigText(t)), "  # pbx: \"sip:192.0.2.5:5060\"", fmt.Sprintf("  pbx: \"sip:%s:5060\"", lanClient), 1)
	if !strings.Contains(named, "pbx: \"sip:"+lanClient) {
		t.Fatal("the default config no longer has the commented pbx line this test edits")
	}
	b := startInNetns(t, p.srv, named)
	if err, out := sippFrom(t, p.cli, sippDir+"park.xml", "700", []string{"hold", "200"}, keys...); err != nil {
		t.Fatalf("INVITE from the named PBX %s was not parked: %v\n%s\nappliance:\n%s", lanClient, err, out, b.Output())
	}
}

func defaultConfigText(t *testing.T) []byte {
	t.Helper()
	code, out, errOut := run(t, "", "print-default-config")
	if code != 0 {
		t.Fatalf("print-default-config: %d %s", code, errOut)
	}
	return []byte(out)
}
