package announce

import (
	"math"
	"testing"

	"github.com/parkpage/parkpage/internal/codec"
)

func TestChimePCM(t *testing.T) {
	for _, name := range []string{ChimeTwoTone, ChimeBeep, ""} {
		pcm, err := ChimePCM(Config{}, name)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if len(pcm) == 0 || len(pcm)%codec.FrameSamples != 0 {
			t.Fatalf("%q: %d samples, want whole frames", name, len(pcm))
		}
		if l := Loudness(pcm); math.Abs(l-DefaultTargetDBFS) > 1.5 {
			t.Errorf("%q: loudness %.1f dBFS, want about %v", name, l, DefaultTargetDBFS)
		}
	}
	if pcm, err := ChimePCM(Config{}, ChimeNone); err != nil || pcm != nil {
		t.Errorf("none: %d samples, %v", len(pcm), err)
	}
	if _, err := ChimePCM(Config{}, "klaxon"); err == nil {
		t.Error("unknown chime accepted")
	}
}
