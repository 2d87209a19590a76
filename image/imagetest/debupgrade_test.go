package imagetest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDebUpgrade upgrades the Debian package under parked calls, as
// `apt upgrade` does on an installer's own Debian box: the package
// (PARKPAGE_DEB) is installed into a clean Debian chroot (mmdebstrap) and
// its service started as the unit says; three callers park (sipp on
// loopback, the test as their RTP peer); then `dpkg -i` of a newer
// version of the package (PARKPAGE_DEB_NEW, its binary reporting another
// version) runs the maintainer scripts. The chroot has no systemd as PID
// 1, so systemctl and deb-systemd-invoke are stand-ins
// (testdata/deb-chroot) that do what systemd does with the unit: SIGTERM,
// ExecStopPost, ExecStart as the parkpage user with the StateDirectory.
// The callers must hear the music again on the same stream from the new
// version, keep their slots, and be picked up; the service must not have
// been stopped before the new binary was unpacked.
func TestDebUpgrade(t *testing.T) {
	oldDeb, newDeb := envFile(t, "PARKPAGE_DEB"), envFile(t, "PARKPAGE_DEB_NEW")
	for _, tool := range []string{"mmdebstrap", "sipp", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make deb-test installs it): %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("TestDebUpgrade needs root (mmdebstrap, chroot)")
	}
	newVersion := debField(t, newDeb, "Version")
	if v := debField(t, oldDeb, "Version"); run(t, "dpkg", "--compare-versions", newVersion, "gt", v) != nil {
		t.Fatalf("PARKPAGE_DEB_NEW's version %s is not newer than %s", newVersion, v)
	}

	suite := os.Getenv("SUITE")
	if suite == "" {
		suite = "bookworm"
	}
	root := filepath.Join(t.TempDir(), "root")
	began := time.Now()
	if tarball := os.Getenv("PARKPAGE_DEB_CHROOT"); tarball != "" {
		// A chroot made before by the same mmdebstrap command, as a tarball.
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "tar", "-C", root, "-xf", tarball)
	} else if out, err := exec.Command("mmdebstrap", "--variant=apt", "--include=systemd,adduser,procps",
		"--dpkgopt=force-unsafe-io", suite, root).CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	t.Logf("clean %s chroot in %v", suite, time.Since(began).Round(time.Second))
	mustRun(t, "mount", "-t", "proc", "proc", filepath.Join(root, "proc"))
	t.Cleanup(func() {
		if out, err := chrootCmd(root, "/usr/local/sbin/parkpage-unit", "stop").CombinedOutput(); err != nil {
			t.Logf("stopping parkpage in the chroot: %v\n%s", err, out)
		}
		if out, err := exec.Command("umount", "-l", filepath.Join(root, "proc")).CombinedOutput(); err != nil {
			t.Errorf("umount proc: %v\n%s", err, out)
		}
		if t.Failed() {
			for _, f := range []string{"/run/parkpage-unit.log", "/var/log/parkpage.log"} {
				b, _ := os.ReadFile(filepath.Join(root, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	})
	for _, f := range []string{"parkpage-unit", "deb-systemd-invoke", "systemctl"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "deb-chroot", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "usr/local/sbin", f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, oldDeb, filepath.Join(root, "tmp/old.deb"))
	copyFile(t, newDeb, filepath.Join(root, "tmp/new.deb"))

	// The first install, before "boot": no service manager yet, so the
	// maintainer scripts start nothing. The site config (the conffile)
	// then moves every port to free ones on loopback: the chroot shares
	// the machine's network.
	mustChroot(t, root, "dpkg", "-i", "/tmp/old.deb")
	v := &vm{t: t, httpPort: freePort(t), sipPort: freePort(t), peer: "127.0.0.1", udpFwd: map[int]int{}}
	rtpLo := freeRange(t, 20)
	for p := rtpLo; p < rtpLo+20; p++ {
		v.udpFwd[p] = p // no NAT: the caller sends straight to the port
	}
	cfgPath := filepath.Join(root, "etc/parkpage/parkpage.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	site := string(cfg)
	for _, r := range []struct{ old, new string }{
		{"listen: 127.0.0.1:8080", fmt.Sprintf("listen: 127.0.0.1:%d\n  bearer_tokens: [%s]", v.httpPort, testToken)},
		{"0.0.0.0:5060", fmt.Sprintf("127.0.0.1:%d", v.sipPort)},
		{"rtp_ports: 10000-10999", fmt.Sprintf("rtp_ports: %d-%d", rtpLo, rtpLo+19)},
	} {
		if !strings.Contains(site, r.old) {
			t.Fatalf("the package's conffile has no %q:\n%s", r.old, site)
		}
		site = strings.ReplaceAll(site, r.old, r.new)
	}
	if err := os.WriteFile(cfgPath, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	mustChroot(t, root, "parkpage", "check-config", "/etc/parkpage/parkpage.yaml")

	// "Boot": systemd is there from now on, and starts the enabled unit.
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustChroot(t, root, "/usr/local/sbin/parkpage-unit", "start")
	v.started = time.Now()
	v.done = make(chan struct{}) // never closed: no QEMU
	v.waitHealthy(2 * time.Minute)
	oldVersion := boxVersion(t, v)

	held := []*heldCall{parkHeldAt(t, v, "701", "701", "2065550111"), parkHeldAt(t, v, "702", "702", "2065550112"),
		parkHeldAt(t, v, "700", "703", "2065550113")}
	callers := map[string]any{}
	for _, h := range held {
		h.waitMusic(t, time.Time{}, 50, time.Minute)
		callers[h.slot] = findSlot(t, v, h.slot)["caller"]
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/parkpage/calls.journal")); err != nil {
		t.Errorf("the call journal is not in the unit's StateDirectory: %v", err)
	}

	// The upgrade, as apt runs it.
	began = time.Now()
	cmd := chrootCmd(root, "dpkg", "--force-confdef", "--force-confold", "-i", "/tmp/new.deb")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i (upgrade): %v\n%s", err, out)
	}
	took := time.Since(began)
	v.waitHealthy(time.Minute)
	if got := boxVersion(t, v); got == oldVersion {
		t.Fatalf("after the upgrade the service still runs %s", got)
	}

	// The maintainer scripts restarted the service once, after the new
	// binary was unpacked (dh_installsystemd's restart-after-upgrade);
	// a stop before the unpack would have made the callers wait through
	// it.
	unitLog, _ := os.ReadFile(filepath.Join(root, "run/parkpage-unit.log"))
	stops := regexp.MustCompile(`(?m)^.* parkpage-unit: SIGTERM .*\(on disk: (.*)\)$`).FindAllStringSubmatch(string(unitLog), -1)
	if len(stops) != 1 || !strings.Contains(stops[0][1], strings.TrimPrefix(boxVersion(t, v), "v")) {
		t.Errorf("during the upgrade the service was stopped %d times, want once, with the new binary on disk:\n%s", len(stops), unitLog)
	}
	t.Logf("service manager calls:\n%s", unitLog)

	var gap time.Duration
	for _, h := range held {
		h.waitMusic(t, time.Now(), 50, time.Minute)
		g := h.checkContinued(t)
		gap = max(gap, g)
		t.Logf("slot %s: longest gap %v", h.slot, g.Round(time.Millisecond))
		s := findSlot(t, v, h.slot)
		if s == nil || s["state"] != "parked" || s["caller"] != callers[h.slot] {
			t.Errorf("slot %s after the upgrade: %v, want parked with caller %v", h.slot, s, callers[h.slot])
		}
	}
	journal, _ := os.ReadFile(filepath.Join(root, "var/log/parkpage.log"))
	if n := strings.Count(string(journal), `msg="call resumed"`); n != len(held) {
		t.Errorf("the new version logged %d calls resumed, want %d", n, len(held))
	}
	fmt.Printf("deb upgrade %s -> %s with %d parked calls: longest gap in hold music %.2f s (dpkg -i %.1f s)\n",
		oldVersion, boxVersion(t, v), len(held), gap.Seconds(), took.Seconds())
	for _, h := range held {
		pickUp(t, v, h)
	}
}

// envFile is a file named by an environment variable.
func envFile(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set (run `make deb-test`)", env)
	}
	abs, err := filepath.Abs(p)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	return abs
}

func debField(t *testing.T, deb, field string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -f %s %s: %v", deb, field, err)
	}
	return strings.TrimSpace(string(out))
}

func run(t *testing.T, name string, args ...string) error {
	t.Helper()
	return exec.Command(name, args...).Run()
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// chrootCmd runs a command in the chroot with a Debian root's PATH (the
// stand-ins in /usr/local/sbin first) and no questions asked.
func chrootCmd(root string, args ...string) *exec.Cmd {
	cmd := exec.Command("chroot", append([]string{root}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8"}
	return cmd
}

func mustChroot(t *testing.T, root string, args ...string) {
	t.Helper()
	if out, err := chrootCmd(root, args...).CombinedOutput(); err != nil {
		t.Fatalf("in the chroot: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// freeRange finds n consecutive UDP ports free on 127.0.0.1 (the RTP
// range of the package's service in the chroot).
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		lo := 20000 + 2*rand.IntN(15000)
		ok := true
		for p := lo; p < lo+n && ok; p++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				continue
			}
			c.Close()
		}
		if ok {
			return lo
		}
	}
	t.Fatal("no free range of UDP ports")
	return 0
}
