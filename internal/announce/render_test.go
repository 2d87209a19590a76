package announce

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/wav"
	"github.com/parkpage/parkpage/internal/tts"
)

const phrase = "Sales call on seven oh four"

// scaled wraps a real voice, scaling its output: a test "voice" far
// quieter or louder (clipping) than any flite voice.
type scaled struct {
	Speaker
	gain float64
}

func (s scaled) Synthesize(ctx context.Context, text string) ([]int16, error) {
	pcm, err := s.Speaker.Synthesize(ctx, text)
	for i, v := range pcm {
		pcm[i] = int16(max(min(float64(v)*s.gain, 32767), -32768))
	}
	return pcm, err
}

// counting counts syntheses and can hold them until released.
type counting struct {
	Speaker
	n    atomic.Int64
	gate chan struct{} // if non-nil, syntheses wait until it is closed
}

func (c *counting) Synthesize(ctx context.Context, text string) ([]int16, error) {
	c.n.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return c.Speaker.Synthesize(ctx, text)
}

func newSpeaker(t testing.TB, voice string) Speaker {
	t.Helper()
	e, err := tts.New(voice)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// mapLoader serves WAV "files" from memory.
func mapLoader(files map[string][]int16) func(string) ([]int16, error) {
	return func(path string) ([]int16, error) {
		pcm, ok := files[path]
		if !ok {
			return nil, fmt.Errorf("open %s: %w", path, os.ErrNotExist)
		}
		return slices.Clone(pcm), nil
	}
}

func newRenderer(t testing.TB, cfg Config) *Renderer {
	t.Helper()
	r, err := NewRenderer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		speaker func(t *testing.T) Speaker
		target  float64
	}{
		{"slt (loud voice)", func(t *testing.T) Speaker { return newSpeaker(t, "slt") }, 0},
		{"kal16 (quiet voice)", func(t *testing.T) Speaker { return newSpeaker(t, "kal16") }, 0},
		{"kal16 26 dB down", func(t *testing.T) Speaker { return scaled{newSpeaker(t, "kal16"), 0.05} }, 0},
		{"slt clipping", func(t *testing.T) Speaker { return scaled{newSpeaker(t, "slt"), 8} }, 0},
		{"slt to -12 dBFS", func(t *testing.T) Speaker { return newSpeaker(t, "slt") }, -12},
		{"kal16 to -11 dBFS (limiter busy)", func(t *testing.T) Speaker { return newSpeaker(t, "kal16") }, -11},
		{"awb to -24 dBFS", func(t *testing.T) Speaker { return newSpeaker(t, "awb") }, -24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := tc.speaker(t)
			cfg := Config{TargetDBFS: tc.target, NewSpeaker: func(string) (Speaker, error) { return sp, nil }}
			r := newRenderer(t, cfg)
			out, err := r.Render(context.Background(), Request{Text: phrase})
			if err != nil {
				t.Fatal(err)
			}
			want := cmpOr(tc.target, DefaultTargetDBFS)
			for i, s := range out.speech {
				if got := Loudness(out.PCM[s[0]:s[1]]); math.Abs(got-want) > 1 {
					t.Errorf("phrase %d: loudness %.2f dBFS, want %.1f ±1", i, got, want)
				}
			}
			if p := peakDBFS(out.PCM); p > DefaultCeilingDBFS {
				t.Errorf("peak %.3f dBFS above the %v dBFS ceiling", p, DefaultCeilingDBFS)
			}
			t.Logf("speech %.2f dBFS, peak %.2f dBFS", Loudness(out.PCM[out.speech[0][0]:out.speech[0][1]]), peakDBFS(out.PCM))
		})
	}
}

func cmpOr(v, d float64) float64 {
	if v == 0 {
		return d
	}
	return v
}

