package announce

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
)

func countingCache(t testing.TB, entries int, gate chan struct{}) (*Cache, *counting) {
	t.Helper()
	sp := &counting{Speaker: newSpeaker(t, "kal16"), gate: gate}
	r := newRenderer(t, Config{NewSpeaker: func(string) (Speaker, error) { return sp, nil }})
	return NewCache(r, entries), sp
}

func TestCacheHit(t *testing.T) {
	c, sp := countingCache(t, 4, nil)
	ctx := context.Background()
	a, err := c.Prepare(ctx, Request{Text: "Sales call on 704"}, codec.G722)
	if err != nil {
		t.Fatal(err)
	}
	fa, _ := a.Frames(codec.G722)
	// Same announcement, spelt differently: digits, defaults made explicit.
	b, err := c.Get(ctx, Request{Text: "Sales  call on seven oh four", Voice: "slt", Chime: DefaultChime, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if b != a {
		t.Fatal("equivalent request rendered a new announcement")
	}
	fb, err := b.Frames(codec.G722)
	if err != nil {
		t.Fatal(err)
	}
	if &fa[0][0] != &fb[0][0] || len(fa) != len(fb) {
		t.Fatal("cache hit re-encoded the frames")
	}
	if n := sp.n.Load(); n != 1 {
		t.Fatalf("%d syntheses, want 1", n)
	}
	if s := c.Stats(); s.Hits != 1 || s.Misses != 1 || s.Renders != 1 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
	// A different voice, chime or repeat is a different announcement.
	for _, req := range []Request{
		{Text: "Sales call on 704", Voice: "kal16"},
		{Text: "Sales call on 704", Chime: ChimeNone},
		{Text: "Sales call on 704", Repeat: 2},
	} {
		if got, err := c.Get(ctx, req); err != nil || got == a {
			t.Errorf("Get(%+v) = same entry or %v", req, err)
		}
	}
	if n := sp.n.Load(); n != 4 {
		t.Fatalf("%d syntheses, want 4", n)
	}
}

func TestCacheEviction(t *testing.T) {
	c, sp := countingCache(t, 2, nil)
	ctx := context.Background()
	get := func(text string) {
		t.Helper()
		if _, err := c.Get(ctx, Request{Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	get("a")
	get("b")
	get("a") // a is now most recent
	get("c") // evicts b
	if n := sp.n.Load(); n != 3 {
		t.Fatalf("%d syntheses, want 3", n)
	}
	get("a")
	if n := sp.n.Load(); n != 3 {
		t.Fatal("a was evicted instead of b")
	}
	get("b")
	if n := sp.n.Load(); n != 4 {
		t.Fatal("b was not evicted")
	}
	if s := c.Stats(); s.Entries != 2 {
		t.Fatalf("%d entries, want 2", s.Entries)
	}
	c.Purge()
	get("a")
	if n := sp.n.Load(); n != 5 || c.Stats().Entries != 1 {
		t.Fatal("Purge kept entries")
	}
}

// TestCacheSingleFlight: many concurrent requests for one announcement
// render it once, and a waiter can give up without spoiling it for others.
func TestCacheSingleFlight(t *testing.T) {
	gate := make(chan struct{})
	c, sp := countingCache(t, 4, gate)
	const n = 16
	var wg sync.WaitGroup
	results := make([]*Rendered, n)
	errs := make([]error, n)
	get := func(i int) { results[i], errs[i] = c.Get(context.Background(), Request{Text: "Warehouse call on 710"}) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never happened: %+v", what, c.Stats())
			}
		}
	}
	// The first caller renders and is held inside the synthesiser.
	wg.Go(func() { get(0) })
	waitFor("first render", func() bool { return sp.n.Load() == 1 })
	for i := 1; i < n; i++ {
		wg.Go(func() { get(i) })
	}
	// An impatient caller joins too, then gives up.
	ctx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, Request{Text: "Warehouse call on 710"})
		impatient <- err
	}()
	waitFor("all callers queued", func() bool { return c.Stats().Hits == n })
	cancel()
	if err := <-impatient; !errors.Is(err, context.Canceled) {
		t.Errorf("impatient caller: %v", err)
	}
	close(gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i] != results[0] {
			t.Fatal("callers got different renders")
		}
	}
	if got := sp.n.Load(); got != 1 {
		t.Fatalf("%d syntheses for %d concurrent requests, want 1", got, n+1)
	}
	if s := c.Stats(); s.Misses != 1 || s.Renders != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCacheErrorsNotCached: a failed render is retried by the next Get.
func TestCacheErrorsNotCached(t *testing.T) {
	files := map[string][]int16{}
	r := newRenderer(t, Config{LoadWAV: mapLoader(files)})
	c := NewCache(r, 4)
	req := Request{OverrideWAV: "704.wav"}
	if _, err := c.Get(context.Background(), req); err == nil {
		t.Fatal("missing recording rendered")
	}
	files["704.wav"] = sine(sampleRate, 300, 8000)
	if _, err := c.Get(context.Background(), req); err != nil {
		t.Fatalf("after the file appeared: %v", err)
	}
	if _, err := c.Get(context.Background(), Request{Text: "x", Repeat: 9}); err == nil {
		t.Fatal("invalid request accepted")
	}
}

// BenchmarkCacheHit is the cost of starting a cached announcement: lookup
// plus already-encoded G.722 frames.
func BenchmarkCacheHit(b *testing.B) {
	c, _ := countingCache(b, 4, nil)
	req := Request{Text: "Sales call on 704"}
	if _, err := c.Prepare(context.Background(), req, codec.G722); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := c.Get(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Frames(codec.G722); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderCold is the cost of an uncached announcement: synthesis
// (slt), levels, limiter and G.722 encoding.
func BenchmarkRenderCold(b *testing.B) {
	r := newRenderer(b, Config{})
	for b.Loop() {
		out, err := r.Render(context.Background(), Request{Text: "Sales call on 704"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := out.Frames(codec.G722); err != nil {
			b.Fatal(err)
		}
	}
}
