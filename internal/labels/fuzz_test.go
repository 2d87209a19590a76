package labels

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The index is read back after crashes and by hand edits: whatever it
// holds, Open does not fail and keeps only entries that are safe to use.
func FuzzOpenIndex(f *testing.F) {
	f.Add([]byte(`[{"slot":"704","kind":"label","file":"704-label-x.wav"}]`))
	f.Add([]byte(`[{"slot":"../x","kind":"label","file":"../../etc/passwd"}]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, index []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, indexFile), index, 0o644)
		os.WriteFile(filepath.Join(dir, "704-label-x.wav"), []byte("RIFF"), 0o644)
		s, err := Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range s.List() {
			if CheckSlot(r.Slot) != nil || r.File != filepath.Base(r.File) {
				t.Fatalf("unsafe entry kept: %+v", r)
			}
		}
	})
}

// Prepare never panics and never returns audio louder than the ceiling.
func FuzzPrepare(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, false)
	f.Fuzz(func(t *testing.T, raw []byte, announcement bool) {
		pcm := make([]int16, len(raw)/2)
		for i := range pcm {
			pcm[i] = int16(raw[2*i]) | int16(raw[2*i+1])<<8
		}
		// Long enough to pass the length checks sometimes.
		for len(pcm) > 0 && len(pcm) < samples(time.Second) {
			pcm = append(pcm, pcm...)
		}
		k := KindLabel
		if announcement {
			k = KindAnnouncement
		}
		out, err := Prepare(pcm, k, 0)
		if err != nil {
			return
		}
		for _, v := range out {
			if v > 29205 || v < -29206 { // -1 dBFS
				t.Fatalf("sample %d past the ceiling", v)
			}
		}
	})
}
