package announce

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/codec/wav"
	"github.com/parkpage/parkpage/internal/config"
)

func TestSplitNumbers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // "#" marks a number segment
	}{
		{"Sales call on seven oh four", []string{"Sales call on", "#seven oh four"}},
		{"seven oh four", []string{"#seven oh four"}},
		{"one moment please", []string{"one moment please"}},
		{"oh seven", []string{"oh seven"}}, // a number never starts with "oh"
		{"call on seven oh four, seven oh five now", []string{"call on", "#seven oh four", "#seven oh five", "now"}},
		{"zero one two", []string{"#zero one two"}},
		{"Lot Seven Oh One.", []string{"Lot", "#seven oh one"}},
	} {
		var got []string
		for _, s := range splitNumbers(tc.in) {
			if s.digits != nil {
				got = append(got, "#"+s.text)
			} else {
				got = append(got, s.text)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("splitNumbers(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// toneSpeaker "says" each call's text as a 1 kHz tone 100 ms long per
// word, at a fixed level, and records what it was asked.
type toneSpeaker struct {
	mu    sync.Mutex
	calls []string
	amp   float64
}

func (s *toneSpeaker) Synthesize(_ context.Context, text string) ([]int16, error) {
	s.mu.Lock()
	s.calls = append(s.calls, text)
	s.mu.Unlock()
	n := len(strings.Fields(text)) * sampleRate / 10
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(s.amp * math.Sin(2*math.Pi*1000*float64(i)/sampleRate))
	}
	return out, nil
}

// bursts finds the runs of sound in pcm (gaps of at least 20 ms of
// silence between them), as [start, end) sample indices.
func bursts(pcm []int16) [][2]int {
	var out [][2]int
	quiet := 0
	start := -1
	for i, v := range pcm {
		if abs(int(v)) > 30 {
			if start < 0 {
				start = i
			}
			quiet = 0
			continue
		}
		quiet++
		if start >= 0 && quiet >= sampleRate/50 {
			out = append(out, [2]int{start, i - quiet + 1})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, [2]int{start, len(pcm)})
	}
	return out
}

func TestSpeakPagingShape(t *testing.T) {
	sp := &toneSpeaker{amp: 8000}
	p := Paging{DigitGap: 200 * time.Millisecond, NumberRepeat: 2, NumberGainDB: 4}
	pcm, err := speakPaging(context.Background(), sp, "Sales call on seven oh four", p)
	if err != nil {
		t.Fatal(err)
	}
	// The words in one go, then each digit alone, twice.
	want := []string{"Sales call on", "seven", "oh", "four", "seven", "oh", "four"}
	if !slices.Equal(sp.calls, want) {
		t.Fatalf("synthesised %q, want %q", sp.calls, want)
	}
	b := bursts(pcm)
	if len(b) != 7 {
		t.Fatalf("%d bursts of sound, want 7 (words, then 2×3 digits): %v", len(b), b)
	}
	gap := func(i int) time.Duration {
		return time.Duration(b[i+1][0]-b[i][1]) * time.Second / sampleRate
	}
	near := func(got, want time.Duration) bool {
		return got > want-15*time.Millisecond && got < want+15*time.Millisecond
	}
	if g := gap(1); !near(g, 200*time.Millisecond) {
		t.Errorf("gap between digits %v, want 200ms", g)
	}
	if g := gap(3); !near(g, 400*time.Millisecond) {
		t.Errorf("gap between the two sayings of the slot %v, want 400ms", g)
	}
	words := Loudness(pcm[b[0][0]:b[0][1]])
	for i := 1; i < len(b); i++ {
		if d := Loudness(pcm[b[i][0]:b[i][1]]) - words; math.Abs(d-4) > 0.5 {
			t.Errorf("digit %d is %.1f dB over the words, want 4 (emphasis)", i, d)
		}
	}
	// Each piece fades in and out: no click at a join.
	for _, s := range b {
		if a := abs(int(pcm[s[0]])); a > 2000 {
			t.Errorf("piece starts at amplitude %d: a click", a)
		}
	}
}

func TestSpeakPagingFlowingDigits(t *testing.T) {
	sp := &toneSpeaker{amp: 8000}
	if _, err := speakPaging(context.Background(), sp, "call on seven oh four", Paging{NumberRepeat: 1, PresenceDB: 3}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"call on", "seven oh four"}; !slices.Equal(sp.calls, want) {
		t.Fatalf("synthesised %q, want %q (digit_gap 0: the number in one go)", sp.calls, want)
	}
}

func TestSpeakPagingZero(t *testing.T) {
	cases := []struct {
		name string
		text string
		p    Paging
		want []string
	}{
		{"zero, in one go", "Sales call on seven oh four, line one oh", Paging{Zero: true},
			[]string{"Sales call on", "seven zero four", "line", "one zero"}},
		{"zero, digit by digit", "call on seven oh four", Paging{Zero: true, DigitGap: 100 * time.Millisecond},
			[]string{"call on", "seven", "zero", "four"}},
		{"oh kept without Zero", "call on seven oh four", Paging{NumberRepeat: 1},
			[]string{"call on", "seven oh four"}},
		// "oh" outside a number is a word, not a digit.
		{"a word oh stays", "oh call on seven oh four", Paging{Zero: true},
			[]string{"oh call on", "seven zero four"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := &toneSpeaker{amp: 8000}
			if _, err := speakPaging(context.Background(), sp, tc.text, tc.p); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sp.calls, tc.want) {
				t.Fatalf("synthesised %q, want %q", sp.calls, tc.want)
			}
		})
	}
}

func toneLevel(f biquad, hz float64) float64 {
	x := make([]float64, sampleRate)
	for i := range x {
		x[i] = math.Sin(2 * math.Pi * hz * float64(i) / sampleRate)
	}
	f.run(x)
	var peak float64
	for _, v := range x[sampleRate/2:] {
		peak = max(peak, math.Abs(v))
	}
	return 20 * math.Log10(peak)
}

func TestEqualiser(t *testing.T) {
	hp := highPass(200)
	for _, tc := range []struct {
		hz, lo, hi float64
	}{{50, -26, -22}, {200, -3.5, -2.5}, {1000, -0.5, 0.5}, {4000, -0.2, 0.2}} {
		if g := toneLevel(hp, tc.hz); g < tc.lo || g > tc.hi {
			t.Errorf("high-pass 200 Hz at %v Hz: %.1f dB, want %v to %v", tc.hz, g, tc.lo, tc.hi)
		}
	}
	pk := peaking(PresenceHz, 1, 4)
	for _, tc := range []struct {
		hz, lo, hi float64
	}{{PresenceHz, 3.8, 4.2}, {300, -0.1, 0.6}, {7000, -0.1, 1}} {
		if g := toneLevel(pk, tc.hz); g < tc.lo || g > tc.hi {
			t.Errorf("presence +4 dB at %v Hz: %.1f dB, want %v to %v", tc.hz, g, tc.lo, tc.hi)
		}
	}
}

func TestPagingValidate(t *testing.T) {
	if err := DefaultPaging().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Paging{{Rate: 3}, {DigitGap: -1}, {NumberRepeat: 4}, {NumberGainDB: 7}, {HighPassHz: 20}, {PresenceDB: -1}} {
		if p.Validate() == nil {
			t.Errorf("%+v: want an error", p)
		}
	}
}

// The config's defaults are DefaultPaging: one choice, in two packages.
func TestDefaultSpeechIsDefaultPaging(t *testing.T) {
	if got := PagingOf(config.DefaultSpeech); got != DefaultPaging() {
		t.Fatalf("config.DefaultSpeech gives %+v, DefaultPaging is %+v", got, DefaultPaging())
	}
	if got := PagingOf(config.Speech{Plain: true, Rate: 1.2}); got != (Paging{Off: true}) {
		t.Fatalf("plain speech gives %+v", got)
	}
}

func TestResolvePaging(t *testing.T) {
	r := newRenderer(t, Config{Paging: DefaultPaging(), NewSpeaker: func(string) (Speaker, error) { return &toneSpeaker{amp: 5000}, nil }})
	got, err := r.Resolve(Request{Text: "call on 704"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Paging != DefaultPaging() {
		t.Errorf("a request without paging got %+v, want the config's", got.Paging)
	}
	got, _ = r.Resolve(Request{Text: "call on 704", Paging: Paging{Off: true, Rate: 1.5}})
	if got.Paging != (Paging{Off: true}) {
		t.Errorf("an Off request got %+v", got.Paging)
	}
	if _, err := r.Resolve(Request{Text: "x", Paging: Paging{NumberRepeat: 9}}); err == nil {
		t.Error("a bad paging setting was accepted")
	}
	plain, err := r.Render(context.Background(), Request{Text: "call on 704", Paging: Paging{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	paged, err := r.Render(context.Background(), Request{Text: "call on 704"})
	if err != nil {
		t.Fatal(err)
	}
	// The slot said twice, with a pause before it and between: 0.3 s of
	// tone and 0.45 s of pauses longer than the plain phrase.
	if paged.Duration() < plain.Duration()+700*time.Millisecond {
		t.Errorf("paged %v, plain %v: paging speech did not pause and repeat", paged.Duration(), plain.Duration())
	}
}

func TestPromptSpeaker(t *testing.T) {
	fb := &toneSpeaker{amp: 3000}
	ps, err := NewPromptSpeaker(fb, "", wav.LoadFile16kMono)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh", "Seven,"} {
		if !ps.Covers(w) {
			t.Errorf("no embedded prompt for %q", w)
		}
	}
	if got, want := ps.Missing("Warehouse call on 704, warehouse"), []string{"warehouse", "call", "on"}; !slices.Equal(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
	pcm, err := ps.Synthesize(context.Background(), "seven oh four")
	if err != nil {
		t.Fatal(err)
	}
	if len(fb.calls) != 0 {
		t.Errorf("the fallback voice spoke %q for covered words", fb.calls)
	}
	b := bursts(pcm)
	if len(b) != 3 {
		t.Fatalf("%d bursts, want 3 recorded digits", len(b))
	}
	// Levelled: every recorded digit at the same loudness.
	for _, s := range b {
		if l := Loudness(pcm[s[0]:s[1]]); math.Abs(l-DefaultTargetDBFS) > 1.5 {
			t.Errorf("a digit at %.1f dBFS, want %v±1.5", l, DefaultTargetDBFS)
		}
		if a := abs(int(pcm[s[0]])); a > 1000 {
			t.Errorf("a digit starts at amplitude %d: a click", a)
		}
	}
	if _, err := ps.Synthesize(context.Background(), "warehouse call on seven"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fb.calls, []string{"warehouse call on"}) {
		t.Errorf("the fallback spoke %q, want the uncovered run once", fb.calls)
	}
}

func TestPromptDir(t *testing.T) {
	dir := t.TempDir()
	tone := make([]int16, 8000)
	for i := range tone {
		tone[i] = int16(5000 * math.Sin(2*math.Pi*440*float64(i)/8000))
	}
	if err := wav.WriteFile(filepath.Join(dir, "Warehouse.wav"), 8000, 1, tone); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := NewPromptSpeaker(&toneSpeaker{amp: 3000}, dir, wav.LoadFile16kMono)
	if err != nil {
		t.Fatal(err)
	}
	if !ps.Covers("warehouse") || !ps.Covers("seven") {
		t.Error("a site's recording does not add to the embedded prompts")
	}
	if err := wav.WriteFile(filepath.Join(dir, "silent.wav"), 8000, 1, make([]int16, 800)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPromptSpeaker(&toneSpeaker{}, dir, wav.LoadFile16kMono); err == nil || !strings.Contains(err.Error(), "silent.wav") {
		t.Errorf("a silent recording: %v, want an error naming it", err)
	}
	if _, err := NewPromptSpeaker(&toneSpeaker{}, filepath.Join(dir, "nope"), wav.LoadFile16kMono); err == nil {
		t.Error("a missing directory was accepted")
	}
}

// Voice prompts through the whole renderer: recorded digits, TTS words.
func TestRenderPromptsVoice(t *testing.T) {
	r := newRenderer(t, Config{Voice: VoicePrompts, Paging: DefaultPaging()})
	out, err := r.Render(context.Background(), Request{Text: "Sales call on 704"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Duration() < 2*time.Second {
		t.Errorf("%v of audio", out.Duration())
	}
	if _, err := r.Render(context.Background(), Request{Text: "Sales call on 704", Voice: "nosuch"}); err == nil {
		t.Error("an unknown voice rendered")
	}
	if !strings.Contains(PromptAttribution(), "Allison Smith") || !strings.Contains(PromptAttribution(), "CC BY-SA 3.0") {
		t.Error("the prompts' attribution is missing")
	}
}