func TestLayout(t *testing.T) {
	sp := newSpeaker(t, "kal16")
	r := newRenderer(t, Config{
		LeadIn: 500 * time.Millisecond, ChimeGap: 100 * time.Millisecond, RepeatGap: 700 * time.Millisecond,
		NewSpeaker: func(string) (Speaker, error) { return sp, nil },
	})
	once, err := r.Render(context.Background(), Request{Text: phrase, Chime: ChimeNone})
	if err != nil {
		t.Fatal(err)
	}
	twice, err := r.Render(context.Background(), Request{Text: phrase, Chime: ChimeTwoTone, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []*Rendered{once, twice} {
		if len(out.PCM)%codec.FrameSamples != 0 {
			t.Errorf("%d samples: not whole 20 ms frames", len(out.PCM))
		}
		lead := out.PCM[:sampleRate/2]
		if slices.ContainsFunc(lead, func(v int16) bool { return v != 0 }) {
			t.Error("lead-in is not silent")
		}
		if out.PCM[sampleRate/2] == 0 && out.PCM[sampleRate/2+40] == 0 {
			t.Error("no sound right after the lead-in")
		}
		if p := peakDBFS(out.PCM); p > DefaultCeilingDBFS {
			t.Errorf("peak %.2f dBFS", p)
		}
	}
	// With no chime, speech starts right after the lead-in.
	if once.SpeechStart != sampleRate/2 || len(once.speech) != 1 {
		t.Errorf("no chime: speech at %d (%d phrases), want %d (1)", once.SpeechStart, len(once.speech), sampleRate/2)
	}
	// With a chime and two repeats: chime, gap, phrase, 700 ms, phrase.
	chime, _ := builtinChime(ChimeTwoTone)
	if want := sampleRate/2 + len(chime) + sampleRate/10; twice.SpeechStart != want {
		t.Errorf("speech starts at %d, want %d", twice.SpeechStart, want)
	}
	if len(twice.speech) != 2 || twice.speech[1][0]-twice.speech[0][1] != 7*sampleRate/10 {
		t.Fatalf("phrases at %v, want two 700 ms apart", twice.speech)
	}
	a := twice.PCM[twice.speech[0][0]:twice.speech[0][1]]
	b := twice.PCM[twice.speech[1][0]:twice.speech[1][1]]
	if !slices.Equal(a, b) {
		t.Error("the repeated phrase differs from the first")
	}
	gap := twice.PCM[twice.speech[0][1]:twice.speech[1][0]]
	if slices.ContainsFunc(gap, func(v int16) bool { return v != 0 }) {
		t.Error("repeat gap is not silent")
	}
	// Plausible durations: 1.5-4 s of speech for this phrase.
	if d := time.Duration(len(a)) * time.Second / sampleRate; d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("phrase lasts %v", d)
	}
	if once.Duration() >= twice.Duration() {
		t.Errorf("durations %v and %v", once.Duration(), twice.Duration())
	}
}

func TestChimes(t *testing.T) {
	for _, name := range Chimes() {
		pcm, err := builtinChime(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == ChimeNone {
			if len(pcm) != 0 {
				t.Errorf("none: %d samples", len(pcm))
			}
			continue
		}
		d := time.Duration(len(pcm)) * time.Second / sampleRate
		if d < 200*time.Millisecond || d > 3*time.Second {
			t.Errorf("%s lasts %v", name, d)
		}
		if l := Loudness(pcm); l < -30 {
			t.Errorf("%s: loudness %.1f dBFS", name, l)
		}
		if err := CheckChime(name); err != nil {
			t.Error(err)
		}
	}
	for _, c := range []struct {
		chime string
		ok    bool
	}{{"ding.wav", true}, {"/perm/chimes/bell", true}, {"DING.WAV", true}, {"two-tones", false}, {"", false}} {
		if err := CheckChime(c.chime); (err == nil) != c.ok {
			t.Errorf("CheckChime(%q) = %v", c.chime, err)
		}
	}
}

// TestFiles renders a WAV chime and a recorded override from disk through
// the default loader (internal/codec/wav), the recording at 8 kHz as a
// phone-recorded prompt would be.
func TestFiles(t *testing.T) {
	sp := newSpeaker(t, "slt")
	recorded, err := sp.Synthesize(context.Background(), "Attention please, a call is waiting")
	if err != nil {
		t.Fatal(err)
	}
	recorded8k := make([]int16, len(recorded)/2)
	for i := range recorded8k {
		recorded8k[i] = recorded[2*i] // slt has little energy above 4 kHz
	}
	quietBell := sine(sampleRate/2, 880, 300)
	padded := append(append(make([]int16, sampleRate), quietBell...), make([]int16, sampleRate)...)
	dir := t.TempDir()
	bellPath, recPath := filepath.Join(dir, "bell.wav"), filepath.Join(dir, "704.wav")
	if err := wav.WriteFile(bellPath, sampleRate, 1, padded); err != nil {
		t.Fatal(err)
	}
	if err := wav.WriteFile(recPath, 8000, 1, recorded8k); err != nil {
		t.Fatal(err)
	}
	r := newRenderer(t, Config{Chime: bellPath, NewSpeaker: func(string) (Speaker, error) { return sp, nil }})
	out, err := r.Render(context.Background(), Request{Text: phrase, OverrideWAV: recPath})
	if err != nil {
		t.Fatal(err)
	}
	// The file chime is trimmed of its silence and normalised.
	chime := out.PCM[sampleRate*3/10 : out.SpeechStart-sampleRate/4]
	if d := len(chime) - len(quietBell); d < 0 || d > sampleRate/50 {
		t.Errorf("chime section %d samples for a %d-sample bell", len(chime), len(quietBell))
	}
	if l := Loudness(chime); math.Abs(l-DefaultTargetDBFS) > 1 {
		t.Errorf("chime loudness %.1f dBFS", l)
	}
	// The recording is spoken instead of the text, at 16 kHz and the
	// target level.
	s := out.speech[0]
	if n := s[1] - s[0]; n < len(recorded)*8/10 || n > len(recorded)+sampleRate/50 {
		t.Errorf("override section %d samples, recording %d at 16 kHz", n, len(recorded))
	}
	if l := Loudness(out.PCM[s[0]:s[1]]); math.Abs(l-DefaultTargetDBFS) > 1 {
		t.Errorf("override loudness %.1f dBFS", l)
	}
	if out.Request.Text != "" || out.Request.Voice != "" {
		t.Errorf("override request keeps text/voice in its key: %+v", out.Request)
	}

	// A missing file is an error naming it.
	_, err = r.Render(context.Background(), Request{Text: phrase, OverrideWAV: filepath.Join(dir, "710.wav")})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "710.wav") {
		t.Errorf("missing override: %v", err)
	}
}

func TestRequestErrors(t *testing.T) {
	r := newRenderer(t, Config{})
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{}, ErrNothingToSay.Error()},
		{Request{Text: " \t "}, ErrNothingToSay.Error()},
		{Request{Text: "hi", Repeat: MaxRepeat + 1}, "repeat"},
		{Request{Text: "hi", Repeat: -1}, "repeat"},
		{Request{Text: "hi", Chime: "gong"}, `unknown chime "gong"`},
		{Request{Text: "hi", Chime: "/nonexistent/gong.wav"}, "load /nonexistent/gong.wav: open"},
		{Request{OverrideWAV: "/nonexistent/704.wav"}, "load /nonexistent/704.wav: open"},
		{Request{Text: "hi", Voice: "hal"}, "unknown voice"},
	} {
		_, err := r.Render(context.Background(), tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Render(%+v) = %v, want error containing %q", tc.req, err, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	err := Config{TargetDBFS: -9, CeilingDBFS: 2, LeadIn: -time.Second, Chime: "gong", Voice: "hal", Stretch: 5}.Validate()
	for _, want := range []string{"target_dbfs -9: want -40 to -10", "ceiling_dbfs 2", "lead_in", "chime", "voice", "stretch"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to mention %q", err, want)
		}
	}
	if err := (Config{TargetDBFS: -12, CeilingDBFS: -6}).Validate(); err == nil || !strings.Contains(err.Error(), "at least 10 dB below") {
		t.Errorf("target 6 dB under the ceiling: %v", err)
	}
}

