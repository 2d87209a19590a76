package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"golang.org/x/net/ipv4"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/parkpage/parkpage/internal/app"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/multicast/polycom"
)

// inproc is parkpage running in-process on loopback, with gpiotest pins
// for its relays.
type inproc struct {
	t    testing.TB
	app  *app.App
	core *core
	pins map[string]*gpiotest.Pin
	sip  string // 127.0.0.1:port
	api  string // http://127.0.0.1:port
	sub  *events.Subscription

	mu  sync.Mutex
	evs []stamped
}

type stamped struct {
	at time.Time
	e  events.Event
}

// startInproc runs parkpage on config y (the SIP listener and state
// directory are added) until the test ends.
func startInproc(t testing.TB, y string, pinNames ...string) *inproc {
	t.Helper()
	return startInprocPBX(t, y, "", pinNames...)
}

// startInprocPBX is startInproc with sip.pbx set to pbx.
func startInprocPBX(t testing.TB, y, pbx string, pinNames ...string) *inproc {
	t.Helper()
	ap, _ := startInprocFull(t, y, pbx, pinNames...)
	return ap
}

// startInprocStoppable is startInproc with a stop function that stops the
// appliance and says how long it took.
func startInprocStoppable(t testing.TB, y string, pinNames ...string) (*inproc, func() time.Duration) {
	t.Helper()
	return startInprocFull(t, y, "", pinNames...)
}

