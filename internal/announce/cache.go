package announce

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/parkpage/parkpage/internal/codec"
)

// DefaultCacheEntries is the Cache size NewCache uses for entries <= 0. A
// 5 s announcement takes about 160 kB of PCM plus 40 kB per G.711/G.722
// encoding, so 32 entries stay under about 10 MB.
const DefaultCacheEntries = 32

// Cache keeps recently rendered announcements, least recently used out
// first, so a repeated announcement (the same slot re-announced, a
// pre-rendered prompt) starts on the wire without rendering or encoding.
// Concurrent requests for the same announcement render it once. Entries
// are keyed on the resolved Request; the encoded frames of each codec are
// cached inside the entry (Rendered.Frames). Safe for concurrent use.
//
// Files named by requests (chimes, override recordings) are read when an
// entry is rendered: call Purge after changing them.
type Cache struct {
	r   *Renderer
	max int

	mu       sync.Mutex
	lru      *list.List // of *Rendered, most recent at front
	items    map[Request]*list.Element
	inflight map[Request]*flight
	hits     int64
	misses   int64
}

type flight struct {
	done chan struct{}
	out  *Rendered
	err  error
}

// NewCache returns a cache of at most entries announcements rendered by r.
func NewCache(r *Renderer, entries int) *Cache {
	if entries <= 0 {
		entries = DefaultCacheEntries
	}
	return &Cache{
		r:        r,
		max:      entries,
		lru:      list.New(),
		items:    map[Request]*list.Element{},
		inflight: map[Request]*flight{},
	}
}

// Get returns the rendered announcement for req, rendering it if it is not
// cached. If another caller is already rendering the same announcement, Get
// waits for that result instead (and stops waiting when ctx ends). The
// caller that renders does so to completion even if its ctx ends, since
// others may be waiting and a render takes milliseconds. Failed renders are
// not cached.
func (c *Cache) Get(ctx context.Context, req Request) (*Rendered, error) {
	key, err := c.r.Resolve(req)
	if err != nil {
		return nil, fmt.Errorf("announcement %q: %w", req.Text, err)
	}
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		c.lru.MoveToFront(el)
		c.hits++
		c.mu.Unlock()
		return el.Value.(*Rendered), nil
	}
	f, ok := c.inflight[key]
	if !ok {
		c.misses++
		f = &flight{done: make(chan struct{})}
		c.inflight[key] = f
		c.mu.Unlock()
		c.fill(context.WithoutCancel(ctx), key, f)
		return f.out, f.err
	}
	c.hits++ // shares the one render
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.out, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fill renders key for everyone waiting on f.
func (c *Cache) fill(ctx context.Context, key Request, f *flight) {
	f.out, f.err = c.r.Render(ctx, key)
	c.mu.Lock()
	delete(c.inflight, key)
	if f.err == nil {
		c.items[key] = c.lru.PushFront(f.out)
		for c.lru.Len() > c.max {
			old := c.lru.Remove(c.lru.Back()).(*Rendered)
			delete(c.items, old.Request)
		}
	}
	c.mu.Unlock()
	close(f.done)
}

// Prepare renders req (or finds it cached) and encodes it for each codec,
// so a later Get and Frames for those codecs cost only a map lookup. Call it
// when a page or park is known to be coming.
func (c *Cache) Prepare(ctx context.Context, req Request, codecs ...codec.Name) (*Rendered, error) {
	out, err := c.Get(ctx, req)
	if err != nil {
		return nil, err
	}
	for _, cn := range codecs {
		if _, err := out.Frames(cn); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Purge drops every cached announcement (renders in progress complete and
// are cached).
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	clear(c.items)
}

// CacheStats are counters for metrics.
type CacheStats struct {
	Entries int   // announcements held
	Hits    int64 // Gets served from the cache or from another caller's render
	Misses  int64 // Gets that started a render
	Renders int64 // successful renders by the cache's Renderer
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Entries: c.lru.Len(), Hits: c.hits, Misses: c.misses, Renders: c.r.Renders()}
}
