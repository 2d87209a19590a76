package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
)

// The priority matrix: emergency during a park announcement, with the park
// announcement replayed afterwards only while its call is still parked.
func TestEmergencyPreemptsPark(t *testing.T) {
	for _, wanted := range []bool{true, false} {
		t.Run(fmt.Sprintf("still_wanted=%v", wanted), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}, "b": {outputs: 1}}, Options{})
				var asked atomic.Int32
				p, err := h.g.Submit(context.Background(), paging.Page{
					ID: "P", Priority: output.PriorityPark, Zones: []string{"a"}, Audio: fakeAudio{2 * time.Second},
					Replay: true, StillWanted: func() bool { asked.Add(1); return wanted },
				})
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(500 * time.Millisecond)
				e := h.submit("E", output.PriorityEmergency, time.Second, "a")
				h.wait(e, paging.ReasonDone)
				want := []string{
					"00000 acquire a",
					"00100 start a/outputs[0] P park",
					"00800 cut a/outputs[0] P", // End burst after the cut at 500 ms
					"00800 release a",
					"00800 acquire a",
					"00900 start a/outputs[0] E emergency",
					"01900 end a/outputs[0] E",
					"01900 release a",
				}
				if wanted {
					h.wait(p, paging.ReasonDone)
					want = append(want,
						"01900 acquire a",
						"02000 start a/outputs[0] P park",
						"04000 end a/outputs[0] P",
						"04000 release a")
					checkEvents(t, h.events("P"),
						"page.started P park [a]",
						"page.preempted P park [a] preempted by emergency page E",
						"page.started P park [a] replay",
						"page.ended P park [a] done")
				} else {
					h.wait(p, paging.ReasonPreempted)
					checkEvents(t, h.events("P"),
						"page.started P park [a]",
						"page.preempted P park [a] preempted by emergency page E",
						"page.ended P park [a] preempted")
				}
				h.timeline(want...)
				if n := asked.Load(); n != 1 {
					t.Errorf("StillWanted asked %d times, want 1", n)
				}
			})
		})
	}
}

// A higher page cuts only the zones it shares; the rest of the lower page
// plays on and the cut zone gets the replay.
func TestPreemptOneZoneOfMany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}, "b": {outputs: 1}}, Options{})
		p, err := h.g.Submit(context.Background(), paging.Page{
			ID: "P", Priority: output.PriorityPark, Zones: []string{"a", "b"}, Audio: fakeAudio{2 * time.Second}, Replay: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		e := h.submit("L", output.PriorityLive, time.Second, "a")
		h.wait(e, paging.ReasonDone)
		h.wait(p, paging.ReasonDone)
		h.timeline(
			"00000 acquire a",
			"00000 acquire b",
			"00100 start a/outputs[0] P park",
			"00100 start b/outputs[0] P park",
			"00800 cut a/outputs[0] P",
			"00800 release a",
			"00800 acquire a",
			"00900 start a/outputs[0] L live",
			"01900 end a/outputs[0] L",
			"01900 release a",
			"01900 acquire a",
			"02000 start a/outputs[0] P park",
			"02100 end b/outputs[0] P",
			"02100 release b",
			"04000 end a/outputs[0] P",
			"04000 release a",
		)
		checkEvents(t, h.events("P"),
			"page.started P park [a b]",
			"page.preempted P park [a] preempted by live page L",
			"page.started P park [a] replay",
			"page.ended P park [a b] done")
	})
}

