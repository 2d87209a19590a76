package announcer

import (
	"slices"
	"testing"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/config"
)

// The config accepts exactly the chimes the renderer has built in.
func TestConfigChimesMatchRenderer(t *testing.T) {
	want := announce.Chimes()
	if !slices.Contains(want, announce.ChimeNone) {
		want = append(want, announce.ChimeNone)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(config.BuiltinChimes))
	if !slices.Equal(got, want) {
		t.Errorf("config.BuiltinChimes = %v, announce has %v", got, want)
	}
}
