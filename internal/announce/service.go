package announce

import (
	"context"
	"fmt"
	"github.com/parkpage/parkpage/internal/tts"
	"slices"
	"sync"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
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
	tts   Speaker
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
	r, err := NewRenderer(Config{Voice: a.Voice, Chime: a.Chime, TargetDBFS: a.Loudness, CeilingDBFS: a.Peak, LeadIn: a.LeadIn.D(),
		Paging: PagingOf(a.Speech), PromptDir: a.PromptDir, PromptFallback: a.PromptFallback})
	if err != nil {
		return err
	}
	engine, err := r.Speaker(a.Voice)
	if err != nil {
		return fmt.Errorf("announce.voice: %w", err)
	}
	s.cfg, s.rend, s.tts, s.cache = a, r, engine, NewCache(r, serviceCacheEntries)
	return nil
}

// PagingOf is the paging speech of a config speech section.
func PagingOf(s config.Speech) Paging {
	if s.Plain {
		return Paging{Off: true}
	}
	return Paging{
		Rate:         s.Rate,
		DigitGap:     s.DigitGap.D(),
		NumberRepeat: s.SlotRepeat,
		NumberGainDB: s.SlotEmphasis,
		HighPassHz:   s.HighPass,
		PresenceDB:   s.Presence,
		Zero:         s.Zero,
	}
}

// MissingPrompts lists, for voice prompts, the words of texts that no
// recording covers and the fallback TTS voice speaks: the appliance
// warns of them at start-up. It is nil for any other voice.
func (s *Service) MissingPrompts(voice string, texts ...string) []string {
	_, r, _ := s.current()
	sp, err := r.Speaker(voice)
	if err != nil {
		return nil
	}
	ps, ok := sp.(*PromptSpeaker)
	if !ok {
		return nil
	}
	var out []string
	for _, t := range texts {
		for _, w := range ps.Missing(t) {
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

func (s *Service) current() (*Cache, *Renderer, Speaker) {
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

// ReleaseMemory hands the synthesiser's freed C heap back to the kernel
// (after a batch of renders: the announcer's warm-up).
func (s *Service) ReleaseMemory() { tts.ReleaseMemory() }
