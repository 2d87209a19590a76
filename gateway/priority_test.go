package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
)

// The priority matrix: a page R is playing on zone a (2 s of audio, from
// 100 ms after its relay lead) when a page A arrives at 500 ms (1 s of
// audio), for every pair of priorities and three zone relations: A on the
// same zone, on a and b (overlapping), on b only (disjoint). Expected:
//   - disjoint: both play at once, whatever the priorities;
//   - A higher than R and sharing a zone: R is cut on a (its End burst ends
//     at 800 ms), A starts on all its zones once a has drained; a cut park
//     announcement (Replay) is replayed on a after A if StillWanted says its
//     call is still parked, and otherwise ends "preempted";
//   - A equal or lower and sharing a zone: A waits (FIFO) and starts on all
//     its zones when R ends at 2100 ms.
//
// Timelines are exact: the test runs in a synctest bubble (fake time).
func TestPriorityMatrix(t *testing.T) {
	prios := []output.Priority{output.PriorityTest, output.PriorityPark, output.PriorityLive, output.PriorityEmergency}
	relations := []struct {
		name  string
		zones []string
	}{
		{"same_zone", []string{"a"}},
		{"overlapping", []string{"a", "b"}},
		{"disjoint", []string{"b"}},
	}
	for _, rp := range prios {
		for _, ap := range prios {
			for _, rel := range relations {
				wantedCases := []bool{true}
				preempts := ap > rp && slices.Contains(rel.zones, "a")
				if preempts && rp == output.PriorityPark {
					wantedCases = []bool{true, false} // still parked, or picked up meanwhile
				}
				for _, wanted := range wantedCases {
					name := fmt.Sprintf("%s_arrives_during_%s/%s", ap, rp, rel.name)
					if len(wantedCases) > 1 {
						name += fmt.Sprintf("/still_parked=%v", wanted)
					}
					t.Run(name, func(t *testing.T) {
						synctest.Test(t, func(t *testing.T) {
							matrixCase(t, rp, ap, rel.zones, wanted)
						})
					})
				}
			}
		}
	}
}

func matrixCase(t *testing.T, rp, ap output.Priority, aZones []string, wanted bool) {
	h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}, "b": {outputs: 1}}, Options{})
	var asked atomic.Int32
	replay := rp == output.PriorityPark // the park engine asks for replays of park announcements
	r, err := h.g.Submit(context.Background(), paging.Page{
		ID: "R", Priority: rp, Zones: []string{"a"}, Audio: fakeAudio{2 * time.Second},
		Replay: replay, StillWanted: func() bool { asked.Add(1); return wanted },
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	a := h.submit("A", ap, time.Second, aZones...)

	line := func(ms int, format string, args ...any) string {
		return fmt.Sprintf("%05d %s", ms, fmt.Sprintf(format, args...))
	}
	aRuns := func(from int) []string { // A acquires at from, plays 1 s after the lead
		var out []string
		for _, z := range aZones {
			out = append(out,
				line(from, "acquire %s", z),
				line(from+100, "start %s/outputs[0] A %s", z, ap),
				line(from+1100, "end %s/outputs[0] A", z),
				line(from+1100, "release %s", z))
		}
		return out
	}
	want := []string{line(0, "acquire a"), line(100, "start a/outputs[0] R %s", rp)}
	wantR, wantAsked := paging.ReasonDone, int32(0)
	rEvents := []string{fmt.Sprintf("page.started R %s [a]", rp)}
	switch shares := slices.Contains(aZones, "a"); {
	case !shares: // disjoint: at once
		want = append(want, aRuns(500)...)
		want = append(want, line(2100, "end a/outputs[0] R"), line(2100, "release a"))
	case ap > rp: // pre-empted
		want = append(want, line(800, "cut a/outputs[0] R"), line(800, "release a"))
		want = append(want, aRuns(800)...)
		rEvents = append(rEvents, fmt.Sprintf("page.preempted R %s [a] preempted by %s page A", rp, ap))
		if replay {
			wantAsked = 1
		}
		if replay && wanted {
			want = append(want,
				line(1900, "acquire a"),
				line(2000, "start a/outputs[0] R %s", rp),
				line(4000, "end a/outputs[0] R"),
				line(4000, "release a"))
			rEvents = append(rEvents, fmt.Sprintf("page.started R %s [a] replay", rp))
		} else {
			wantR = paging.ReasonPreempted
		}
	default: // equal or lower: queued behind R
		want = append(want, line(2100, "end a/outputs[0] R"), line(2100, "release a"))
		want = append(want, aRuns(2100)...)
	}
	rEvents = append(rEvents, fmt.Sprintf("page.ended R %s [a] %s", rp, wantR))

	h.wait(a, paging.ReasonDone)
	h.wait(r, wantR)
	h.timeline(want...)
	checkEvents(t, h.events("R"), rEvents...)
	checkEvents(t, h.events("A"),
		fmt.Sprintf("page.started A %s %v", ap, aZones),
		fmt.Sprintf("page.ended A %s %v done", ap, aZones))
	if n := asked.Load(); n != wantAsked {
		t.Errorf("StillWanted asked %d times, want %d", n, wantAsked)
	}
}

// Park announcements to overlapping zones queue in submission order, the
// queue is bounded per zone (MaxQueue) and a page waiting longer than
// MaxWait is dropped ("expired") rather than played late.
func TestParkQueueFIFOBoundedExpiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}, "b": {outputs: 1}},
			Options{MaxQueue: 2, MaxWait: 2 * time.Second})
		p1 := h.submit("P1", output.PriorityPark, 2*time.Second, "a")
		time.Sleep(500 * time.Millisecond)
		p2 := h.submit("P2", output.PriorityPark, time.Second, "a", "b")
		time.Sleep(100 * time.Millisecond)
		p3 := h.submit("P3", output.PriorityPark, time.Second, "a")
		time.Sleep(100 * time.Millisecond)
		// b is free, but P2 (ahead) waits for it: P4 may not overtake.
		p4 := h.submit("P4", output.PriorityPark, time.Second, "b")
		time.Sleep(100 * time.Millisecond)
		// Two park pages already wait for a.
		if _, err := h.g.Submit(context.Background(), paging.Page{ID: "P5", Priority: output.PriorityPark, Zones: []string{"a"}, Audio: fakeAudio{time.Second}}); !errors.Is(err, ErrQueueFull) {
			t.Errorf("P5: %v, want ErrQueueFull", err)
		}
		// A higher page is not counted against lower ones' queue.
		l := h.submit("L", output.PriorityLive, time.Second, "b")

		h.wait(l, paging.ReasonDone)
		h.wait(p1, paging.ReasonDone)
		h.wait(p2, paging.ReasonDone)
		h.wait(p3, paging.ReasonExpired) // waited 600 ms -> 2600 ms
		h.wait(p4, paging.ReasonExpired) // waited 700 ms -> 2700 ms
		h.timeline(
			"00000 acquire a",
			"00100 start a/outputs[0] P1 park",
			"00800 acquire b",
			"00900 start b/outputs[0] L live",
			"01900 end b/outputs[0] L",
			"01900 release b",
			"02100 end a/outputs[0] P1",
			"02100 release a",
			"02100 acquire a",
			"02100 acquire b",
			"02200 start a/outputs[0] P2 park",
			"02200 start b/outputs[0] P2 park",
			"03200 end a/outputs[0] P2",
			"03200 end b/outputs[0] P2",
			"03200 release a",
			"03200 release b",
		)
		checkEvents(t, h.events("P3", "P4"),
			"page.ended P3 park [a] expired",
			"page.ended P4 park [b] expired")
	})
}