func TestFramesAndHeard(t *testing.T) {
	r := newRenderer(t, Config{})
	out, err := r.Render(context.Background(), Request{Text: phrase})
	if err != nil {
		t.Fatal(err)
	}
	nFrames := len(out.PCM) / codec.FrameSamples
	for _, info := range codec.All() {
		t.Run(string(info.Name), func(t *testing.T) {
			frames, err := out.Frames(info.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != nFrames {
				t.Fatalf("%d frames, want %d", len(frames), nFrames)
			}
			for i, f := range frames {
				if len(f) == 0 || info.Name != codec.Opus && len(f) != 160 {
					t.Fatalf("frame %d: %d bytes", i, len(f))
				}
			}
			again, _ := out.Frames(info.Name)
			if &again[0][0] != &frames[0][0] {
				t.Error("second Frames call re-encoded")
			}
			heard, rate, err := Heard(out, info.Name)
			if err != nil {
				t.Fatal(err)
			}
			wantRate := sampleRate
			if info.Name == codec.PCMU || info.Name == codec.PCMA {
				wantRate = 8000
			}
			if rate != wantRate || len(heard) != len(out.PCM)*rate/sampleRate {
				t.Fatalf("heard %d samples at %d Hz, want %d at %d", len(heard), rate, len(out.PCM)*wantRate/sampleRate, wantRate)
			}
			// What the zone hears is the announcement at about the same
			// level, with the lead-in still (almost) silent.
			if d := Loudness(heard) - Loudness(out.PCM); rate == sampleRate && math.Abs(d) > 1.5 {
				t.Errorf("heard loudness differs by %.1f dB", d)
			}
			lead := heard[:rate/4]
			if p := peakDBFS(lead); p > -60 {
				t.Errorf("lead-in peaks at %.1f dBFS after the codec", p)
			}
		})
	}
	if _, err := out.Frames("g729"); err == nil {
		t.Error("Frames(g729) worked")
	}
}

// TestWriteHeard checks the WAV with ffprobe, an independent reader.
func TestWriteHeard(t *testing.T) {
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Fatalf("ffprobe (Debian ffmpeg) not found: %v", err)
	}
	r := newRenderer(t, Config{Chime: ChimeBeep})
	out, err := r.Render(context.Background(), Request{Text: "Call on 710"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []codec.Name{codec.G722, codec.PCMU} {
		var buf bytes.Buffer
		if err := WriteHeard(&buf, out, c); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), string(c)+".wav")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		probe, err := exec.Command(ffprobe, "-v", "error", "-show_entries",
			"stream=codec_name,sample_rate,channels:format=duration", "-of", "default=nw=1", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe: %v\n%s", err, probe)
		}
		rate := 16000
		if c == codec.PCMU {
			rate = 8000
		}
		got := string(probe)
		for _, want := range []string{"codec_name=pcm_s16le", fmt.Sprintf("sample_rate=%d", rate), "channels=1",
			fmt.Sprintf("duration=%.6f", out.Duration().Seconds())} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: ffprobe says\n%s\nwant %s", c, got, want)
			}
		}
		var dataLen uint32
		_ = binary.Read(bytes.NewReader(buf.Bytes()[40:44]), binary.LittleEndian, &dataLen)
		if int(dataLen) != buf.Len()-44 {
			t.Errorf("data chunk %d bytes, file has %d after the header", dataLen, buf.Len()-44)
		}
	}
}

