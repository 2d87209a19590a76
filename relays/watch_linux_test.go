package relays

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/config"
)

func TestSentinelOf(t *testing.T) {
	cfg := Config{Relays: map[string]*config.Relay{
		"amp":  {Pin: "GPIO17"},
		"zone": {Pin: "GPIO27", ActiveLow: true},
	}}
	path := filepath.Join(t.TempDir(), "relays.json")
	if err := WriteSentinel(path, SentinelOf(cfg, 42)); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSentinel(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(s), "{42 [{amp GPIO17 0} {zone GPIO27 1}]}"; got != want {
		t.Errorf("sentinel %s, want %s", got, want)
	}
}

// Watch reacts to the death of the sentinel's process at once (here it
// cannot drive the line: this machine has no such GPIO line, which it
// reports), and not before.
func TestWatchActsWhenTheProcessDies(t *testing.T) {
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal("no sleep command (coreutils):", err)
	}
	defer child.Process.Kill()
	path := filepath.Join(t.TempDir(), "relays.json")
	s := Sentinel{PID: child.Process.Pid, Lines: []SentinelLine{{Relay: "zone", Pin: "PARKPAGE_TEST_NO_SUCH_LINE"}}}
	if err := WriteSentinel(path, s); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	acted := make(chan time.Time, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, path, func(f string, a ...any) {
			mu.Lock()
			logs = append(logs, fmt.Sprintf(f, a...))
			mu.Unlock()
			select {
			case acted <- time.Now():
			default:
			}
		})
	}()
	select {
	case <-acted:
		t.Fatalf("acted while the process lives: %v", logs)
	case <-time.After(500 * time.Millisecond):
	}
	killed := time.Now()
	child.Process.Kill()
	child.Wait()
	select {
	case at := <-acted:
		t.Logf("acted %v after the kill", at.Sub(killed))
	case <-time.After(10 * time.Second):
		t.Fatal("no reaction within 10 s of the kill")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(logs) != 1 || !strings.Contains(logs[0], "relay zone (PARKPAGE_TEST_NO_SUCH_LINE) not driven off") {
		t.Errorf("logs %q", logs)
	}
}
