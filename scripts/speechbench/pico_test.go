package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A machine without pico2wave skips the pico rows and says where to get
// it; every other voice still renders.
func TestVoiceConfigSkipsMissingPico(t *testing.T) {
	t.Setenv("PICO2WAVE", filepath.Join(t.TempDir(), "pico2wave"))
	_, skip := voiceConfig("pico")
	if skip == nil || !strings.Contains(skip.Error(), "non-free libttspico-utils") {
		t.Errorf("pico without pico2wave: skip = %v, want one naming libttspico-utils", skip)
	}
	for _, v := range []string{"rms", "espeak", "prompts+rms"} {
		if rc, skip := voiceConfig(v); skip != nil || rc.Chime != "none" {
			t.Errorf("%s: %+v, skip %v", v, rc, skip)
		}
	}
}

// A pico2wave that cannot speak (its library or lingware missing) is
// found out by the probe, with its output in the error.
func TestFindPicoBroken(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pico2wave")
	script := "#!/bin/sh\necho 'error while loading shared libraries: libttspico.so.0' >&2\nexit 127\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PICO2WAVE", bin)
	_, err := findPico()
	if err == nil || !strings.Contains(err.Error(), "libttspico.so.0") {
		t.Errorf("broken pico2wave: %v", err)
	}
}

// With pico2wave at hand (PICO2WAVE, LD_LIBRARY_PATH), a phrase comes
// back as 16 kHz speech of a plausible length.
func TestPicoSynthesize(t *testing.T) {
	p, err := findPico()
	if err != nil {
		// No Pico here (it is in Debian's non-free): a stand-in with
		// pico2wave's command line, writing a 16 kHz sweep with sox, still
		// checks the wrapper (arguments, WAV read back, length, level).
		t.Logf("no working pico2wave (%v): using a stand-in", err)
		fake := filepath.Join(t.TempDir(), "pico2wave")
		script := "#!/bin/sh\n# pico2wave -l LANG -w OUT -- TEXT\n" +
			"[ \"$1\" = -l ] && [ \"$3\" = -w ] && [ \"$5\" = -- ] || { echo \"usage: $*\" >&2; exit 2; }\n" +
			"exec sox -n -r 16000 -b 16 -c 1 \"$4\" synth 1.5 sine 300-900\n"
		if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PICO2WAVE", fake)
		if p, err = findPico(); err != nil {
			t.Fatalf("stand-in pico2wave: %v", err)
		}
	}
	pcm, err := p.Synthesize(context.Background(), "-seven zero four")
	if err != nil {
		t.Fatal(err)
	}
	if d := float64(len(pcm)) / 16000; d < 0.5 || d > 5 {
		t.Errorf("\"seven zero four\": %.2f s of audio", d)
	}
	loud := 0
	for _, s := range pcm {
		if s > 1000 || s < -1000 {
			loud++
		}
	}
	if loud < len(pcm)/10 {
		t.Errorf("%d of %d samples above -30 dBFS: silent", loud, len(pcm))
	}
}
