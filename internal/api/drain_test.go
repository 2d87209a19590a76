package api

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/parkpage/parkpage/internal/events"
)

func (f *fakeBackend) Drain() (DrainStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, "drain")
	return DrainStatus{Draining: true, ParkedAtStart: 2, Parked: 2, Ringing: 2}, nil
}

func (f *fakeBackend) CancelDrain() (DrainStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, "cancel")
	return DrainStatus{Parked: 1}, nil
}

func (f *fakeBackend) Draining() (DrainStatus, error) { return DrainStatus{}, nil }

var jsonType = []string{"Content-Type", "application/json"}

// noDrain is a backend without a park to drain.
type noDrain struct{ Backend }

// POST /api/v1/drain starts a drain (202 with its status), DELETE ends it
// (200); a backend that cannot drain answers 501.
func TestDrainRoutes(t *testing.T) {
	fb := &fakeBackend{}
	base := start(t, Config{}, fb, events.New())
	code, m := do(t, "POST", base+"/api/v1/drain", "", jsonType...)
	if code != http.StatusAccepted || m["draining"] != true || m["parked"] != float64(2) || m["ringing"] != float64(2) || m["empty"] != false {
		t.Errorf("POST: %d %v", code, m)
	}
	code, m = do(t, "DELETE", base+"/api/v1/drain", "", jsonType...)
	if code != http.StatusOK || m["draining"] != false || m["parked"] != float64(1) {
		t.Errorf("DELETE: %d %v", code, m)
	}
	if len(fb.drains) != 2 || fb.drains[0] != "drain" || fb.drains[1] != "cancel" {
		t.Errorf("backend saw %v", fb.drains)
	}
	if code, _ := do(t, "GET", base+"/api/v1/drain", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405 (the drain shows in /api/v1/status)", code)
	}

	s := New(Config{Listen: "127.0.0.1:0"}, noDrain{fb}, events.New(), metrics.NewSet(), slog.New(slog.DiscardHandler))
	nb := serve(t, s)
	if code, m := do(t, "POST", nb+"/api/v1/drain", "", jsonType...); code != http.StatusNotImplemented || m["error"] != errNoDrain {
		t.Errorf("POST without a park: %d %v", code, m)
	}
}
