package media

import (
	"encoding/binary"
	"flag"
	"os"
	"testing"
)

var updateMusic = flag.Bool("update-music", false, "rewrite defaultmusic.pcm from synthMusic")

// TestDefaultMusicEmbedded checks that the embedded built-in music is what
// synthMusic renders (within one step: arm64 may fuse multiply-adds), so
// the file cannot drift from its source. After changing synthMusic, run
// go test ./internal/media -run TestDefaultMusicEmbedded -update-music.
func TestDefaultMusicEmbedded(t *testing.T) {
	want := synthMusic()
	if *updateMusic {
		b := make([]byte, 0, 2*len(want))
		for _, v := range want {
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		}
		if err := os.WriteFile("defaultmusic.pcm", b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("defaultmusic.pcm rewritten; build again to embed it")
		return
	}
	got := DefaultMusic()
	if len(got) != len(want) {
		t.Fatalf("embedded music has %d samples, synthMusic %d: run with -update-music", len(got), len(want))
	}
	for i := range want {
		if d := int(got[i]) - int(want[i]); d < -1 || d > 1 {
			t.Fatalf("sample %d: embedded %d, synthMusic %d: run with -update-music", i, got[i], want[i])
		}
	}
}

// TestMusicFromEmbeddedData plays the built-in music through Music and
// checks it yields the embedded samples, in order, across the loop point.
func TestMusicFromEmbeddedData(t *testing.T) {
	m, err := LoadMusic("")
	if err != nil {
		t.Fatal(err)
	}
	pcm := DefaultMusic()
	frame := make([]int16, len(m.frame))
	pos := 0
	for range len(pcm)/len(frame) + 3 {
		m.NextFrame(frame)
		for i, v := range frame {
			if want := pcm[(pos+i)%len(pcm)]; v != want {
				t.Fatalf("sample %d: %d, want %d", pos+i, v, want)
			}
		}
		pos += len(frame)
	}
}