// Equal priorities to overlapping zones play in submission order; a page
// waiting for several zones is not overtaken on any of them (no
// starvation); disjoint zones play at once.
func TestEqualPriorityFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}, "b": {outputs: 1}, "c": {outputs: 1}}, Options{})
		p1 := h.submit("P1", output.PriorityPark, time.Second, "a")
		p2 := h.submit("P2", output.PriorityPark, time.Second, "a", "b")
		p3 := h.submit("P3", output.PriorityPark, time.Second, "b")
		p4 := h.submit("P4", output.PriorityPark, time.Second, "c")
		time.Sleep(500 * time.Millisecond)
		zs := h.g.Zones()
		got := fmt.Sprintf("%s:%s:%d %s:%s:%d %s:%s:%d", zs[0].Name, zs[0].Page, zs[0].Waiting,
			zs[1].Name, zs[1].Page, zs[1].Waiting, zs[2].Name, zs[2].Page, zs[2].Waiting)
		if want := "a:P1:1 b::2 c:P4:0"; got != want {
			t.Errorf("zones at 500 ms: %s, want %s", got, want)
		}
		for _, hd := range []*paging.Handle{p1, p2, p3, p4} {
			h.wait(hd, paging.ReasonDone)
		}
		h.timeline(
			"00000 acquire a",
			"00000 acquire c",
			"00100 start a/outputs[0] P1 park",
			"00100 start c/outputs[0] P4 park",
			"01100 end a/outputs[0] P1",
			"01100 end c/outputs[0] P4",
			"01100 release a",
			"01100 release c",
			"01100 acquire a",
			"01100 acquire b",
			"01200 start a/outputs[0] P2 park",
			"01200 start b/outputs[0] P2 park",
			"02200 end a/outputs[0] P2",
			"02200 end b/outputs[0] P2",
			"02200 release a",
			"02200 release b",
			"02200 acquire b",
			"02300 start b/outputs[0] P3 park",
			"03300 end b/outputs[0] P3",
			"03300 release b",
		)
	})
}

// Waiting pages start by priority, then by submission.
func TestQueueOrderByPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}}, Options{})
		e := h.submit("E", output.PriorityEmergency, time.Second, "a")
		t1 := h.submit("T", output.PriorityTest, time.Second, "a")
		p := h.submit("P", output.PriorityPark, time.Second, "a")
		l := h.submit("L", output.PriorityLive, time.Second, "a")
		for _, hd := range []*paging.Handle{e, t1, p, l} {
			h.wait(hd, paging.ReasonDone)
		}
		h.timeline(
			"00000 acquire a",
			"00100 start a/outputs[0] E emergency",
			"01100 end a/outputs[0] E",
			"01100 release a",
			"01100 acquire a",
			"01200 start a/outputs[0] L live",
			"02200 end a/outputs[0] L",
			"02200 release a",
			"02200 acquire a",
			"02300 start a/outputs[0] P park",
			"03300 end a/outputs[0] P",
			"03300 release a",
			"03300 acquire a",
			"03400 start a/outputs[0] T test",
			"04400 end a/outputs[0] T",
			"04400 release a",
		)
	})
}

func TestDisjointZonesPlayAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}, "b": {outputs: 2}, "c": {outputs: 1}}, Options{})
		hs := []*paging.Handle{
			h.submit("E", output.PriorityEmergency, time.Second, "a"),
			h.submit("P", output.PriorityPark, time.Second, "b"),
			h.submit("T", output.PriorityTest, time.Second, "c"),
		}
		for _, hd := range hs {
			h.wait(hd, paging.ReasonDone)
		}
		h.timeline(
			"00000 acquire a", "00000 acquire b", "00000 acquire c",
			"00100 start a/outputs[0] E emergency",
			"00100 start b/outputs[0] P park",
			"00100 start b/outputs[1] P park",
			"00100 start c/outputs[0] T test",
			"01100 end a/outputs[0] E", "01100 end b/outputs[0] P", "01100 end b/outputs[1] P", "01100 end c/outputs[0] T",
			"01100 release a", "01100 release b", "01100 release c",
		)
	})
}

func TestMaxWaitExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}}, Options{MaxWait: time.Second})
		p1 := h.submit("P1", output.PriorityPark, 3*time.Second, "a")
		p2 := h.submit("P2", output.PriorityPark, time.Second, "a")
		h.wait(p2, paging.ReasonExpired)
		if d := time.Since(h.rec.Start()); d != time.Second {
			t.Errorf("P2 expired after %v, want 1s", d)
		}
		h.wait(p1, paging.ReasonDone)
		h.timeline(
			"00000 acquire a",
			"00100 start a/outputs[0] P1 park",
			"03100 end a/outputs[0] P1",
			"03100 release a",
		)
		checkEvents(t, h.events("P2"), "page.ended P2 park [a] expired")
	})
}

func TestQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}, "b": {outputs: 1}}, Options{MaxQueue: 1})
		h.submit("P1", output.PriorityPark, time.Second, "a")
		h.submit("P2", output.PriorityPark, time.Second, "a")
		_, err := h.g.Submit(context.Background(), paging.Page{ID: "P3", Priority: output.PriorityPark, Zones: []string{"b", "a"}, Audio: fakeAudio{time.Second}})
		if !errors.Is(err, ErrQueueFull) {
			t.Errorf("third park page: %v, want ErrQueueFull", err)
		}
		// Pages ahead of an emergency are only emergencies: it is accepted.
		e := h.submit("E", output.PriorityEmergency, time.Second, "a")
		h.wait(e, paging.ReasonDone)
	})
}

// Cancelling a playing page (pickup) cuts every output at once; Wait
// returns as soon as the slowest has ended cleanly, relays released.
func TestCancelMidPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 2}, "b": {outputs: 1}}, Options{})
		h.behave("a/outputs[1]", pager(h.rec, 0, 50*time.Millisecond)) // a SIP BYE is quicker than an End burst
		p := h.submit("P", output.PriorityPark, 10*time.Second, "a")
		q := h.submit("Q", output.PriorityPark, time.Second, "a") // waiting behind P
		ctx, cancelCtx := context.WithCancel(context.Background())
		r, err := h.g.Submit(ctx, paging.Page{ID: "R", Priority: output.PriorityPark, Zones: []string{"a"}, Audio: fakeAudio{time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		s := h.submit("S", output.PriorityPark, 10*time.Second, "b")

		time.Sleep(50 * time.Millisecond)
		s.Cancel() // during the relay lead time: nothing plays, nothing to release
		h.wait(s, paging.ReasonCancelled)

		time.Sleep(450 * time.Millisecond)
		q.Cancel()
		h.wait(q, paging.ReasonCancelled)
		cancelCtx()
		h.wait(r, paging.ReasonCancelled)

		time.Sleep(500 * time.Millisecond)
		at := time.Now()
		p.Cancel()
		h.wait(p, paging.ReasonCancelled)
		if d := time.Since(at); d != endBurst {
			t.Errorf("Wait returned %v after Cancel, want the End burst time %v", d, endBurst)
		}
		h.timeline(
			"00000 acquire a",
			"00000 acquire b",
			"00050 acquire-cut b",
			"00100 start a/outputs[0] P park",
			"00100 start a/outputs[1] P park",
			"01050 cut a/outputs[1] P",
			"01300 cut a/outputs[0] P",
			"01300 release a",
		)
		checkEvents(t, h.events("P", "Q", "R"),
			"page.started P park [a]",
			"page.ended Q park [a] cancelled",
			"page.ended R park [a] cancelled",
			"page.ended P park [a] cancelled")
	})
}