// TestLoudnessEBUR128 checks the levels with an independent meter: ffmpeg's
// EBU R 128 integrated loudness of what a G.722 zone hears must agree
// across voices (within 1 LU of each other), however loud each voice is
// out of flite.
func TestLoudnessEBUR128(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("ffmpeg (Debian ffmpeg) not found: %v", err)
	}
	var lufs []float64
	for _, v := range tts.Voices() {
		r := newRenderer(t, Config{Voice: v, Chime: ChimeNone})
		out, err := r.Render(context.Background(), Request{Text: "Sales call on 704"})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), v+".wav")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteHeard(f, out, codec.G722); err != nil {
			t.Fatal(err)
		}
		f.Close()
		msg, err := exec.Command(ffmpeg, "-hide_banner", "-nostats", "-i", path, "-af", "ebur128", "-f", "null", "-").CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, msg)
		}
		// The summary ends with "Integrated loudness:\n    I: -19.5 LUFS".
		s := string(msg)
		i := strings.LastIndex(s, "I:")
		var l float64
		if i < 0 {
			t.Fatalf("no integrated loudness in ffmpeg output:\n%s", s)
		}
		if _, err := fmt.Sscanf(s[i:], "I: %f LUFS", &l); err != nil {
			t.Fatalf("parse %q: %v", s[i:min(i+30, len(s))], err)
		}
		t.Logf("%s: %.1f LUFS", v, l)
		lufs = append(lufs, l)
	}
	if spread := slices.Max(lufs) - slices.Min(lufs); spread > 1 {
		t.Errorf("voices differ by %.1f LU after normalisation: %v", spread, lufs)
	}
}