func startInprocFull(t testing.TB, y, pbx string, pinNames ...string) (*inproc, func() time.Duration) {
	t.Helper()
	dir := t.TempDir()
	sipPort := freePort(t, "udp")
	rtpBase := 10000 + (sipPort % 200 * 100) // below the ephemeral ports freePort hands out
	httpBlock := "http:\n  listen: 127.0.0.1:0\n"
	if strings.Contains(y, "\nhttp:") {
		httpBlock = "" // the test's own, with credentials
	}
	prefix := fmt.Sprintf("state_dir: %s\nlog: {level: debug}\n%ssip:\n  listen: [{transport: udp, address: \"127.0.0.1:%d\"}]\n  trusted: [127.0.0.0/8]\n  rtp_ports: %d-%d\n", dir, httpBlock, sipPort, rtpBase, rtpBase+99)
	if pbx != "" {
		prefix += fmt.Sprintf("  pbx: %q\n", pbx)
	}
	y = prefix + y
	path := filepath.Join(dir, "parkpage.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	ap := &inproc{t: t, pins: map[string]*gpiotest.Pin{}, sip: fmt.Sprintf("127.0.0.1:%d", sipPort)}
	for _, n := range pinNames {
		ap.pins[n] = &gpiotest.Pin{N: n}
	}
	ready := make(chan struct{})
	a, err := app.New(app.Options{ConfigPath: path, LogOutput: testLog{t}, Version: "test", Ready: func(*app.App) { close(ready) }})
	if err != nil {
		t.Fatal(err)
	}
	ap.app = a
	ap.sub = a.Bus().Subscribe(4096)
	timing := polycom.DefaultTiming()
	timing.AlertCount, timing.EndCount = 3, 3
	ap.core, err = wireWith(a, wireOptions{
		PolycomTiming: timing,
		Relays: func(name string) (gpio.PinOut, error) {
			if p := ap.pins[name]; p != nil {
				return p, nil
			}
			return nil, fmt.Errorf("no pin %q", name)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	go ap.collect(ctx)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("appliance stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("appliance not ready")
	}
	ap.api = "http://" + a.HTTPAddr().String()
	var once sync.Once
	var took time.Duration
	stop := func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("appliance: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("appliance did not stop within 5 s")
			}
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return ap, stop
}

func (ap *inproc) collect(ctx context.Context) {
	defer ap.sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-ap.sub.C():
			ap.mu.Lock()
			ap.evs = append(ap.evs, stamped{time.Now(), e})
			ap.mu.Unlock()
		}
	}
}

// waitEvent waits for the first event of typ (matching slot when set) at
// or after index from, returning it and its index.
func (ap *inproc) waitEvent(typ events.Type, from int, timeout time.Duration) (stamped, int) {
	ap.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ap.mu.Lock()
		for i := from; i < len(ap.evs); i++ {
			if ap.evs[i].e.Type == typ {
				s := ap.evs[i]
				ap.mu.Unlock()
				return s, i
			}
		}
		ap.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	ap.t.Fatalf("no %s event within %v; events: %v", typ, timeout, ap.eventTypes())
	return stamped{}, 0
}

func (ap *inproc) eventTypes() []string {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	var s []string
	for _, e := range ap.evs {
		s = append(s, string(e.e.Type)+":"+e.e.Slot+e.e.Relay+e.e.Reason)
	}
	return s
}

func (ap *inproc) count(typ events.Type) int {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	n := 0
	for _, e := range ap.evs {
		if e.e.Type == typ {
			n++
		}
	}
	return n
}

type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	if testing.Verbose() {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// listener is a multicast receiver joined on lo.
type listener struct {
	t    testing.TB
	conn *ipv4.PacketConn
	mu   sync.Mutex
	pkts []heard
	done chan struct{}
}

type heard struct {
	at   time.Time
	data []byte
}

func listen(t testing.TB, group string, port int) *listener {
	t.Helper()
	// Bound to the group itself: only that group's datagrams, joined on lo.
	c, err := net.ListenPacket("udp4", net.JoinHostPort(group, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	p := ipv4.NewPacketConn(c)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.JoinGroup(lo, &net.UDPAddr{IP: net.ParseIP(group)}); err != nil {
		t.Fatalf("join %s on lo: %v", group, err)
	}
	l := &listener{t: t, conn: p, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		buf := make([]byte, 2048)
		for {
			n, _, _, err := p.ReadFrom(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.pkts = append(l.pkts, heard{time.Now(), bytes.Clone(buf[:n])})
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-l.done })
	return l
}

func (l *listener) snapshot() []heard {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]heard(nil), l.pkts...)
}

// waitPackets waits until at least n packets arrived.
func (l *listener) waitPackets(n int, timeout time.Duration) []heard {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p := l.snapshot(); len(p) >= n {
			return p
		}
		time.Sleep(2 * time.Millisecond)
	}
	l.t.Fatalf("multicast listener got %d packets within %v, want %d", len(l.snapshot()), timeout, n)
	return nil
}

// rtpStreams splits RTP packets by SSRC, in arrival order.
func rtpStreams(t testing.TB, hs []heard) (order []uint32, by map[uint32][]rtp.Packet) {
	by = map[uint32][]rtp.Packet{}
	for _, h := range hs {
		var p rtp.Packet
		if err := p.Unmarshal(h.data); err != nil {
			t.Fatalf("bad RTP packet: %v", err)
		}
		if _, ok := by[p.SSRC]; !ok {
			order = append(order, p.SSRC)
		}
		by[p.SSRC] = append(by[p.SSRC], p)
	}
	return order, by
}

// sipp runs one sipp scenario against the inproc.
type sippRun struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
	msgs string
	// waited is set (on the test's goroutine) once done has been read.
	waited bool
}

func (ap *inproc) sipp(scenario, service string, keys map[string]string, extra ...string) *sippRun {
	ap.t.Helper()
	return runSipp(ap.t, ap.sip, scenario, service, keys, extra...)
}

// parkCall is a caller blind-transferred by 201 to ext (sipp, park.xml),
// staying parked for hold before hanging up.
func (ap *inproc) parkCall(ext string, hold time.Duration) *sippRun {
	ap.t.Helper()
	return ap.sipp(sippDir+"park.xml", ext, map[string]string{"from": "2065550100", "parker": "201@127.0.0.1",
		"hold": fmt.Sprint(hold.Milliseconds()), "mport": fmt.Sprint(freePort(ap.t, "udp")), "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"})
}

func runSipp(t testing.TB, target, scenario, service string, keys map[string]string, extra ...string) *sippRun {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is not installed (apt-get install sip-tester): %v", err)
	}
	if abs, err := filepath.Abs(scenario); err == nil {
		scenario = abs
	}
	dir := t.TempDir()
	s := &sippRun{t: t, name: filepath.Base(scenario), done: make(chan error, 1), msgs: filepath.Join(dir, "msg.log")}
	port := freePort(t, "udp")
	if keys["sip_port"] != "" {
		port, _ = strconv.Atoi(keys["sip_port"])
		delete(keys, "sip_port")
	}
	calls := "1"
	if keys["calls"] != "" {
		calls = keys["calls"]
		delete(keys, "calls")
	}
	args := []string{"-sf", scenario, "-m", calls, "-i", "127.0.0.1", "-p", fmt.Sprint(port),
		"-mp", fmt.Sprint(freePort(t, "udp")), "-nostdin", "-timeout", "60s", "-timeout_error",
		"-trace_msg", "-message_file", s.msgs, "-max_recv_loops", "1000"}
	if target != "" {
		args = append([]string{target}, args...)
	}
	if service != "" {
		args = append(args, "-s", service)
	}
	scen, err := os.ReadFile(scenario)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range keys {
		if strings.Contains(string(scen), `variable="`+k+`"`) {
			args = append(args, "-set", k, v)
		} else {
			args = append(args, "-key", k, v)
		}
	}
	args = append(args, extra...)
	s.cmd = exec.Command("sipp", args...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if !s.waited {
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

func (s *sippRun) wait(timeout time.Duration) {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.waited = true
		if err != nil {
			msgs, _ := os.ReadFile(s.msgs)
			s.t.Fatalf("sipp %s: %v\n%s\n%s", s.name, err, s.out.String(), tailLines(string(msgs), 60))
		}
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		msgs, _ := os.ReadFile(s.msgs)
		s.t.Fatalf("sipp %s did not finish in %v\n%s", s.name, timeout, tailLines(string(msgs), 60))
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var _ io.Writer = testLog{}

func (ap *inproc) snapshotEvents() []stamped {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return append([]stamped(nil), ap.evs...)
}
