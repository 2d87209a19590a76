package blfwatch

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
)

// startSipp runs scenario from testdata, playing the PBX on port of
// 127.0.0.1, until it has handled calls calls (SUBSCRIBE dialogs).
func startSipp(t *testing.T, scenario string, port, calls int) *sipptest.Sipp {
	t.Helper()
	return sipptest.Start(t, sipptest.Options{
		Scenario: filepath.Join("testdata", scenario),
		Port:     port,
		Calls:    calls,
		Timeout:  20 * time.Second,
		Args:     []string{"-t", "u1", "-default_behaviors", "all,-bye"},
	})
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
	logs *logtest.Recorder
	stop func() // stops the watcher (it unsubscribes) and waits for it
}

// startWatcher runs a watcher of slot 703 (local 713) against the PBX on
// port, with timers scaled down: 2 s subscriptions refreshed at 1 s.
func startWatcher(t *testing.T, port int, tune func(*Options)) *testWatcher {
	t.Helper()
	logs := &logtest.Recorder{}
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
	t.Cleanup(stack.HandleNotify(w.HandleNotify)) // runs after run.Stop: last registered, first run
	run := runtest.Start(t, "Run", w.Run)
	stop := func() {
		// A NOTIFY being handled sets everNotify (what the tests wait for)
		// before it is answered, and holds emitMu until it has been: wait
		// for that answer, so the unsubscribe cannot overtake the 200 that
		// sipp's scenario expects first (seen on a loaded machine).
		w.emitMu.Lock()
		w.emitMu.Unlock()
		run.Stop()
	}
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
	port := proctest.FreePort(t, "udp")
	pbx := startSipp(t, "pbx_slot.xml", port, 2)
	tw := startWatcher(t, port, nil)
	first := tw.waitSub(t, "at all", func(*subscription) bool { return true })
	tw.waitEvents(t, 2)
	// The subscription after the terminated one: new Call-ID, notified.
	tw.waitSub(t, "after the terminated one", func(s *subscription) bool { return s.callID != first && s.everNotify })
	tw.stop() // unsubscribes: sipp's last expected message
	pbx.MustPass(10 * time.Second)

	checkEvents(t, tw.rec.events(), []pbxevents.ParkEvent{
		{Kind: pbxevents.Parked, Slot: "713", ExternalSlot: "703", Caller: acme, Source: "blf"},
		{Kind: pbxevents.Retrieved, Slot: "713", ExternalSlot: "703", Caller: acme, Source: "blf"},
	})
	if n := tw.logs.Count(slog.LevelWarn, "blf subscription lost", ErrTerminated); n != 1 {
		t.Errorf("%d warnings of the terminated subscription, want 1", n)
	}
}

// TestSippPBXRestart: the PBX dies with a call parked and comes back on the
// same address having forgotten the subscription. The refresh gets 481;
// the watcher subscribes anew (new Call-ID) and the new full state, still
// showing the parked call, does not announce it a second time.
func TestSippPBXRestart(t *testing.T) {
	port := proctest.FreePort(t, "udp")
	before := startSipp(t, "pbx_before_restart.xml", port, 1)
	tw := startWatcher(t, port, nil)
	before.MustPass(10 * time.Second)
	first := tw.waitSub(t, "before the restart", func(s *subscription) bool { return s.everNotify })

	// The PBX is back before the watcher's refresh (due 1 s after it
	// subscribed; a refresh sent while nothing listens is retransmitted).
	after := startSipp(t, "pbx_restarted.xml", port, 2)
	tw.waitEvents(t, 2)
	tw.waitSub(t, "after the restart", func(s *subscription) bool { return s.callID != first && s.everNotify })
	tw.stop() // unsubscribes: sipp's last expected message
	after.MustPass(10 * time.Second)

	checkEvents(t, tw.rec.events(), []pbxevents.ParkEvent{
		{Kind: pbxevents.Parked, Slot: "713", ExternalSlot: "703", Caller: acme, Source: "blf"},
		{Kind: pbxevents.Retrieved, Slot: "713", ExternalSlot: "703", Caller: acme, Source: "blf"},
	})
	if n := tw.logs.Count(slog.LevelWarn, "blf subscription lost", ErrGone); n != 1 {
		t.Errorf("%d warnings of the forgotten subscription (481), want 1", n)
	}
}

// TestSippNoNotify: a PBX that accepts the SUBSCRIBE but never notifies is
// given up on after NotifyTimeout, and subscribed to anew.
func TestSippNoNotify(t *testing.T) {
	port := proctest.FreePort(t, "udp")
	pbx := startSipp(t, "pbx_silent.xml", port, 2)
	tw := startWatcher(t, port, func(o *Options) {
		o.NotifyTimeout = 300 * time.Millisecond
		o.RequestTimeout = 300 * time.Millisecond // bounds the unsubscribe to the gone sipp at cleanup
	})
	pbx.MustPass(10 * time.Second)
	if n := tw.logs.Count(slog.LevelWarn, "blf subscription lost", ErrNoNotify); n != 1 {
		t.Errorf("%d warnings of the silent subscription, want 1", n)
	}
	if evs := tw.rec.events(); len(evs) != 0 {
		t.Errorf("events from a PBX that said nothing: %+v", evs)
	}
}
