package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/announce"
)

// A machine without RHVoice-test skips the rhvoice rows and says how to
// build it; other voices still render, and a name that is no RHVoice
// voice is not taken for one.
func TestVoiceConfigSkipsMissingRHVoice(t *testing.T) {
	t.Setenv("RHVOICE_TEST", filepath.Join(t.TempDir(), "RHVoice-test"))
	for _, v := range []string{"rhvoice-slt", "rhvoice-bdl", "rhvoice-clb", "rhvoice-alan", "rhvoice-evgeniy"} {
		_, skip := voiceConfig(v)
		if skip == nil || !strings.Contains(skip.Error(), "make rhvoice") {
			t.Errorf("%s without RHVoice-test: skip = %v, want one naming make rhvoice", v, skip)
		}
	}
	if rc, skip := voiceConfig("rms"); skip != nil || rc.NewSpeaker != nil {
		t.Errorf("rms: %+v, skip %v", rc, skip)
	}
	if _, skip := voiceConfig("rhvoice-nosuch"); skip == nil || !strings.Contains(skip.Error(), "no RHVoice voice") {
		t.Errorf("rhvoice-nosuch: skip = %v", skip)
	}
}

// A RHVoice-test that cannot speak (its library or data missing) is
// found out by the probe, with its output in the error.
func TestFindRHVoiceBroken(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "RHVoice-test")
	script := "#!/bin/sh\necho 'No language resources are available' >&2\nexit 255\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RHVOICE_TEST", bin)
	_, err := findRHVoice("slt", 100)
	if err == nil || !strings.Contains(err.Error(), "No language resources") {
		t.Errorf("broken RHVoice-test: %v", err)
	}
}

// The paging rate (a stretch) becomes RHVoice's rate: slower is less.
func TestRHVoiceRate(t *testing.T) {
	for _, c := range []struct {
		stretch float64
		want    int
	}{{0, 100}, {1, 100}, {1.1, 91}, {1.25, 80}, {0.8, 125}} {
		if got := rhvoiceRate(c.stretch); got != c.want {
			t.Errorf("rhvoiceRate(%v) = %d, want %d", c.stretch, got, c.want)
		}
	}
}

// With RHVoice at hand (RHVOICE_TEST), each voice says a phrase as 16 kHz
// speech of a plausible length; without it, a stand-in with
// RHVoice-test's command line (writing a sweep with sox) still checks the
// wrapper: arguments, text on stdin, the paging rate, the WAV read back.
func TestRHVoiceSynthesize(t *testing.T) {
	voices := []string{"rhvoice-slt", "rhvoice-bdl", "rhvoice-clb", "rhvoice-alan", "rhvoice-evgeniy"}
	if _, err := findRHVoice("slt", 100); err != nil {
		t.Logf("no working RHVoice-test (%v): using a stand-in", err)
		fake := filepath.Join(t.TempDir(), "RHVoice-test")
		script := "#!/bin/sh\n# RHVoice-test -p VOICE -q min -R 16000 -r RATE -o OUT < TEXT\n" +
			"[ \"$1\" = -p ] && [ \"$3\" = -q ] && [ \"$4\" = min ] && [ \"$5\" = -R ] && [ \"$6\" = 16000 ] && [ \"$7\" = -r ] && [ \"$8\" = 91 ] && [ \"$9\" = -o ] || { echo \"usage: $*\" >&2; exit 2; }\n" +
			"text=$(cat); [ -n \"$text\" ] || { echo 'no text on stdin' >&2; exit 2; }\n" +
			"exec sox -n -r 16000 -b 16 -c 1 \"${10}\" synth 1.5 sine 300-900\n"
		if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("RHVOICE_TEST", fake)
		voices = voices[:1]
	}
	for _, v := range voices {
		rc, skip := voiceConfigFor(v, announce.Paging{Rate: 1.1})
		if skip != nil {
			t.Fatalf("%s: %v", v, skip)
		}
		sp, err := rc.NewSpeaker(v)
		if err != nil {
			t.Fatal(err)
		}
		pcm, err := sp.Synthesize(context.Background(), "-seven zero four")
		if err != nil {
			t.Fatal(err)
		}
		if d := float64(len(pcm)) / 16000; d < 0.5 || d > 5 {
			t.Errorf("%s: \"seven zero four\": %.2f s of audio", v, d)
		}
		loud := 0
		for _, s := range pcm {
			if s > 1000 || s < -1000 {
				loud++
			}
		}
		if loud < len(pcm)/10 {
			t.Errorf("%s: %d of %d samples above -30 dBFS: silent", v, loud, len(pcm))
		}
	}
}
