//go:build cgo

package tts

/*
#cgo CFLAGS: -I/usr/include/flite
#cgo LDFLAGS: -lflite_cmu_us_slt -lflite_cmu_us_kal16 -lflite_cmu_us_awb -lflite_cmu_us_rms -lflite_usenglish -lflite_cmulex -lflite -lm
#include <stdlib.h>
#include <malloc.h>
#include <flite.h>

// The voice libraries export these but ship no header for them.
cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);

// cst_wave_num_samples and friends are macros, which cgo cannot call.
static int pp_wave_rate(const cst_wave *w) { return w ? w->sample_rate : 0; }
static int pp_wave_len(const cst_wave *w) { return w ? w->num_samples : 0; }
static int pp_wave_channels(const cst_wave *w) { return w ? w->num_channels : 0; }
static const short *pp_wave_samples(const cst_wave *w) { return w ? w->samples : NULL; }

static cst_voice *pp_register(int id) {
	switch (id) {
	case 0: return register_cmu_us_slt(NULL);
	case 1: return register_cmu_us_kal16(NULL);
	case 2: return register_cmu_us_awb(NULL);
	case 3: return register_cmu_us_rms(NULL);
	}
	return NULL;
}

// pp_reseed makes synthesis deterministic: the MLSA vocoder of the
// clustergen voices (slt, awb, rms) draws its noise excitation from rand().
static void pp_reseed(void) { srand(1); }

static void pp_set_stretch(cst_voice *v, float s) {
	flite_feat_set_float(v->features, "duration_stretch", s);
}

*/
import "C"

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"github.com/parkpage/parkpage/internal/codec/resample"
)

// voiceIDs maps voice names to pp_register ids; order is Voices' order.
var voiceIDs = []string{"slt", "kal16", "awb", "rms"}

var (
	initOnce sync.Once
	// lock serialises every flite call after init: registration and
	// synthesis touch global state. A channel so waiters can honour ctx.
	lock   = make(chan struct{}, 1)
	voices = map[string]*C.cst_voice{} // registered voices, guarded by lock
)

// Voices returns the names of the voices linked into the binary, default
// first.
func Voices() []string { return append([]string(nil), voiceIDs...) }

func voiceID(name string) int {
	for i, v := range voiceIDs {
		if v == name {
			return i
		}
	}
	return -1
}

// New returns an Engine speaking with the named voice ("" means
// DefaultVoice). Voices are registered on first use.
func New(voice string, opts ...Option) (*Engine, error) {
	if voice == "" {
		voice = DefaultVoice
	}
	voice = strings.ToLower(voice)
	id := voiceID(voice)
	if id < 0 {
		return nil, fmt.Errorf("voice %q: %w (have %s)", voice, ErrUnknownVoice, strings.Join(voiceIDs, ", "))
	}
	e := &Engine{voice: voice, stretch: 1}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, fmt.Errorf("voice %q: %w", voice, err)
		}
	}
	initOnce.Do(func() { C.flite_init() })
	lock <- struct{}{}
	defer func() { <-lock }()
	if voices[voice] == nil {
		v := C.pp_register(C.int(id))
		if v == nil {
			return nil, fmt.Errorf("voice %q: flite registration failed", voice)
		}
		voices[voice] = v
	}
	e.v = voices[voice]
	return e, nil
}

// Engine synthesises speech with one voice. It is safe for concurrent use.
type Engine struct {
	voice   string
	stretch float64
	v       *C.cst_voice // owned by the voices map, never freed
}

// Voice returns the engine's voice name.
func (e *Engine) Voice() string { return e.voice }

// Synthesize speaks text and returns 16 kHz mono PCM. Digits are read the
// way flite reads them ("704" is "seven hundred four").
func (e *Engine) Synthesize(ctx context.Context, text string) ([]int16, error) {
	text, err := cleanText(text)
	if err != nil {
		return nil, fmt.Errorf("voice %q: %w", e.voice, err)
	}
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("voice %q: waiting for synthesiser: %w", e.voice, ctx.Err())
	}
	pcm, err := e.synthLocked(text)
	<-lock
	if err != nil {
		return nil, fmt.Errorf("voice %q: %w", e.voice, err)
	}
	return pcm, nil
}

func (e *Engine) synthLocked(text string) ([]int16, error) {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	// duration_stretch lives on the shared voice: set it every time, under
	// the lock, so engines with different rates do not leak into each other.
	C.pp_set_stretch(e.v, C.float(e.stretch))
	C.pp_reseed()
	w := C.flite_text_to_wave(ctext, e.v)
	if w == nil {
		return nil, fmt.Errorf("flite produced no audio")
	}
	defer C.delete_wave(w)
	n := int(C.pp_wave_len(w))
	ch := int(C.pp_wave_channels(w))
	rate := int(C.pp_wave_rate(w))
	if n <= 0 || ch <= 0 || rate <= 0 {
		return nil, fmt.Errorf("flite produced no audio (%d samples, %d channels, %d Hz)", n, ch, rate)
	}
	pcm := downmix(unsafe.Slice((*int16)(unsafe.Pointer(C.pp_wave_samples(w))), n*ch), ch)
	if rate != SampleRate {
		var err error
		if pcm, err = resample.Resample(pcm, rate, SampleRate); err != nil {
			return nil, fmt.Errorf("flite voice at %d Hz: %w", rate, err)
		}
	}
	return pcm, nil
}

// downmix copies interleaved samples into a new mono slice (flite voices
// are mono; this only guards the contract).
func downmix(in []int16, ch int) []int16 {
	out := make([]int16, len(in)/ch)
	if ch == 1 {
		copy(out, in)
		return out
	}
	for i := range out {
		var s int
		for c := 0; c < ch; c++ {
			s += int(in[i*ch+c])
		}
		out[i] = int16(s / ch)
	}
	return out
}

// ReleaseMemory hands the C heap's free pages back to the kernel. Flite's
// synthesis mallocs and frees several MB per phrase, and glibc keeps freed
// memory in its arenas: after the start-up renders that was about 3 MB of
// an idle box's RSS.
func ReleaseMemory() { C.malloc_trim(0) }
