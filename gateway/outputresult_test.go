package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
)

// A page's OnOutput hears how every output and the zone's relays did; a
// page limited to one output (Outputs) plays on that output only.
func TestOutputResults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]zoneSpec{"a": {outputs: 3}}, Options{})
		cfg := testConfig(map[string]zoneSpec{"a": {outputs: 3}})
		cfg.Zones["a"].Relays = []string{"r1"}
		if err := h.g.Reload(cfg.Zones); err != nil {
			t.Fatal(err)
		}
		h.behave("a/outputs[1]", failing(h.rec, 50*time.Millisecond, errors.New("486 Busy Here")))
		var mu sync.Mutex
		var got []string
		report := func(r paging.OutputResult) {
			mu.Lock()
			defer mu.Unlock()
			s := fmt.Sprintf("%s %s %s ok=%v cut=%v", r.Output, r.Type, r.Address, r.Err == nil && !r.Cut, r.Cut)
			if r.Err != nil {
				s += " " + r.Err.Error()
			}
			got = append(got, s)
		}
		hd, err := h.g.Submit(context.Background(), paging.Page{ID: "T", Priority: output.PriorityTest, Zones: []string{"a"}, Audio: fakeAudio{time.Second}, OnOutput: report})
		if err != nil {
			t.Fatal(err)
		}
		h.wait(hd, paging.ReasonDone)
		slices.Sort(got)
		want := []string{
			"a/outputs[0] sip sip:page@a.test ok=true cut=false",
			"a/outputs[1] sip sip:page@a.test ok=false cut=false 486 Busy Here",
			"a/outputs[2] sip sip:page@a.test ok=true cut=false",
			"a/relays relay r1 ok=true cut=false",
		}
		if !slices.Equal(got, want) {
			t.Errorf("results:\n got %q\nwant %q", got, want)
		}

		got = nil
		hd, err = h.g.Submit(context.Background(), paging.Page{ID: "O", Priority: output.PriorityTest, Zones: []string{"a"}, Audio: fakeAudio{time.Second},
			Outputs: []string{"a/outputs[2]"}, OnOutput: report})
		if err != nil {
			t.Fatal(err)
		}
		h.wait(hd, paging.ReasonDone)
		slices.Sort(got)
		want = []string{"a/outputs[2] sip sip:page@a.test ok=true cut=false", "a/relays relay r1 ok=true cut=false"}
		if !slices.Equal(got, want) {
			t.Errorf("one output:\n got %q\nwant %q", got, want)
		}
		for _, l := range h.rec.Lines() {
			if strings.Contains(l, "start a/outputs[0] O") || strings.Contains(l, "start a/outputs[1] O") {
				t.Errorf("output 0 played the page for output 2")
			}
		}
	})
}
