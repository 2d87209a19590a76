package sipstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/config"
)

// A BLF subscription saved by the last process is resumed at start, before
// the stack serves: its NOTIFY waits until sipgo reads the listener and
// then reaches the phone, however long start-up takes (it used to fail
// with "address already in use" after half a second, and the subscription
// was dropped: a restarted box's BLF keys then stayed dark).
func TestResumedSubscriptionNotifiesOnceServing(t *testing.T) {
	phone := newRawPeer(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "blf-subscriptions.json")
	saved := []SubscriptionState{{
		Ext: "701", CallID: "blf-1@test", LocalTag: "srv1", RemoteTag: "ph1",
		Local:     "sip:701@127.0.0.1",
		Remote:    "<sip:301@pbx.lan>;tag=ph1",
		Target:    fmt.Sprintf("sip:301@127.0.0.1:%d", phone.port()),
		Transport: "udp", Source: fmt.Sprintf("127.0.0.1:%d", phone.port()),
		Expires: time.Now().Add(time.Hour), CSeq: 5, Version: 5,
	}}
	b, _ := json.Marshal(saved)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse("test.yaml", []byte(fmt.Sprintf("state_dir: %s\nsip:\n  listen:\n    - {transport: udp, address: \"127.0.0.1:0\"}\n", dir)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Presence("701")
	if n, err := s.KeepSubscriptions(path); n != 1 || err != nil {
		t.Fatalf("resumed %d subscriptions (%v), want 1", n, err)
	}
	// The rest of start-up takes its time (renders, zones) before Run.
	time.Sleep(3 * time.Second) // longer than any bound on a request's wait for serving
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	notify := phone.read("NOTIFY ", time.Now().Add(30*time.Second))
	if got := header(notify, "Call-ID"); got != "blf-1@test" {
		t.Errorf("NOTIFY Call-ID %q, want the saved dialog's", got)
	}
	if got := header(notify, "Event"); got != "dialog" {
		t.Errorf("NOTIFY Event %q", got)
	}
}