// A failing output publishes OutputFailed and the page goes on: neither it
// nor a slow output (a SIP amplifier slow to answer) holds up the others.
func TestFailingOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 3}, "b": {outputs: 1}}, Options{})
		h.behave("a/outputs[0]", failing(h.rec, 50*time.Millisecond, errors.New("sip:page@amp: 486 Busy Here")))
		h.behave("a/outputs[2]", pager(h.rec, 2*time.Second, endBurst))
		h.behave("b/outputs[0]", failing(h.rec, 10*time.Millisecond, errors.New("no route")))
		p := h.submit("P", output.PriorityPark, time.Second, "a")
		f := h.submit("F", output.PriorityPark, time.Second, "b")
		h.wait(p, paging.ReasonDone)
		h.wait(f, paging.ReasonFailed)
		h.timeline(
			"00000 acquire a",
			"00000 acquire b",
			"00100 start a/outputs[1] P park",
			"00110 fail b/outputs[0] F",
			"00110 release b",
			"00150 fail a/outputs[0] P",
			"01100 end a/outputs[1] P",
			"02100 start a/outputs[2] P park",
			"03100 end a/outputs[2] P",
			"03100 release a",
		)
		checkEvents(t, h.events("P"),
			"page.started P park [a]",
			"output.failed P park [a] a/outputs[0] sip:page@amp: 486 Busy Here",
			"page.ended P park [a] done")
		checkEvents(t, h.events("F"),
			"page.started F park [b]",
			"output.failed F park [b] b/outputs[0] no route",
			"page.ended F park [b] failed")
	})
}

// A relay fault is reported but does not silence the zone.
func TestRelayFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}}, Options{})
		h.relays.err = map[string]error{"a": errors.New("GPIO17: permission denied")}
		p := h.submit("P", output.PriorityPark, time.Second, "a")
		h.wait(p, paging.ReasonDone)
		h.timeline(
			"00000 acquire-failed a",
			"00000 start a/outputs[0] P park",
			"01000 end a/outputs[0] P",
		)
		checkEvents(t, h.events("P"),
			"page.started P park [a]",
			"output.failed P park [a] a/relays GPIO17: permission denied",
			"page.ended P park [a] done")
	})
}

func TestMaxPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1, maxPage: 2 * time.Second}}, Options{})
		p := h.submit("P", output.PriorityLive, 5*time.Second, "a")
		h.wait(p, paging.ReasonMaxPage)
		h.timeline(
			"00000 acquire a",
			"00100 start a/outputs[0] P live",
			"02300 cut a/outputs[0] P",
			"02300 release a",
		)
	})
}

// An output that ignores its cut holds its zone for CutGrace only; its page
// ends when it finally returns.
func TestStuckOutputHandedOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}}, Options{CutGrace: time.Second})
		h.behave("a/outputs[0]", stuck(h.rec, 10*time.Second))
		p := h.submit("P", output.PriorityPark, time.Second, "a")
		time.Sleep(500 * time.Millisecond)
		h.behave("a/outputs[0]", pager(h.rec, 0, endBurst)) // for E; P's Play is still stuck
		e := h.submit("E", output.PriorityEmergency, time.Second, "a")
		h.wait(e, paging.ReasonDone)
		select {
		case <-p.Done():
			t.Error("P ended while its stuck output was still playing")
		default:
		}
		h.wait(p, paging.ReasonPreempted)
		h.timeline(
			"00000 acquire a",
			"00100 start a/outputs[0] P park",
			"01500 release a",
			"01500 acquire a",
			"01600 start a/outputs[0] E emergency",
			"02600 end a/outputs[0] E",
			"02600 release a",
			"10100 end a/outputs[0] P",
		)
	})
}

