package blfwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// sipp plays the PBX: a UAS scenario from testdata on a UDP port of
// 127.0.0.1.
type sipp struct {
	name string
	cmd  *exec.Cmd
	dir  string
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// freeUDPPort finds a port for sipp to listen on.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startSipp runs scenario until it has handled calls calls (SUBSCRIBE
// dialogs). It fails the test if sipp is not installed.
func startSipp(t *testing.T, scenario string, port, calls int) *sipp {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatalf("sipp not found (Debian package sip-tester): %v", err)
	}
	scen, err := filepath.Abs(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	p := &sipp{name: scenario, dir: t.TempDir(), done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-sf", scen,
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "u1",
		"-m", strconv.Itoa(calls),
		"-nostdin", "-default_behaviors", "all,-bye",
		"-timeout", "20s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(p.dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(p.dir, "messages.log"),
	)
	p.cmd.Dir = p.dir
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sipp: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() || os.Getenv("SIPP_DUMP") != "" {
			p.dump(t)
		}
	})
	return p
}

// wait waits for sipp to finish its calls and fails the test unless it
// exits successfully (every expected message came, in order).
func (p *sipp) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("sipp %s still running after %v", p.name, timeout)
	}
	if p.err != nil {
		t.Fatalf("sipp %s: %v", p.name, p.err)
	}
}

func (p *sipp) dump(t *testing.T) {
	t.Helper()
	for _, f := range []string{"errors.log", "messages.log"} {
		if b, err := os.ReadFile(filepath.Join(p.dir, f)); err == nil {
			t.Logf("sipp %s %s:\n%s", p.name, f, b)
		}
	}
	out := p.out.String()
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	t.Logf("sipp %s output (tail):\n%s", p.name, out)
}

// recorder collects park events.
type recorder struct {
	mu  sync.Mutex
	evs []pbxevents.ParkEvent
	c   chan struct{}
}

func newRecorder() *recorder { return &recorder{c: make(chan struct{}, 100)} }

func (r *recorder) sink(e pbxevents.ParkEvent) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
	select {
	case r.c <- struct{}{}:
	default:
	}
}

func (r *recorder) events() []pbxevents.ParkEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pbxevents.ParkEvent(nil), r.evs...)
}

// logRecorder keeps log records, and shows them in verbose test output.
type logRecorder struct {
	t    *testing.T
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// count returns how many records at level or above start with msg and,
// when errIs is set, carry an "err" attribute matching it.
func (h *logRecorder) count(level slog.Level, msg string, errIs error) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level < level || !strings.HasPrefix(r.Message, msg) {
			continue
		}
		ok := errIs == nil
		r.Attrs(func(a slog.Attr) bool {
			if e, isErr := a.Value.Any().(error); isErr && a.Key == "err" && errors.Is(e, errIs) {
				ok = true
			}
			return true
		})
		if ok {
			n++
		}
	}
	return n
}

