package imagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// vm is one QEMU guest booted from an appliance image with user
// networking; every forward listens on 127.0.0.1 only.
type vm struct {
	t        testing.TB
	cmd      *exec.Cmd
	console  *syncBuffer
	started  time.Time
	httpPort int         // host port forwarded to the guest's 8080 (parkpage admin API)
	sipPort  int         // host port forwarded to the guest's 5060, UDP and TCP
	gokPort  int         // host port forwarded to the guest's 80 (gokrazy's web/update API)
	simPort  int         // host port forwarded to the guest's 8099 (the test image's gpiosim)
	udpFwd   map[int]int // guest UDP port (vmOptions.udp) -> host port
	peer     string      // the test's address as the box sees it ("" is QEMU's 10.0.2.2)
	done     chan struct{}
	waitErr  error
}

type vmOptions struct {
	arch  string   // amd64 or arm64
	image string   // disk image
	write bool     // let the guest write the image (default: -snapshot)
	extra []string // extra QEMU arguments
	// wav, if set, gives the guest an Intel HDA sound card whose line out
	// QEMU records to this WAV file (48 kHz, stereo, 16-bit).
	wav string
	// biosVirtio (amd64): legacy BIOS boot (SeaBIOS, the image's MBR boot
	// loader) with a virtio disk and network card, instead of UEFI with
	// AHCI and e1000.
	biosVirtio bool
	udp        []int // guest UDP ports to forward too (a parked call's RTP)
}

// syncBuffer collects the serial console for failure reports.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// imagePath finds an image under bin/ of the repository (or the env var).
func imagePath(t testing.TB, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = filepath.Join("..", "..", "bin", name)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("image %s: %v (build it with `make image-test`, or set %s)", p, err, env)
	}
	abs, _ := filepath.Abs(p)
	return abs
}

// freePort returns a port free on 127.0.0.1 for both TCP and UDP.
func freePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

func startVM(t testing.TB, o vmOptions) *vm {
	t.Helper()
	v := &vm{t: t, console: &syncBuffer{}, httpPort: freePort(t), sipPort: freePort(t), gokPort: freePort(t), simPort: freePort(t), done: make(chan struct{})}
	netdev := fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:8080,hostfwd=tcp:127.0.0.1:%d-:5060,hostfwd=udp:127.0.0.1:%d-:5060,hostfwd=tcp:127.0.0.1:%d-:80,hostfwd=tcp:127.0.0.1:%d-:8099",
		v.httpPort, v.sipPort, v.sipPort, v.gokPort, v.simPort)
	v.udpFwd = map[int]int{}
	for _, p := range o.udp {
		v.udpFwd[p] = freePort(t)
		netdev += fmt.Sprintf(",hostfwd=udp:127.0.0.1:%d-:%d", v.udpFwd[p], p)
	}
	var args []string
	var bin string
	switch o.arch {
	case "amd64":
		bin = "qemu-system-x86_64"
		// UEFI like gok vm run: the VARS store must be writable, so copy it.
		args = []string{"-machine", "q35", "-accel", "tcg",
			"-device", "i6300esb,id=watchdog0", "-watchdog-action", "reset"}
		if !o.biosVirtio {
			vars := filepath.Join(t.TempDir(), "OVMF_VARS_4M.fd")
			copyFile(t, "/usr/share/OVMF/OVMF_VARS_4M.fd", vars)
			args = append(args,
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
				"-drive", "if=pflash,format=raw,unit=1,file="+vars)
		}
	case "arm64":
		bin = "qemu-system-aarch64"
		args = []string{"-machine", "virt,highmem=off", "-cpu", "cortex-a72", "-accel", "tcg",
			"-bios", "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"}
	default:
		t.Fatalf("unknown arch %q", o.arch)
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("%s is not installed (make image-test installs it): %v", bin, err)
	}
	if !o.write {
		args = append(args, "-snapshot")
	}
	disk, nic := "file="+o.image+",format=raw", "e1000"
	if o.biosVirtio {
		disk, nic = disk+",if=virtio", "virtio-net-pci"
	}
	args = append(args, "-m", "1024", "-smp", "2",
		"-drive", disk,
		"-device", nic+",netdev=net0", "-netdev", netdev,
		"-nographic", "-monitor", "none", "-serial", "stdio")
	if o.wav != "" {
		args = append(args, "-audiodev", "wav,id=snd0,path="+o.wav+",out.frequency=48000,out.channels=2,out.format=s16",
			"-device", "intel-hda", "-device", "hda-output,audiodev=snd0")
	}
	args = append(args, o.extra...)
	v.cmd = exec.Command(bin, args...)
	v.cmd.Stdout = v.console
	v.cmd.Stderr = v.console
	v.cmd.Stdin = nil
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	t.Logf("%s started (pid %d): HTTP 127.0.0.1:%d, SIP 127.0.0.1:%d udp+tcp, gokrazy 127.0.0.1:%d",
		bin, v.cmd.Process.Pid, v.httpPort, v.sipPort, v.gokPort)
	go func() {
		v.waitErr = v.cmd.Wait()
		close(v.done)
	}()
	t.Cleanup(func() {
		if t.Failed() && o.arch == "amd64" {
			// parkpage's own log (slog) goes to gokrazy's ring buffer,
			// not to the console: print it while the guest still runs.
			t.Logf("parkpage's log (gokrazy):\n%s", v.serviceLog("/user/parkpage", 10*time.Second))
		}
		v.stop()
		if t.Failed() {
			t.Logf("serial console:\n%s", v.console.String())
		}
	})
	return v
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatalf("%v (is the ovmf package installed?)", err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// peerHost is the address sipp writes in Via, Contact and SDP.
func (v *vm) peerHost() string {
	if v.peer != "" {
		return v.peer
	}
	return "10.0.2.2"
}

func (v *vm) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", v.httpPort, path) }

// waitHealthy polls /healthz until it answers ok or the deadline passes;
// it returns the time from QEMU start to healthy.
func (v *vm) waitHealthy(deadline time.Duration) time.Duration {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	c := &http.Client{Timeout: 5 * time.Second}
	for {
		res, err := c.Get(v.url("/healthz"))
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == 200 && strings.TrimSpace(string(body)) == "ok" {
				return time.Since(v.started)
			}
		}
		select {
		case <-v.done:
			v.t.Fatalf("QEMU exited before /healthz answered: %v", v.waitErr)
		case <-ctx.Done():
			v.t.Fatalf("/healthz did not answer within %v (last error: %v)", deadline, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitConsole waits for text to appear on the serial console.
func (v *vm) waitConsole(text string, deadline time.Duration) {
	v.t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if strings.Contains(v.console.String(), text) {
			return
		}
		select {
		case <-v.done:
			v.t.Fatalf("QEMU exited before %q appeared on the console: %v", text, v.waitErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	v.t.Fatalf("%q did not appear on the console within %v", text, deadline)
}

// stop ends QEMU (the guest's file systems are synced by the test's own
// checks before; gokrazy's /perm is ext4 with a journal).
func (v *vm) stop() {
	v.cmd.Process.Kill()
	<-v.done
}

// consoleMatch waits for re to match the serial console and returns the
// first submatch.
func (v *vm) consoleMatch(re *regexp.Regexp, deadline time.Duration) string {
	v.t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if m := re.FindStringSubmatch(v.console.String()); m != nil {
			return m[1]
		}
		select {
		case <-v.done:
			v.t.Fatalf("QEMU exited before %v matched the console: %v", re, v.waitErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	v.t.Fatalf("%v did not match the console within %v", re, deadline)
	return ""
}
