package media

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMusicCache: the built-in music is written to the cache on first use
// and read back identical; a cache of another executable (or damaged) is
// not used but rewritten.
func TestMusicCache(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "state", "hold-music.cache")
	if _, err := loadMusicCached("", cache); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatalf("no cache written: %v", err)
	}
	m, err := loadMusicCached("", cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.tracks) != 1 || !slices.Equal(m.tracks[0], DefaultMusic()) || m.Source() != "built-in" {
		t.Fatalf("cached music differs from the built-in music (%d tracks)", len(m.tracks))
	}
	// Another executable's cache (its key differs), with other samples.
	other := append([]byte(musicCacheMagic+"/usr/bin/other 1 2\n"), make([]byte, 4000)...)
	if err := os.WriteFile(cache, other, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err = loadMusicCached("", cache)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.tracks[0], DefaultMusic()) {
		t.Fatal("a stale cache was used")
	}
	if again, _ := os.ReadFile(cache); string(again) != string(data) {
		t.Fatal("stale cache not rewritten")
	}
}
