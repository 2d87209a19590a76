package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/parkpage/parkpage/internal/app"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
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
	sipPort := proctest.FreePort(t, "udp")
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
	run := runtest.Start(t, "appliance", a.Run)
	go ap.collect(run.Context())
	select {
	case <-ready:
	case <-run.Exited():
		t.Fatalf("appliance stopped: %v", run.Err())
	case <-time.After(20 * time.Second):
		t.Fatal("appliance not ready")
	}
	ap.api = "http://" + a.HTTPAddr().String()
	var once sync.Once
	var took time.Duration
	stop := func() time.Duration {
		once.Do(func() {
			start := time.Now()
			run.Stop()
			took = time.Since(start)
		})
		return took
	}
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

// rtpStreams splits RTP packets by SSRC, in arrival order.
func rtpStreams(t testing.TB, hs []mcasttest.Packet) (order []uint32, by map[uint32][]rtp.Packet) {
	by = map[uint32][]rtp.Packet{}
	for _, h := range hs {
		var p rtp.Packet
		if err := p.Unmarshal(h.Data); err != nil {
			t.Fatalf("bad RTP packet: %v", err)
		}
		if _, ok := by[p.SSRC]; !ok {
			order = append(order, p.SSRC)
		}
		by[p.SSRC] = append(by[p.SSRC], p)
	}
	return order, by
}

func (ap *inproc) sipp(scenario, service string, keys map[string]string, extra ...string) *sipptest.Sipp {
	ap.t.Helper()
	return runSipp(ap.t, ap.sip, scenario, service, keys, extra...)
}

// parkCall is a caller blind-transferred by 201 to ext (sipp, park.xml),
// staying parked for hold before hanging up.
func (ap *inproc) parkCall(ext string, hold time.Duration) *sipptest.Sipp {
	ap.t.Helper()
	return ap.sipp(sippDir+"park.xml", ext, map[string]string{"from": "2065550100", "parker": "201@127.0.0.1",
		"hold": fmt.Sprint(hold.Milliseconds()), "mport": fmt.Sprint(proctest.FreePort(ap.t, "udp")), "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"})
}

// runSipp runs scenario against target ("" for a UAS); the keys sip_port
// (sipp's own port) and calls are options, not scenario keys.
func runSipp(t testing.TB, target, scenario, service string, keys map[string]string, extra ...string) *sipptest.Sipp {
	t.Helper()
	port, calls := 0, 1
	if keys["sip_port"] != "" {
		port, _ = strconv.Atoi(keys["sip_port"])
		delete(keys, "sip_port")
	}
	if keys["calls"] != "" {
		calls, _ = strconv.Atoi(keys["calls"])
		delete(keys, "calls")
	}
	return sipptest.Start(t, sipptest.Options{
		Scenario: scenario, Target: target, Service: service, Port: port, Calls: calls, Keys: keys,
		Timeout: 60 * time.Second,
		Args:    append([]string{"-mp", fmt.Sprint(proctest.FreePort(t, "udp"))}, extra...),
	})
}

var _ io.Writer = testLog{}

func (ap *inproc) snapshotEvents() []stamped {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return append([]stamped(nil), ap.evs...)
}
