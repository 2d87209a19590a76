package main

import (
	"context"
	"fmt"
	"os/exec"
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
	path, err := findProgram("PICO2WAVE", "pico2wave", "Debian non-free libttspico-utils, or PICO2WAVE=path")
	if err != nil {
		return pico{}, err
	}
	p := pico{bin: path}
	if _, err := p.Synthesize(context.Background(), "test"); err != nil {
		return pico{}, err
	}
	return p, nil
}

// Synthesize runs pico2wave on text; it writes WAV to a file only (its
// name must end in .wav).
func (p pico) Synthesize(ctx context.Context, text string) ([]int16, error) {
	return speakToWAV(ctx, fmt.Sprintf("%s %q", p.bin, text), func(ctx context.Context, out string) *exec.Cmd {
		// "--": a phrase starting with "-" is text, not an option.
		return exec.CommandContext(ctx, p.bin, "-l", "en-US", "-w", out, "--", text)
	})
}
