package logring

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRingKeepsLastRecords(t *testing.T) {
	var out bytes.Buffer
	r := New(3, slog.LevelInfo)
	log := slog.New(r.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.Debug("not kept")
	log.Info("one", "slot", 701)
	log.With("component", "media").WithGroup("rtp").Warn("two", "port", 10000, "why", "no answer")
	log.Error("three")
	log.Info("four")
	got := r.Last(10)
	if len(got) != 3 || got[0].Message != "four" || got[2].Message != "two" {
		t.Fatalf("got %+v", got)
	}
	if got[2].Attrs != `component=media rtp.port=10000 rtp.why="no answer"` || got[2].Level != "WARN" {
		t.Errorf("attrs %q level %s", got[2].Attrs, got[2].Level)
	}
	// The real handler still filters by its own level.
	if strings.Contains(out.String(), "msg=one") || !strings.Contains(out.String(), "msg=two") {
		t.Errorf("handler output:\n%s", out.String())
	}
	if n := len(New(5, nil).Last(5)); n != 0 {
		t.Errorf("empty ring: %d", n)
	}
}
