//go:build cgo

package tts

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const phrase = "Sales call on seven oh four"

func rms(pcm []int16) float64 {
	var s float64
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(pcm)))
}

// voicedFraction is the share of 20 ms blocks whose RMS is within 30 dB of
// the loudest block: speech has pauses, noise and tones do not.
func voicedFraction(pcm []int16) float64 {
	const blk = SampleRate / 50
	var levels []float64
	for i := 0; i+blk <= len(pcm); i += blk {
		levels = append(levels, rms(pcm[i:i+blk]))
	}
	peak := slices.Max(levels)
	n := 0
	for _, l := range levels {
		if l > peak/31.6 {
			n++
		}
	}
	return float64(n) / float64(len(levels))
}

func TestVoicesSpeak(t *testing.T) {
	if got := Voices(); len(got) == 0 || got[0] != DefaultVoice {
		t.Fatalf("Voices() = %v, want default %q first", got, DefaultVoice)
	}
	for _, v := range Voices() {
		t.Run(v, func(t *testing.T) {
			e, err := New(v)
			if err != nil {
				t.Fatal(err)
			}
			pcm, err := e.Synthesize(context.Background(), phrase)
			if err != nil {
				t.Fatal(err)
			}
			d := time.Duration(len(pcm)) * time.Second / SampleRate
			if d < 1500*time.Millisecond || d > 4*time.Second {
				t.Errorf("duration %v, want 1.5-4 s", d)
			}
			if r := rms(pcm); r < 300 {
				t.Errorf("RMS %.0f: too quiet for speech", r)
			}
			if f := voicedFraction(pcm); f < 0.4 || f > 0.97 {
				t.Errorf("voiced fraction %.2f: not speech-like (want pauses between words)", f)
			}
			t.Logf("%s: %v, RMS %.0f, voiced %.0f%%", v, d, rms(pcm), 100*voicedFraction(pcm))
		})
	}
}

// TestDeterministic: the cache and the tests rely on same text, same audio.
func TestDeterministic(t *testing.T) {
	e, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	if e.Voice() != DefaultVoice {
		t.Fatalf("New(\"\") voice %q, want %q", e.Voice(), DefaultVoice)
	}
	a, err := e.Synthesize(context.Background(), phrase)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Synthesize(context.Background(), phrase)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Fatal("two syntheses of the same text differ")
	}
}

func TestConcurrent(t *testing.T) {
	texts := []string{phrase, "Warehouse call on seven one oh", "Parking lot"}
	want := map[string][]int16{}
	engines := map[string]*Engine{}
	for _, v := range []string{"slt", "kal16"} {
		e, err := New(v)
		if err != nil {
			t.Fatal(err)
		}
		engines[v] = e
		for _, s := range texts {
			pcm, err := e.Synthesize(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			want[v+s] = pcm
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := range 24 {
		v := []string{"slt", "kal16"}[i%2]
		s := texts[i%len(texts)]
		wg.Go(func() {
			pcm, err := engines[v].Synthesize(context.Background(), s)
			if err != nil {
				errs <- err
				return
			}
			if !slices.Equal(pcm, want[v+s]) {
				errs <- errors.New(v + " " + s + ": concurrent output differs from serial")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStretch(t *testing.T) {
	normal, err := New("kal16")
	if err != nil {
		t.Fatal(err)
	}
	slow, err := New("kal16", WithStretch(1.5))
	if err != nil {
		t.Fatal(err)
	}
	a, err := normal.Synthesize(context.Background(), phrase)
	if err != nil {
		t.Fatal(err)
	}
	b, err := slow.Synthesize(context.Background(), phrase)
	if err != nil {
		t.Fatal(err)
	}
	// Pauses stretch too, so expect close to 1.5x.
	if r := float64(len(b)) / float64(len(a)); r < 1.3 || r > 1.7 {
		t.Errorf("stretch 1.5 gave %.2fx the duration", r)
	}
	// The normal engine must not inherit the slow one's setting.
	c, err := normal.Synthesize(context.Background(), phrase)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != len(a) {
		t.Errorf("normal engine after slow one: %d samples, want %d", len(c), len(a))
	}
	if _, err := New("kal16", WithStretch(3)); err == nil {
		t.Error("stretch 3 accepted")
	}
}

func TestErrors(t *testing.T) {
	if _, err := New("hal9000"); !errors.Is(err, ErrUnknownVoice) {
		t.Errorf("unknown voice: %v, want ErrUnknownVoice", err)
	}
	e, err := New("KAL16") // names are case-insensitive
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want error
	}{
		{"", ErrEmptyText},
		{" \t\n\x00 ", ErrEmptyText},
		{strings.Repeat("a", MaxTextLen+1), ErrTextTooLong},
	} {
		if _, err := e.Synthesize(context.Background(), tc.text); !errors.Is(err, tc.want) {
			t.Errorf("Synthesize(%.10q): %v, want %v", tc.text, err, tc.want)
		}
	}
	// A NUL must not truncate the text: "call\x00 on seven" speaks all words.
	full, err := e.Synthesize(context.Background(), "call on seven")
	if err != nil {
		t.Fatal(err)
	}
	nul, err := e.Synthesize(context.Background(), "call\x00on seven")
	if err != nil {
		t.Fatal(err)
	}
	if len(nul) < len(full)*9/10 {
		t.Errorf("text with NUL gave %d samples, want about %d", len(nul), len(full))
	}
}

func TestContextWhileWaiting(t *testing.T) {
	e, err := New("kal16")
	if err != nil {
		t.Fatal(err)
	}
	lock <- struct{}{} // someone else is synthesising
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = e.Synthesize(ctx, phrase)
	<-lock
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

func BenchmarkSynthesize(b *testing.B) {
	for _, v := range Voices() {
		b.Run(v, func(b *testing.B) {
			e, err := New(v)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := e.Synthesize(context.Background(), phrase); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
