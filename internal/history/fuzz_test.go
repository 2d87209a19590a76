package history

import (
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
)

// FuzzLoad: any history file loads without panicking, every park it
// yields has a slot and a park time, finished parks end after they
// began, and what compaction writes loads back to the same parks.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"ev":{"t":"2024-12-02T08:00:00Z","type":"call.parked","slot":"701","caller":"<sip:1@x>"}}
{"ev":{"t":"2024-12-02T08:00:30Z","type":"call.rang_back","slot":"701","reason":"parker"}}
{"ev":{"t":"2024-12-02T08:01:00Z","type":"call.retrieved","slot":"701","retriever":"<sip:201@x>","reason":"pickup"}}
`))
	f.Add([]byte(`{"rec":{"slot":"702","parked":"2024-12-02T08:00:00Z","ended":"2024-12-02T07:00:00Z","outcome":"picked_up"}}
{"ev":{"t":"2024-12-02T09:00:00Z","type":"call.parked","slot":"703"}}
{"ev":{"t":"2024-12-02T09:00:00Z","type":"call.abandoned","slot":"703"`))
	f.Add([]byte("{}\n{\"ev\":{},\"rec\":{}}\nnot json\n"))
	f.Add([]byte(`{"ev":{"t":"2024-12-02T09:00:00Z","type":"call.parked","slot":"703"}}
{"ev":{"t":"2024-12-02T08:00:00Z","type":"call.retrieved","slot":"703"}}`))
	start := time.Date(2024, 12, 3, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newMemory(clocktest.New(start))
		s.load(data)
		got := s.Recent(1 << 20)
		for _, r := range got {
			if r.Slot == "" || r.Parked.IsZero() {
				t.Fatalf("park without slot or time: %+v", r)
			}
			if !r.Open() && r.Ended.Before(r.Parked) {
				t.Fatalf("ends before it began: %+v", r)
			}
		}
		s.mu.Lock()
		out, _ := s.encodeLocked()
		s.mu.Unlock()
		s2 := newMemory(clocktest.New(start))
		s2.load(out)
		if again := s2.Recent(1 << 20); len(again) != len(got) || s2.Skipped() != 0 {
			t.Fatalf("%d parks, %d after compaction (%d lines skipped)\n%s", len(got), len(again), s2.Skipped(), out)
		}
	})
}