// startStack runs parkpage's SIP stack on a UDP port of 127.0.0.1 until
// the test ends: the watcher subscribes through it.
func startStack(t *testing.T, logger *slog.Logger) *sipstack.Stack {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", fmt.Appendf(nil, `
state_dir: %s
sip:
  listen:
    - {transport: udp, address: "127.0.0.1:0"}
`, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	stack, err := sipstack.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = stack.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return stack
}

type testWatcher struct {
	w    *Watcher
	sip  *sipstack.Stack
	rec  *recorder
	logs *logRecorder
	stop func() // stops the watcher (it unsubscribes) and waits for it
}

// startWatcher runs a watcher of slot 703 (local 713) against the PBX on
// port, with timers scaled down: 2 s subscriptions refreshed at 1 s.
func startWatcher(t *testing.T, port int, tune func(*Options)) *testWatcher {
	t.Helper()
	logs := &logRecorder{t: t}
	logger := slog.New(logs)
	stack := startStack(t, logger)
	contact, err := stack.Contact("parkpage")
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	opts := Options{
		SIP:            stack,
		Contact:        contact,
		Sink:           rec.sink,
		Mapper:         pbxevents.NewSlotMapper(map[string]string{"703": "713"}),
		Logger:         logger,
		RequestTimeout: 1500 * time.Millisecond,
		NotifyTimeout:  time.Second,
		MinRetry:       50 * time.Millisecond,
		MaxRetry:       200 * time.Millisecond,
	}
	if tune != nil {
		tune(&opts)
	}
	w, err := New(config.BLFWatch{
		Server:   fmt.Sprintf("sip:127.0.0.1:%d", port),
		Slots:    config.Range{First: 703, Last: 703},
		Username: "parkpage",
		Password: "s3cret",
		Expires:  config.Duration(2 * time.Second),
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	remove := stack.HandleNotify(w.HandleNotify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(func() {
		stop()
		remove()
	})
	return &testWatcher{w: w, sip: stack, rec: rec, logs: logs, stop: stop}
}

// waitEvents waits for n park events.
func (tw *testWatcher) waitEvents(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for len(tw.rec.events()) < n {
		select {
		case <-tw.rec.c:
		case <-timeout:
			t.Fatalf("got %+v, want %d events", tw.rec.events(), n)
		}
	}
}

// waitSub waits for a live subscription that satisfies ok and returns its
// Call-ID.
func (tw *testWatcher) waitSub(t *testing.T, what string, ok func(*subscription) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tw.w.mu.Lock()
		id := ""
		for k, sub := range tw.w.subs {
			if ok(sub) {
				id = k
			}
		}
		tw.w.mu.Unlock()
		if id != "" {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("no subscription %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkEvents(t *testing.T, got []pbxevents.ParkEvent, want []pbxevents.ParkEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		g := got[i]
		if g.Time.IsZero() || time.Since(g.Time) > time.Minute {
			t.Errorf("event %d: time %v", i, g.Time)
		}
		g.Time = time.Time{}
		if g != want[i] {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}
}

const acme = "ACME Supply <sip:+15551234567@pbx.lan>"

// TestSippSlotLifecycle: digest auth, the capture's NOTIFYs, a stale
// version, a refresh, a partial document and the PBX ending the
// subscription, after which the watcher subscribes anew.
func TestSippSlotLifecycle(t *testing.T) {
	port := freeUDPPort(t)
	pbx := startSipp(t, "pbx_slot.xml", port, 2)
	tw := startWatcher(t, port, nil)
	first := tw.waitSub(t, "at all", func(*subscription) bool { return true })
	tw.waitEvents(t, 2)
	// The subscription after the terminated one: new Call-ID, notified.
	tw.waitSub(t, "after the terminated one", func(s *subscription) bool { return s.callID != first && s.everNotify })
	tw.stop() // unsubscribes: sipp's last expected message
	pbx.wait(t, 10*time.Second)

	checkEvents(t, tw.rec.events(), []pbxevents.ParkEvent{
		{Kind: pbxevents.Parked, Slot: "713", ExternalSlot: "703", Caller: acme, Source: "blf"},
		{Kind: pbxevents.Retrieved, Slot: "713", ExternalSlot: "703", Caller: acme, Source: "blf"},
	})
	if n := tw.logs.count(slog.LevelWarn, "blf subscription lost", ErrTerminated); n != 1 {
		t.Errorf("%d warnings of the terminated subscription, want 1", n)
	}
}

// TestSippPBXRestart: the PBX dies with a call parked and comes back on the
// same address having forgotten the subscription. The refresh gets 481;
// the watcher subscribes anew (new Call-ID) and the new full state, still
// showing the parked call, does not announce it a second time.
func TestSippPBXRestart(t *testing.T) {
	port := freeUDPPort(t)
	before := startSipp(t, "pbx_before_restart.xml", port, 1)
	tw := startWatcher(t, port, nil)
	before.wait(t, 10*time.Second)
	first := tw.waitSub(t, "before the restart", func(s *subscription) bool { return s.everNotify })

	// The PBX is back before the watcher's refresh (due 1 s after it
	// subscribed; a refresh sent while nothing listens is retransmitted).
	after := startSipp(t, "pbx_restarted.xml", port, 2)
	tw.waitEvents(t, 2)
	tw.waitSub(t, "after the restart", func(s *subscription) bool { return s.callID != first && s.everNotify })
	tw.stop() // unsubscribes: sipp's last expected message
	after.wait(t, 10*time.Second)

	checkEvents(t, tw.rec.events(), []pbxevents.ParkEvent{
		{Kind: pbxevents.Parked, Slot: "713", ExternalSlot: "703", Caller: acme, Source: "blf"},
		{Kind: pbxevents.Retrieved, Slot: "713", ExternalSlot: "703", Caller: acme, Source: "blf"},
	})
	if n := tw.logs.count(slog.LevelWarn, "blf subscription lost", ErrGone); n != 1 {
		t.Errorf("%d warnings of the forgotten subscription (481), want 1", n)
	}
}

// TestSippNoNotify: a PBX that accepts the SUBSCRIBE but never notifies is
// given up on after NotifyTimeout, and subscribed to anew.
func TestSippNoNotify(t *testing.T) {
	port := freeUDPPort(t)
	pbx := startSipp(t, "pbx_silent.xml", port, 2)
	tw := startWatcher(t, port, func(o *Options) {
		o.NotifyTimeout = 300 * time.Millisecond
		o.RequestTimeout = 300 * time.Millisecond // bounds the unsubscribe to the gone sipp at cleanup
	})
	pbx.wait(t, 10*time.Second)
	if n := tw.logs.count(slog.LevelWarn, "blf subscription lost", ErrNoNotify); n != 1 {
		t.Errorf("%d warnings of the silent subscription, want 1", n)
	}
	if evs := tw.rec.events(); len(evs) != 0 {
		t.Errorf("events from a PBX that said nothing: %+v", evs)
	}
}
