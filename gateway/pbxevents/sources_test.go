package pbxevents

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
)

// fakeAMI records the configs it was started with and reports one park
// per start.
type fakeAMI struct {
	mu      sync.Mutex
	started []string
	running int
}

func (f *fakeAMI) source(cfg config.AMI, sink Sink, mapper *SlotMapper, _ *slog.Logger) (Source, error) {
	f.mu.Lock()
	f.started = append(f.started, cfg.Address)
	f.mu.Unlock()
	return runFunc(func(ctx context.Context) error {
		f.mu.Lock()
		f.running++
		f.mu.Unlock()
		sink(ParkEvent{Kind: Parked, Slot: mapper.Local("71"), ExternalSlot: "71", Source: SourceAMI})
		<-ctx.Done()
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
		return nil
	}), nil
}

type runFunc func(ctx context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }

func next(t *testing.T, sub *events.Subscription) events.Event {
	t.Helper()
	select {
	case e := <-sub.C():
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return events.Event{}
}

func TestSources(t *testing.T) {
	bus := events.New()
	sub := bus.Subscribe(16)
	ami := &fakeAMI{}
	cfg := config.External{AMI: &config.AMI{Address: "pbx1:5038"}, SlotMap: map[string]string{"71": "701"}}
	s, err := NewSources(cfg, SourcesOptions{Bus: bus, AMI: ami.source})
	if err != nil {
		t.Fatal(err)
	}
	// The webhook maps slots before Run too.
	if err := s.Webhook(context.Background(), api.ParkEventRequest{Event: "parked", Slot: "71", Caller: "Bob <202>"}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, sub); e.Type != events.CallParked || e.Slot != "701" || e.Source != SourceWebhook || e.Caller != "Bob <202>" {
		t.Errorf("webhook event %+v", e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if e := next(t, sub); e.Slot != "701" || e.Source != SourceAMI {
		t.Errorf("ami event %+v", e)
	}
	// The same section again: nothing restarts.
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	// A new address restarts the source with it; the new slot map applies.
	cfg2 := config.External{AMI: &config.AMI{Address: "pbx2:5038"}, SlotMap: map[string]string{"71": "702"}}
	if err := s.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if e := next(t, sub); e.Slot != "702" {
		t.Errorf("after reload %+v", e)
	}
	// BLF configured but not available: an error naming it.
	if err := s.Reload(config.External{BLF: &config.BLFWatch{}}); err == nil {
		t.Error("blf without a BLF kind: no error")
	}
	cancel()
	<-done
	ami.mu.Lock()
	defer ami.mu.Unlock()
	if want := []string{"pbx1:5038", "pbx2:5038"}; len(ami.started) != 2 || ami.started[0] != want[0] || ami.started[1] != want[1] {
		t.Errorf("started %v, want %v", ami.started, want)
	}
	if ami.running != 0 {
		t.Errorf("%d sources still running after Run returned", ami.running)
	}
}
