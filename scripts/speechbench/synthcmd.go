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

// findProgram finds a bench-only synthesiser's program: the path in the
// environment variable env, else name on PATH; hint says how to get it.
func findProgram(env, name, hint string) (string, error) {
	bin := os.Getenv(env)
	if bin == "" {
		bin = name
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s not found (%s): %w", bin, hint, err)
	}
	return path, nil
}

// speakToWAV runs a bench-only synthesiser that writes 16 kHz mono WAV to
// a file only (pico2wave, RHVoice-test): command makes the process for
// the file out, which lies in a directory of its own, so renders can run
// in parallel. what names the call in errors.
func speakToWAV(ctx context.Context, what string, command func(ctx context.Context, out string) *exec.Cmd) ([]int16, error) {
	dir, err := os.MkdirTemp("", "speechbench-synth")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out.wav")
	cmd := command(ctx, out)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", what, err, strings.TrimSpace(tail(stderr.Bytes())))
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, fmt.Errorf("%s wrote no WAV: %w: %s", what, err, strings.TrimSpace(tail(stderr.Bytes())))
	}
	defer f.Close()
	pcm, err := wav.Load16kMono(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(pcm) == 0 {
		return nil, fmt.Errorf("%s: empty WAV: %s", what, strings.TrimSpace(tail(stderr.Bytes())))
	}
	return pcm, nil
}
