package main

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// rhvoice speaks with RHVoice (an HTS statistical-parametric engine, its
// English language data and one of its English voices), a bench-only
// comparison voice for issue 16: it never enters the product. RHVoice is
// in no package registry these machines reach, so scripts/rhvoice-build
// builds it from source snapshots; the bench finds its RHVoice-test
// program as $RHVOICE_TEST or on PATH, or says it is missing and skips
// only its rows. A build installed under a prefix finds its data and
// config there; RHVOICE_DATA_PATH and RHVOICE_CONFIG_PATH (read by
// RHVoice itself) point a moved one elsewhere.
//
// Each call is one process: RHVoice-test reads the text on stdin and
// writes a WAV file. "-q min" selects the voice's 16 kHz model (the
// default quality uses its 24 kHz one), "-R 16000" the output rate.
type rhvoice struct {
	bin   string
	voice string // RHVoice's voice (profile) name, e.g. slt, evgeniy-eng
	rate  int    // RHVoice's relative rate, percent: 100 is the voice's own

	mu   *sync.Mutex
	memo map[string][]int16 // text → speech: renders repeat the same pieces
}

// rhvoiceVoices are the bench's RHVoice voices: bench name → RHVoice's.
var rhvoiceVoices = map[string]string{
	"slt":     "slt",         // US female (CMU ARCTIC slt)
	"bdl":     "bdl",         // US male (CMU ARCTIC bdl)
	"clb":     "clb",         // US female (CMU ARCTIC clb)
	"alan":    "alan",        // Scottish male (CMU ARCTIC awb, Alan W Black)
	"evgeniy": "evgeniy-eng", // male, RHVoice Lab (CC BY-NC-ND 4.0)
}

// rhvoiceName returns the RHVoice voice of a bench voice "rhvoice-NAME",
// or ok false when voice is not one.
func rhvoiceName(voice string) (name string, ok bool) {
	n, ok := strings.CutPrefix(voice, "rhvoice-")
	if !ok {
		return "", false
	}
	name, ok = rhvoiceVoices[n]
	return name, ok
}

// rhvoiceRate turns a paging rate (a duration stretch: 1.1 is 10 %
// slower) into RHVoice's relative rate in percent.
func rhvoiceRate(stretch float64) int {
	if stretch <= 0 {
		return 100
	}
	return int(math.Round(100 / stretch))
}

// findRHVoice returns the RHVoice voice name, or why it cannot speak
// here. It speaks one word first, so a program without its library,
// language data or voice is found out before the bench starts.
func findRHVoice(name string, rate int) (rhvoice, error) {
	path, err := findProgram("RHVOICE_TEST", "RHVoice-test", "build it with `make rhvoice`, then RHVOICE_TEST=bin/rhvoice/bin/RHVoice-test")
	if err != nil {
		return rhvoice{}, err
	}
	r := rhvoice{bin: path, voice: name, rate: rate, mu: new(sync.Mutex), memo: map[string][]int16{}}
	if _, err := r.Synthesize(context.Background(), "test"); err != nil {
		return rhvoice{}, err
	}
	return r, nil
}

// Synthesize runs RHVoice-test on text. It writes its WAV to a file only,
// so each call has a directory of its own.
func (r rhvoice) Synthesize(ctx context.Context, text string) ([]int16, error) {
	r.mu.Lock()
	memo, ok := r.memo[text]
	r.mu.Unlock()
	if ok {
		return memo, nil
	}
	pcm, err := speakToWAV(ctx, fmt.Sprintf("%s -p %s %q", r.bin, r.voice, text), func(ctx context.Context, out string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, r.bin, "-p", r.voice, "-q", "min", "-R", "16000", "-r", strconv.Itoa(r.rate), "-o", out)
		cmd.Stdin = strings.NewReader(text)
		return cmd
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.memo[text] = pcm
	r.mu.Unlock()
	return pcm, nil
}
