package labels

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
)

// tone is hz at amplitude amp (of full scale) for d, with silence of pad
// on both sides and some line noise throughout.
func tone(hz, amp float64, d, pad time.Duration) []int16 {
	n, p := samples(d), samples(pad)
	out := make([]int16, n+2*p)
	seed := uint32(1)
	for i := range out {
		seed = seed*1664525 + 1013904223
		out[i] = int16(int32(seed>>16)%40 - 20) // about -65 dBFS of noise
		if i >= p && i < p+n {
			out[i] += int16(32767 * amp * math.Sin(2*math.Pi*hz*float64(i)/codec.SampleRate))
		}
	}
	return out
}

func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name string
		pcm  []int16
		kind Kind
		want *Problem
	}{
		{"label", tone(440, 0.1, time.Second, 2*time.Second), KindLabel, nil},
		{"quiet label", tone(440, 0.01, time.Second, time.Second), KindLabel, nil},
		{"announcement", tone(300, 0.3, 3*time.Second, time.Second), KindAnnouncement, nil},
		{"silent", tone(440, 0, time.Second, time.Second), KindLabel, ErrSilent},
		{"empty", nil, KindLabel, ErrSilent},
		{"clicks in silence", clicks(tone(440, 0, 2*time.Second, 0)), KindLabel, ErrSilent},
		{"clipped", tone(440, 1.2, time.Second, time.Second), KindLabel, ErrClipped},
		{"too short", tone(440, 0.1, 100*time.Millisecond, time.Second), KindLabel, ErrTooShort},
		{"label too long", tone(440, 0.1, 6*time.Second, 0), KindLabel, ErrTooLong},
		{"announcement too short", tone(440, 0.1, 500*time.Millisecond, 0), KindAnnouncement, ErrTooShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pcm := tc.pcm
			if tc.name == "clipped" {
				for i := range pcm {
					pcm[i] = int16(max(min(float64(pcm[i]), 32767), -32768))
				}
			}
			out, err := Prepare(pcm, tc.kind, 0)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if p, ok := AsProblem(err); !ok || p.Spoken == "" {
					t.Fatalf("no spoken reason in %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l := announce.Loudness(out); math.Abs(l-announce.DefaultTargetDBFS) > 1.5 {
				t.Errorf("loudness %.1f dBFS, want about %.0f", l, announce.DefaultTargetDBFS)
			}
			if math.Abs(float64(out[0])) > 100 {
				t.Errorf("no fade in: first sample %d", out[0])
			}
		})
	}
}

func TestPrepareTrims(t *testing.T) {
	pcm := tone(440, 0.1, time.Second, 2*time.Second)
	out, err := Prepare(pcm, KindLabel, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Duration(len(out)) * time.Second / codec.SampleRate
	if d < time.Second || d > time.Second+2*margin+2*time.Duration(block)*time.Second/codec.SampleRate {
		t.Fatalf("trimmed to %v, want 1 s of voice plus margins", d)
	}
}

func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "labels")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	pcm, _ := Prepare(tone(440, 0.1, time.Second, 0), KindLabel, 0)
	r1, err := s.Save("704", KindLabel, pcm, "201")
	if err != nil {
		t.Fatal(err)
	}
	pcm2, _ := Prepare(tone(550, 0.1, time.Second, 0), KindLabel, 0)
	r2, err := s.Save("704", KindLabel, pcm2, "201")
	if err != nil {
		t.Fatal(err)
	}
	if r1.File == r2.File {
		t.Fatal("a new recording kept the old file name: caches would serve the old audio")
	}
	if _, err := os.Stat(filepath.Join(dir, r1.File)); !os.IsNotExist(err) {
		t.Errorf("replaced recording's file still there: %v", err)
	}
	if _, err := s.Save("705", KindAnnouncement, pcm, "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save("../x", KindLabel, pcm, ""); err == nil {
		t.Fatal("a path as slot was accepted")
	}
	os.WriteFile(filepath.Join(dir, "orphan.wav"), []byte("x"), 0o644)

	s2, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	list := s2.List()
	if len(list) != 2 || list[0].Slot != "704" || list[0].File != r2.File || list[1].Kind != KindAnnouncement || list[0].By != "201" {
		t.Fatalf("after reopen: %+v", list)
	}
	if _, err := os.Stat(filepath.Join(dir, "orphan.wav")); !os.IsNotExist(err) {
		t.Error("an orphan recording was kept")
	}
	if err := s2.Delete("704", KindLabel); err != nil {
		t.Fatal(err)
	}
	if err := s2.Delete("704", KindLabel); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, ok := s2.Get("704", KindLabel); ok {
		t.Fatal("deleted recording still listed")
	}
}

func TestOpenSurvivesBadIndex(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, indexFile), []byte(`[{"slot":"../../etc","kind":"label","file":"x.wav"},{"slot":"701","kind":"label","file":"gone.wav"}]`), 0o644)
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.List()) != 0 {
		t.Fatalf("bad entries kept: %+v", s.List())
	}
	os.WriteFile(filepath.Join(dir, indexFile), []byte(`garbage`), 0o644)
	if _, err := Open(dir, nil); err != nil {
		t.Fatalf("garbage index stopped the start: %v", err)
	}
}

// clicks puts a 20 ms burst at both ends, as sipp's WAV header or a
// handset knock does.
func clicks(pcm []int16) []int16 {
	for i := range block {
		pcm[i] = int16(12000 * math.Sin(float64(i)))
		pcm[len(pcm)-1-i] = pcm[i]
	}
	return pcm
}