// Reload swaps zones without cutting the page playing: it finishes on the
// old outputs, which are closed after it; later pages use the new ones.
func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}}, Options{})
		p1 := h.submit("P1", output.PriorityPark, 2*time.Second, "a")
		time.Sleep(500 * time.Millisecond)
		h.gen = 1
		if err := h.g.Reload(testConfig(map[string]zoneSpec{"a": {outputs: 2}, "b": {outputs: 1}}).Zones); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		p2 := h.submit("P2", output.PriorityPark, time.Second, "a")
		p3 := h.submit("P3", output.PriorityPark, time.Second, "b")
		time.Sleep(100 * time.Millisecond)
		zs := h.g.Zones()
		if len(zs) != 2 || len(zs[0].Outputs) != 2 || zs[0].Page != "P1" || zs[0].Waiting != 1 || zs[1].Page != "P3" {
			t.Errorf("zones after reload: %+v", zs)
		}
		if o := zs[0].Outputs[1]; o.Name != "a/outputs[1]#1" || o.Type != "sip" || o.Address != "sip:page@a.test" {
			t.Errorf("output info: %+v", o)
		}
		for _, hd := range []*paging.Handle{p1, p2, p3} {
			h.wait(hd, paging.ReasonDone)
		}
		if err := h.g.Close(); err != nil {
			t.Fatal(err)
		}
		h.timeline(
			"00000 acquire a",
			"00100 start a/outputs[0] P1 park",
			"00600 acquire b",
			"00700 start b/outputs[0]#1 P3 park",
			"01700 end b/outputs[0]#1 P3",
			"01700 release b",
			"02100 end a/outputs[0] P1",
			"02100 release a",
			"02100 close a/outputs[0]",
			"02100 acquire a",
			"02200 start a/outputs[0]#1 P2 park",
			"02200 start a/outputs[1]#1 P2 park",
			"03200 end a/outputs[0]#1 P2",
			"03200 end a/outputs[1]#1 P2",
			"03200 release a",
			"03200 close a/outputs[0]#1",
			"03200 close a/outputs[1]#1",
			"03200 close b/outputs[0]#1",
		)
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}}, Options{})
		p1 := h.submit("P1", output.PriorityPark, 10*time.Second, "a")
		p2 := h.submit("P2", output.PriorityPark, time.Second, "a")
		time.Sleep(time.Second)
		if err := h.g.Close(); err != nil {
			t.Fatal(err)
		}
		h.wait(p1, paging.ReasonClosed)
		h.wait(p2, paging.ReasonClosed)
		if _, err := h.g.Submit(context.Background(), paging.Page{Priority: output.PriorityPark, Zones: []string{"a"}, Audio: fakeAudio{time.Second}}); !errors.Is(err, ErrClosed) {
			t.Errorf("submit after close: %v, want ErrClosed", err)
		}
		h.timeline(
			"00000 acquire a",
			"00100 start a/outputs[0] P1 park",
			"01300 cut a/outputs[0] P1",
			"01300 release a",
			"01300 close a/outputs[0]",
		)
	})
}

// A zone with relays but no outputs holds its relays for the audio.
func TestRelayOnlyZone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"beacon": {}}, Options{})
		p := h.submit("P", output.PriorityEmergency, 3*time.Second, "beacon")
		h.wait(p, paging.ReasonDone)
		h.timeline("00000 acquire beacon", "03100 release beacon")
	})
}

func TestSubmitErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 1}}, Options{})
		h.submit("dup", output.PriorityTest, time.Second, "a")
		audio := fakeAudio{time.Second}
		for _, tc := range []struct {
			name string
			page paging.Page
		}{
			{"no audio", paging.Page{Zones: []string{"a"}}},
			{"no zones", paging.Page{Audio: audio}},
			{"unknown zone", paging.Page{Zones: []string{"a", "nowhere"}, Audio: audio}},
			{"bad priority", paging.Page{Priority: 9, Zones: []string{"a"}, Audio: audio}},
			{"duplicate id", paging.Page{ID: "dup", Zones: []string{"a"}, Audio: audio}},
		} {
			if _, err := h.g.Submit(context.Background(), tc.page); err == nil {
				t.Errorf("%s: accepted", tc.name)
			}
		}
		// Generated IDs; duplicate zones are played once.
		hd, err := h.g.Submit(context.Background(), paging.Page{Priority: output.PriorityEmergency, Zones: []string{"a", "a"}, Audio: audio})
		if err != nil || hd.ID() == "" {
			t.Fatalf("submit: %v, id %q", err, hd.ID())
		}
		h.wait(hd, paging.ReasonDone)
	})
}
