package announce

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/parkpage/parkpage/internal/codec/g722"
)

// VoicePrompts is the voice name of recorded prompts: words a person
// recorded (the digits and a few words from Asterisk's core sounds, plus
// any a site adds in Config.PromptDir), with a TTS voice only for words no
// recording covers.
const VoicePrompts = "prompts"

// Recorded prompts shipped in the binary: Allison Smith's recordings from
// the Asterisk core sounds (Debian asterisk-core-sounds-en-g722), CC-BY-SA
// 3.0; see prompts/ATTRIBUTION. G.722 at 64 kbit/s, 16 kHz: 8 kB per
// second of speech, about 120 kB in all. Embedded because the appliance
// image is one static binary with no Debian packages to read them from.
//
//go:embed prompts/*.g722 prompts/ATTRIBUTION
var promptFS embed.FS

// promptWords maps a spoken word to its embedded file's base name.
var promptWords = map[string]string{
	"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
	"five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
	"oh": "oh", "star": "star", "pound": "pound",
	"extension": "extension", "number": "number", "calling": "calling",
	"for": "for", "is": "is", "hello": "hello",
}

// PromptAttribution is the credit the CC-BY-SA 3.0 licence of the
// embedded prompts requires; the README and the appliance's licence file
// carry it too.
func PromptAttribution() string {
	b, _ := promptFS.ReadFile("prompts/ATTRIBUTION")
	return string(b)
}

// promptGap is the pause between two recorded words said in a row.
const promptGap = sampleRate * 60 / 1000

// PromptSpeaker speaks with recorded prompts, and with a TTS voice for the
// words no recording covers. Recordings are trimmed, faded at their edges
// and levelled to the same loudness, so joins neither click nor jump in
// level. Safe for concurrent use.
type PromptSpeaker struct {
	fallback Speaker
	dir      string

	once  sync.Once
	clips map[string][]int16
	err   error
}

// NewPromptSpeaker returns a speaker for the embedded prompts plus the
// WAV files in dir (if not ""), named after the word they say
// ("warehouse.wav", "call.wav"; any rate, mono or stereo), which add
// words or replace embedded ones. fallback speaks every other word.
func NewPromptSpeaker(fallback Speaker, dir string, load func(string) ([]int16, error)) (*PromptSpeaker, error) {
	p := &PromptSpeaker{fallback: fallback, dir: dir}
	p.once.Do(func() { p.clips, p.err = loadPrompts(dir, load) })
	if p.err != nil {
		return nil, p.err
	}
	return p, nil
}

func loadPrompts(dir string, load func(string) ([]int16, error)) (map[string][]int16, error) {
	clips := map[string][]int16{}
	for word, name := range promptWords {
		b, err := promptFS.ReadFile("prompts/" + name + ".g722")
		if err != nil {
			return nil, fmt.Errorf("embedded prompt %q: %w", name, err)
		}
		clips[word] = prepareClip(g722.NewDecoder().Decode(nil, b))
	}
	if dir == "" {
		return clips, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("prompt directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.EqualFold(filepath.Ext(name), ".wav") {
			continue
		}
		pcm, err := load(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("prompt %s: %w", name, err)
		}
		clip := prepareClip(pcm)
		if len(clip) == 0 {
			return nil, fmt.Errorf("prompt %s: silent", name)
		}
		clips[strings.ToLower(strings.TrimSuffix(name, filepath.Ext(name)))] = clip
	}
	return clips, nil
}

// prepareClip trims a recording, fades its edges and levels it.
func prepareClip(pcm []int16) []int16 {
	pcm = trimSilence(pcm)
	if len(pcm) == 0 {
		return nil
	}
	f := normalize(pcm, DefaultTargetDBFS)
	fade(f)
	return toInt16(f)
}

// Covers reports whether a recording says word (any case, punctuation
// around it ignored).
func (p *PromptSpeaker) Covers(word string) bool {
	_, ok := p.clips[bare(word)]
	return ok
}

// Missing lists the words of text, in order and without repeats, that no
// recording covers and the fallback voice will speak.
func (p *PromptSpeaker) Missing(text string) []string {
	var out []string
	for _, w := range strings.Fields(NormalizeText(text)) {
		if b := bare(w); b != "" && !p.Covers(b) && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// Synthesize speaks text: runs of covered words from recordings, the rest
// with the fallback voice, every piece at the same loudness.
func (p *PromptSpeaker) Synthesize(ctx context.Context, text string) ([]int16, error) {
	words := strings.Fields(text)
	if len(words) == 0 {
		return nil, errors.New("empty text")
	}
	var out []float64
	gap := func(n int) {
		if len(out) > 0 {
			out = append(out, make([]float64, n)...)
		}
	}
	for i := 0; i < len(words); {
		if clip, ok := p.clips[bare(words[i])]; ok {
			gap(promptGap)
			for _, v := range clip {
				out = append(out, float64(v))
			}
			i++
			continue
		}
		j := i
		for j < len(words) && !p.Covers(words[j]) {
			j++
		}
		pcm, err := p.fallback.Synthesize(ctx, strings.Join(words[i:j], " "))
		if err != nil {
			return nil, err
		}
		if pcm = trimSilence(pcm); len(pcm) > 0 {
			f := normalize(pcm, DefaultTargetDBFS)
			fade(f)
			gap(2 * promptGap)
			out = append(out, f...)
		}
		i = j
	}
	return toInt16(out), nil
}
