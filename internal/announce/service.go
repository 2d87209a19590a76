package announce

import (
	"context"
	"fmt"
	"sync"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/tts"
)

// serviceCacheEntries is how many rendered announcements a Service keeps.
const serviceCacheEntries = 64

// Service renders announcements with config section announce (voice,
// chime, levels, lead-in) through a Cache; Reload swaps in a new renderer
// and an empty cache when the section changed. It also speaks the park
// server's prompts (Synthesize) with the same voice.
type Service struct {
	mu    sync.Mutex
	cfg   config.Announce
	cache *Cache
	rend  *Renderer
	tts   *tts.Engine
}

// NewService returns a Service for config section announce.
func NewService(cfg config.Announce) (*Service, error) {
	s := &Service{}
	return s, s.load(cfg, true)
}

// Reload applies config section announce; an unchanged section keeps the
// cache. On error the Service keeps its old voice.
func (s *Service) Reload(cfg config.Announce) error { return s.load(cfg, false) }

func (s *Service) load(a config.Announce, first bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !first && s.cfg == a {
		return nil
	}
	engine, err := tts.New(a.Voice)
	if err != nil {
		return fmt.Errorf("announce.voice: %w", err)
	}
	r, err := NewRenderer(Config{Voice: a.Voice, Chime: a.Chime, TargetDBFS: a.Loudness, CeilingDBFS: a.Peak, LeadIn: a.LeadIn.D()})
	if err != nil {
		return err
	}
	s.cfg, s.rend, s.tts, s.cache = a, r, engine, NewCache(r, serviceCacheEntries)
	return nil
}

func (s *Service) current() (*Cache, *Renderer, *tts.Engine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache, s.rend, s.tts
}

// Get renders req, or returns it from the cache (Cache.Get).
func (s *Service) Get(ctx context.Context, req Request) (*Rendered, error) {
	c, _, _ := s.current()
	return c.Get(ctx, req)
}

// Prepare renders req ahead and encodes it in codecs (Cache.Prepare).
func (s *Service) Prepare(ctx context.Context, req Request, codecs ...codec.Name) (*Rendered, error) {
	c, _, _ := s.current()
	return c.Prepare(ctx, req, codecs...)
}

// Resolve checks req's voice and chime (Renderer.Resolve).
func (s *Service) Resolve(req Request) (Request, error) {
	_, r, _ := s.current()
	return r.Resolve(req)
}

// Synthesize speaks the park server's prompts ("seven oh four").
func (s *Service) Synthesize(ctx context.Context, text string) ([]int16, error) {
	_, _, e := s.current()
	return e.Synthesize(ctx, text)
}

// Stats are the current cache's counters.
func (s *Service) Stats() CacheStats {
	c, _, _ := s.current()
	return c.Stats()
}
