package history

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/history/historytest"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
)

func drain(s *Store, sub *events.Subscription) int {
	n := 0
	for {
		select {
		case e := <-sub.C():
			if e.Type == events.Lost {
				panic("lost events")
			}
			s.Record(e)
			n++
		default:
			return n
		}
	}
}

func slotStats(t *testing.T, r Report, slot string) SlotStats {
	t.Helper()
	for _, l := range r.Lots {
		for _, s := range l.Slots {
			if s.Slot == slot {
				return s
			}
		}
	}
	t.Fatalf("no slot %s in report", slot)
	return SlotStats{}
}

func TestScriptedWeek(t *testing.T) {
	dir := t.TempDir()
	clk := clocktest.New(historytest.Start)
	s, err := Open(dir, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	cfg, sub := historytest.ScriptWeek(t, clk)
	if n := drain(s, sub); n < 7*(40+10+5)*2 {
		t.Fatalf("only %d events", n)
	}
	rep := s.BuildReport(LayoutOf(cfg), ReportOptions{Days: 7})

	tests := []struct {
		slot string
		want SlotStats
	}{
		// 701: 40 a day; the three a day held 95 s behind a 702 park
		// ring back too.
		{"701", SlotStats{Parks: 280, Pickups: 280, RingBacks: 21, Fallbacks: 21}},
		// 702: 10 a day, 3 rang back (and fell back) before pickup.
		{"702", SlotStats{Parks: 70, Pickups: 70, RingBacks: 21, Fallbacks: 21, MedianWait: 20, P90Wait: 95}},
		{"703", SlotStats{}},
		// 704: 5 a day, one abandoned after a minute.
		{"704", SlotStats{Parks: 35, Pickups: 28, Abandons: 7, MedianWait: 60, P90Wait: 60}},
	}
	for _, tc := range tests {
		got := slotStats(t, rep, tc.slot)
		got.Lot, got.Slot, got.Label = "", "", ""
		if tc.slot == "701" {
			got.MedianWait, got.P90Wait = 0, 0
		}
		if got != tc.want {
			t.Errorf("slot %s: got %+v\nwant %+v", tc.slot, got, tc.want)
		}
	}
	s701 := slotStats(t, rep, "701")
	// Waits of 701: i in 0..39 waits 15+i s, plus 20 s (i 3..9) or 95 s
	// (i 0..2): 25-54 s, 38-44 s and 110-112 s; nearest rank 20 and 36.
	if s701.MedianWait != 41 || s701.P90Wait != 53 {
		t.Errorf("701 waits: median %v p90 %v, want 41 and 53", s701.MedianWait, s701.P90Wait)
	}
	if rep.Lots[0].MaxInUse != 2 {
		t.Errorf("max in use %d, want 2", rep.Lots[0].MaxInUse)
	}
	if rep.Totals.Parks != 385 {
		t.Errorf("total parks %d", rep.Totals.Parks)
	}

	kinds := map[string]Finding{}
	for _, f := range rep.Findings {
		kinds[f.Kind+"/"+f.Slot+f.Group+f.Lot] = f
		t.Logf("%s: %s\n    %s", f.Kind, f.Title, f.Text)
	}
	for _, want := range []string{
		FindLabelDrift + "/703700", // 702 and 704 used around it
		FindQueue + "/reception",   // 44 a day picked up by Anna and Ben
		FindRingBacks + "/702700",  // 30 % rang back
		FindTooManySlots + "/700",  // 10 slots, 2 in use at most
	} {
		if _, ok := kinds[want]; !ok {
			t.Errorf("finding %s missing; have %v", want, keys(kinds))
		}
	}
	if len(rep.Findings) != 4 {
		t.Errorf("%d findings, want 4", len(rep.Findings))
	}
	if f := kinds[FindRingBacks+"/702700"]; !strings.Contains(f.Text, "warehouse") || !strings.Contains(f.Title, "30%") {
		t.Errorf("ring-back finding: %+v", f)
	}
	if f := kinds[FindQueue+"/reception"]; !strings.Contains(f.Title, "44 parks a day") {
		t.Errorf("queue finding: %+v", f)
	}
	// 705-710 are unused but above every used slot: not label drift.
	for _, f := range rep.Findings {
		if f.Kind == FindLabelDrift && f.Slot != "703" {
			t.Errorf("unexpected label drift: %+v", f)
		}
	}

	// A higher queue threshold removes that finding; 30 days has the same parks.
	if r2 := s.BuildReport(LayoutOf(cfg), ReportOptions{Days: 7, QueuePerDay: 45}); len(r2.Findings) != 3 {
		t.Errorf("queue 45: %d findings", len(r2.Findings))
	}
	if r30 := s.BuildReport(LayoutOf(cfg), ReportOptions{Days: 30}); r30.Totals.Parks != 385 {
		t.Errorf("30 days: %d parks", r30.Totals.Parks)
	}

	// It survives a restart: the file is compacted to one record per park.
	s.Close()
	s2, err := Open(dir, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	rep2 := s2.BuildReport(LayoutOf(cfg), ReportOptions{Days: 7})
	if fmt.Sprint(rep2.Lots) != fmt.Sprint(rep.Lots) || len(rep2.Findings) != len(rep.Findings) {
		t.Errorf("after reopening:\n%v\nwant\n%v", rep2.Lots, rep.Lots)
	}
	data, _ := os.ReadFile(filepath.Join(dir, FileName))
	if n := strings.Count(string(data), "\n"); n != 385 {
		t.Errorf("compacted file has %d lines, want 385", n)
	}
	recent := s2.Recent(3)
	if len(recent) != 3 || recent[0].Slot != "701" || recent[0].Outcome != OutcomePickedUp || !strings.Contains(recent[0].Describe(clk.Now()), "Picked up by Ben (202) after 0:54") {
		t.Errorf("recent: %+v / %s", recent, recent[0].Describe(clk.Now()))
	}
	// 91 days later the week is gone.
	clk.Advance(92 * 24 * time.Hour)
	s2.Close()
	s3, _ := Open(dir, Options{Clock: clk})
	if n := len(s3.Recent(10)); n != 0 {
		t.Errorf("%d parks kept after 92 days", n)
	}

	var csv strings.Builder
	rep.WriteCSV(&csv)
	if !strings.Contains(csv.String(), "700,702,Warehouse,7,70,20,95,70,21,21,0\n") {
		t.Errorf("csv:\n%s", csv.String())
	}
}

func keys(m map[string]Finding) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRunFollowsBus: the store records what the bus carries, in a file
// that survives a restart, and a park the restart lost is closed as lost.
func TestRunFollowsBus(t *testing.T) {
	dir := t.TempDir()
	clk := clocktest.New(historytest.Start)
	s, err := Open(dir, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	bus := events.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx, bus) }()
	// Run subscribes first; publish until the first park shows.
	deadline := time.Now().Add(30 * time.Second)
	for len(s.Recent(1)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the store never saw the park")
		}
		bus.Publish(events.Event{Type: events.CallParked, Time: historytest.Start, Lot: "default", Slot: "705", Caller: `"Acme" <sip:555@pbx>`, Parker: "<sip:201@pbx>", Source: "local"})
		time.Sleep(10 * time.Millisecond)
	}
	bus.Publish(events.Event{Type: events.CallParked, Time: historytest.Start.Add(time.Second), Lot: "default", Slot: "706", Caller: "<sip:556@pbx>", Source: "local"})
	bus.Publish(events.Event{Type: events.CallRetrieved, Time: historytest.Start.Add(40 * time.Second), Slot: "705", Retriever: `"Anna" <sip:201@pbx>`, Reason: "pickup"})
	for time.Now().Before(deadline) {
		if r := s.Recent(5); len(r) == 2 && !r[1].Open() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	s2, err := Open(dir, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	r := s2.Recent(5)
	if len(r) != 2 || r[1].Outcome != OutcomePickedUp || r[1].Wait(clk.Now()) != 40*time.Second || !r[0].Open() {
		t.Fatalf("after restart: %+v", r)
	}
	// 706 is not parked any more (no journal restored it).
	s2.Reconcile(func(string) bool { return false })
	if r := s2.Recent(5); r[0].Outcome != OutcomeLost {
		t.Fatalf("not reconciled: %+v", r[0])
	}
	s2.Close()
	s3, _ := Open(dir, Options{Clock: clk})
	if r := s3.Recent(5); len(r) != 2 || r[0].Outcome != OutcomeLost {
		t.Fatalf("reconcile not kept: %+v", r)
	}
}
