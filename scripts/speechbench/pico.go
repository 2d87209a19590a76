package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/parkpage/parkpage/internal/codec/wav"
)

// pico speaks with SVOX Pico's pico2wave, US English (en-US lh0), a
// bench-only comparison voice for issue 16: it never enters the product.
// Pico is in Debian's non-free section (libttspico-utils, libttspico0,
// libttspico-data: Apache-2.0 code, lingware redistributable without its
// source), so the bench finds it where it is, or says it is missing and
// skips only its rows. PICO2WAVE names the binary when it is not on PATH
// (a package unpacked with dpkg-deb -x also needs LD_LIBRARY_PATH for
// libttspico.so.0, and its lingware where pico2wave looks for it,
// /usr/share/pico/lang).
type pico struct{ bin string }

// findPico returns the pico voice, or why it cannot speak here. It
// speaks one word first, so a binary without its library or lingware is
// found out before the bench starts, not half-way through.
func findPico() (pico, error) {
	bin := os.Getenv("PICO2WAVE")
	if bin == "" {
		bin = "pico2wave"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return pico{}, fmt.Errorf("%s not found (Debian non-free libttspico-utils, or PICO2WAVE=path): %w", bin, err)
	}
	p := pico{bin: path}
	if _, err := p.Synthesize(context.Background(), "test"); err != nil {
		return pico{}, err
	}
	return p, nil
}

// Synthesize runs pico2wave on text; it writes 16 kHz mono WAV to a file
// only (its name must end in .wav), so each call has a directory of its
// own and the renders can run in parallel.
func (p pico) Synthesize(ctx context.Context, text string) ([]int16, error) {
	dir, err := os.MkdirTemp("", "speechbench-pico")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out.wav")
	// "--": a phrase starting with "-" is text, not an option.
	cmd := exec.CommandContext(ctx, p.bin, "-l", "en-US", "-w", out, "--", text)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %q: %w: %s", p.bin, text, err, strings.TrimSpace(tail(stderr.Bytes())))
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, fmt.Errorf("%s %q wrote no WAV: %w: %s", p.bin, text, err, strings.TrimSpace(tail(stderr.Bytes())))
	}
	defer f.Close()
	pcm, err := wav.Load16kMono(f)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", p.bin, text, err)
	}
	if len(pcm) == 0 {
		return nil, fmt.Errorf("%s %q: empty WAV", p.bin, text)
	}
	return pcm, nil
}
