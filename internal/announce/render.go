package announce

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/wav"
	"github.com/parkpage/parkpage/internal/tts"
)

const sampleRate = codec.SampleRate

// MaxRepeat bounds Request.Repeat.
const MaxRepeat = 5

// Bounds of the limiter makeup gain search (see makeup).
const (
	maxMakeup   = 6
	maxMakeupDB = 12.0
)

// Defaults for the zero values of Config.
const (
	DefaultTargetDBFS  = -18.0
	DefaultCeilingDBFS = -1.0
	DefaultLeadIn      = 300 * time.Millisecond
	DefaultChimeGap    = 250 * time.Millisecond
	DefaultRepeatGap   = time.Second
	DefaultTail        = 200 * time.Millisecond
)

// Speaker synthesises speech as 16 kHz mono PCM. *tts.Engine implements it.
type Speaker interface {
	Synthesize(ctx context.Context, text string) ([]int16, error)
}

// Config sets how announcements sound. The zero value is usable: every
// zero field takes the default named in its comment.
type Config struct {
	Voice       string        // TTS voice when a request names none; "" = tts.DefaultVoice (slt)
	Chime       string        // chime when a request names none: built-in name or WAV path; "" = DefaultChime
	TargetDBFS  float64       // active speech and chime loudness, dBFS (see Loudness); 0 = -18
	CeilingDBFS float64       // peak limiter ceiling, dBFS; 0 = -1
	LeadIn      time.Duration // silence before the first sound, so phones do not swallow it; 0 = 300 ms
	ChimeGap    time.Duration // silence between chime and speech; 0 = 250 ms
	RepeatGap   time.Duration // silence between repeats of the phrase; 0 = 1 s
	Tail        time.Duration // silence after the last word, so jitter buffers drain; 0 = 200 ms
	Stretch     float64       // TTS duration stretch (1.2 = 20% slower); 0 = 1

	// Paging is the paging speech of requests that set none (see Paging);
	// the zero value speaks text as the voice says it.
	Paging Paging
	// PromptDir adds recorded words to voice "prompts" (see
	// NewPromptSpeaker); "" = the embedded prompts only.
	PromptDir string
	// PromptFallback is the TTS voice of voice "prompts" for the words no
	// recording covers; "" = tts.DefaultVoice.
	PromptFallback string

	// LoadWAV reads a WAV file (chime or recorded override) as 16 kHz mono
	// PCM. Nil means wav.LoadFile16kMono (any rate, format and channel
	// count the wav package reads).
	LoadWAV func(path string) ([]int16, error)
	// NewSpeaker returns the synthesiser for a voice. Nil means tts.New
	// with Stretch; a custom NewSpeaker handles rate itself.
	NewSpeaker func(voice string) (Speaker, error)

	// newSpeakerAt is NewSpeaker with a duration stretch (Paging.Rate);
	// a custom NewSpeaker ignores the stretch.
	newSpeakerAt func(voice string, stretch float64) (Speaker, error)
}

func (c Config) withDefaults() Config {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Voice == "" {
		c.Voice = tts.DefaultVoice
	}
	if c.Chime == "" {
		c.Chime = DefaultChime
	}
	def(&c.TargetDBFS, DefaultTargetDBFS)
	def(&c.CeilingDBFS, DefaultCeilingDBFS)
	def(&c.Stretch, 1)
	defDur(&c.LeadIn, DefaultLeadIn)
	defDur(&c.ChimeGap, DefaultChimeGap)
	defDur(&c.RepeatGap, DefaultRepeatGap)
	defDur(&c.Tail, DefaultTail)
	if c.LoadWAV == nil {
		c.LoadWAV = wav.LoadFile16kMono
	}
	if c.PromptFallback == "" {
		c.PromptFallback = tts.DefaultVoice
	}
	if c.NewSpeaker == nil {
		load, dir, fallback := c.LoadWAV, c.PromptDir, c.PromptFallback
		c.newSpeakerAt = func(voice string, stretch float64) (Speaker, error) {
			if voice == VoicePrompts {
				fb, err := tts.New(fallback, tts.WithStretch(stretch))
				if err != nil {
					return nil, fmt.Errorf("prompts fallback: %w", err)
				}
				return NewPromptSpeaker(fb, dir, load)
			}
			return tts.New(voice, tts.WithStretch(stretch))
		}
		stretch := c.Stretch
		c.NewSpeaker = func(voice string) (Speaker, error) { return c.newSpeakerAt(voice, stretch) }
	} else if c.newSpeakerAt == nil {
		ns := c.NewSpeaker
		c.newSpeakerAt = func(voice string, _ float64) (Speaker, error) { return ns(voice) }
	}
	return c
}

// Validate checks the config after defaults, reporting every problem.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if !(c.TargetDBFS >= -40 && c.TargetDBFS <= -10) {
		errs = append(errs, fmt.Errorf("target_dbfs %v: want -40 to -10", c.TargetDBFS))
	}
	if !(c.CeilingDBFS >= -12 && c.CeilingDBFS <= 0) {
		errs = append(errs, fmt.Errorf("ceiling_dbfs %v: want -12 to 0", c.CeilingDBFS))
	}
	// Speech keeps a crest factor of about 10 dB even after limiting: a
	// target closer to the ceiling cannot be met.
	if c.TargetDBFS > c.CeilingDBFS-10 {
		errs = append(errs, fmt.Errorf("target_dbfs %v: want at least 10 dB below ceiling_dbfs %v", c.TargetDBFS, c.CeilingDBFS))
	}
	if !(c.Stretch >= 0.5 && c.Stretch <= 2) {
		errs = append(errs, fmt.Errorf("stretch %v: want 0.5 to 2", c.Stretch))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"lead_in", c.LeadIn}, {"chime_gap", c.ChimeGap}, {"repeat_gap", c.RepeatGap}, {"tail", c.Tail}} {
		if d.v < 0 || d.v > 5*time.Second {
			errs = append(errs, fmt.Errorf("%s %v: want 0 to 5s", d.name, d.v))
		}
	}
	if err := CheckChime(c.Chime); err != nil {
		errs = append(errs, fmt.Errorf("chime: %w", err))
	}
	if _, err := c.NewSpeaker(c.Voice); err != nil {
		errs = append(errs, fmt.Errorf("voice: %w", err))
	}
	if err := c.Paging.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("paging: %w", err))
	}
	return errors.Join(errs...)
}

// Errors returned (wrapped) by the renderer.
var (
	// ErrNothingToSay means the request has neither text nor an override.
	ErrNothingToSay = errors.New("no text and no override recording")
)

// Request is one announcement. Requests that resolve to the same values
// (after defaults and text normalisation) sound the same, and the Cache
// treats them as one.
type Request struct {
	Text        string // what to say; digit runs are read digit by digit (NormalizeText)
	Voice       string // TTS voice; "" = Config.Voice
	Chime       string // built-in chime name, WAV path, or "none"; "" = Config.Chime
	Repeat      int    // times the phrase is spoken, 1 to MaxRepeat; 0 = 1
	OverrideWAV string // recording spoken instead of Text (a per-slot prompt); "" = use TTS
	// LabelWAV is a recorded label spoken where Text has LabelMark (see
	// splice.go); "" = none.
	LabelWAV string
	Paging   Paging // paging speech; zero = Config.Paging, Paging{Off: true} = none
}

// Renderer turns Requests into audio. It is safe for concurrent use.
type Renderer struct {
	cfg     Config
	mu      sync.Mutex
	voices  map[speakerKey]Speaker
	renders atomic.Int64
}

// NewRenderer validates cfg and returns a Renderer.
func NewRenderer(cfg Config) (*Renderer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("announce config: %w", err)
	}
	return &Renderer{cfg: cfg.withDefaults(), voices: map[speakerKey]Speaker{}}, nil
}

// Renders returns how many announcements the renderer has rendered.
func (r *Renderer) Renders() int64 { return r.renders.Load() }

// Resolve fills in a request's defaults and normalises its text, giving
// the canonical form the Cache keys on. It rejects what Render would.
func (r *Renderer) Resolve(req Request) (Request, error) {
	req.Text = NormalizeText(req.Text)
	if req.Voice == "" {
		req.Voice = r.cfg.Voice
	}
	req.Voice = strings.ToLower(req.Voice)
	if req.Chime == "" {
		req.Chime = r.cfg.Chime
	}
	if req.Repeat == 0 {
		req.Repeat = 1
	}
	if req.Paging == (Paging{}) {
		req.Paging = r.cfg.Paging
	}
	if !req.Paging.active() {
		req.Paging = Paging{Off: true}
	}
	if req.OverrideWAV != "" {
		// The recording replaces speech: text, voice and paging speech no
		// longer matter, so drop them from the key.
		req.Text, req.Voice, req.Paging, req.LabelWAV = "", "", Paging{Off: true}, ""
	}
	if err := req.Paging.Validate(); err != nil {
		return req, err
	}
	switch {
	case req.Repeat < 1 || req.Repeat > MaxRepeat:
		return req, fmt.Errorf("repeat %d: want 1 to %d", req.Repeat, MaxRepeat)
	case req.Text == "" && req.OverrideWAV == "":
		return req, ErrNothingToSay
	}
	if err := CheckChime(req.Chime); err != nil {
		return req, err
	}
	return req, nil
}

type speakerKey struct {
	voice   string
	stretch float64
}

// speaker returns the synthesiser for voice at a duration stretch (0 =
// Config.Stretch), made once and kept.
func (r *Renderer) speaker(voice string, stretch float64) (Speaker, error) {
	if stretch == 0 {
		stretch = r.cfg.Stretch
	}
	k := speakerKey{voice, stretch}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.voices[k]; s != nil {
		return s, nil
	}
	var s Speaker
	var err error
	if stretch == r.cfg.Stretch {
		s, err = r.cfg.NewSpeaker(voice)
	} else {
		s, err = r.cfg.newSpeakerAt(voice, stretch)
	}
	if err != nil {
		return nil, err
	}
	r.voices[k] = s
	return s, nil
}

// Speaker returns the renderer's synthesiser for voice ("" = Config.Voice)
// at its configured rate: for callers that speak outside announcements.
func (r *Renderer) Speaker(voice string) (Speaker, error) {
	if voice == "" {
		voice = r.cfg.Voice
	}
	return r.speaker(strings.ToLower(voice), 0)
}

// Render produces the audio for req: lead-in silence, chime, the phrase
// Repeat times, tail silence; chime and phrase normalised to the target
// loudness, the whole peak-limited to the ceiling, padded to whole 20 ms
// frames. It does not cache: see Cache.
func (r *Renderer) Render(ctx context.Context, req Request) (*Rendered, error) {
	req, err := r.Resolve(req)
	if err != nil {
		return nil, fmt.Errorf("announcement %q: %w", req.Text, err)
	}
	start := time.Now()
	out, err := r.render(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("announcement %q: %w", describe(req), err)
	}
	r.renders.Add(1)
	out.RenderTime = time.Since(start)
	return out, nil
}

func describe(req Request) string {
	if req.OverrideWAV != "" {
		return req.OverrideWAV
	}
	return req.Text
}

func (r *Renderer) render(ctx context.Context, req Request) (*Rendered, error) {
	var speech []int16
	if req.OverrideWAV != "" {
		pcm, err := r.cfg.LoadWAV(req.OverrideWAV)
		if err != nil {
			return nil, fmt.Errorf("override recording: %w", err)
		}
		speech = pcm
	} else if req.LabelWAV != "" {
		pcm, err := r.splice(ctx, req)
		if err != nil {
			return nil, err
		}
		speech = pcm
	} else {
		rate := req.Paging.Rate
		if req.Paging.Off {
			rate = 0
		}
		sp, err := r.speaker(req.Voice, rate)
		if err != nil {
			return nil, err
		}
		if req.Paging.active() {
			speech, err = speakPaging(ctx, sp, req.Text, req.Paging)
		} else {
			speech, err = sp.Synthesize(ctx, req.Text)
		}
		if err != nil {
			return nil, err
		}
	}
	speech = trimSilence(speech)
	if len(speech) == 0 {
		return nil, errors.New("speech is silent")
	}

	var chime []int16
	var err error
	if IsChimeFile(req.Chime) {
		if chime, err = r.cfg.LoadWAV(req.Chime); err != nil {
			return nil, fmt.Errorf("chime: %w", err)
		}
		chime = trimSilence(chime)
	} else if chime, err = builtinChime(req.Chime); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	samples := func(d time.Duration) int { return int(d * sampleRate / time.Second) }
	speechN := normalize(speech, r.cfg.TargetDBFS)
	mix := make([]float64, samples(r.cfg.LeadIn), samples(r.cfg.LeadIn)+len(chime)+len(speech)*req.Repeat+samples(r.cfg.RepeatGap)*req.Repeat+samples(r.cfg.ChimeGap+r.cfg.Tail)+codec.FrameSamples)
	if len(chime) > 0 {
		mix = append(mix, normalize(chime, r.cfg.TargetDBFS)...)
		mix = append(mix, make([]float64, samples(r.cfg.ChimeGap))...)
	}
	out := &Rendered{Request: req, SpeechStart: len(mix)}
	for i := range req.Repeat {
		if i > 0 {
			mix = append(mix, make([]float64, samples(r.cfg.RepeatGap))...)
		}
		out.speech = append(out.speech, [2]int{len(mix), len(mix) + len(speechN)})
		mix = append(mix, speechN...)
	}
	mix = append(mix, make([]float64, samples(r.cfg.Tail))...)
	if rem := len(mix) % codec.FrameSamples; rem != 0 {
		mix = append(mix, make([]float64, codec.FrameSamples-rem)...)
	}
	out.PCM = r.makeup(mix, out.speech[0])
	return out, nil
}

// makeup limits mix to the ceiling. Near the ceiling the limiter takes
// loudness away (speech peaks sit 10-15 dB above its RMS), so makeup then
// raises the gain before the limiter until the phrase in span is back
// within 0.25 dB of the target: a secant search on gain versus loudness,
// at most maxMakeup passes and maxMakeupDB of gain. Only ever upwards: the
// limiter only lowers.
func (r *Renderer) makeup(mix []float64, span [2]int) []int16 {
	pcm := limit(mix, r.cfg.CeilingDBFS)
	level := Loudness(pcm[span[0]:span[1]])
	gain, prevGain, prevLevel := 0.0, 0.0, math.Inf(-1)
	scaled := make([]float64, len(mix))
	for range maxMakeup {
		short := r.cfg.TargetDBFS - level
		if short < 0.25 || gain >= maxMakeupDB {
			break
		}
		slope := 1.0 // dB out per dB in; 1 where the limiter is idle
		if !math.IsInf(prevLevel, -1) && gain > prevGain {
			slope = min(max((level-prevLevel)/(gain-prevGain), 0.1), 1)
		}
		prevGain, prevLevel = gain, level
		gain = min(gain+short/slope, maxMakeupDB)
		g := dbToLin(gain)
		for i, v := range mix {
			scaled[i] = v * g
		}
		pcm = limit(scaled, r.cfg.CeilingDBFS)
		level = Loudness(pcm[span[0]:span[1]])
	}
	return pcm
}

// trimSilence cuts leading and trailing near-silence (45 dB below the
// peak), keeping 10 ms around the sound, so lead-in and gaps are exactly
// what the config says whatever padding the synthesiser or a recording
// brings.
func trimSilence(pcm []int16) []int16 {
	var peak int
	for _, v := range pcm {
		peak = max(peak, abs(int(v)))
	}
	thr := max(int(float64(peak)*dbToLin(-45)), 8)
	first, last := -1, -1
	for i, v := range pcm {
		if abs(int(v)) >= thr {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil
	}
	const margin = sampleRate / 100
	return pcm[max(first-margin, 0):min(last+margin+1, len(pcm))]
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// Rendered is a finished announcement. Its PCM and frames are shared by
// every user of a cached announcement: read, never modify.
type Rendered struct {
	Request     Request       // the resolved request
	PCM         []int16       // 16 kHz mono, a whole number of 20 ms frames
	SpeechStart int           // sample index where the (first) phrase starts
	RenderTime  time.Duration // how long rendering took

	speech [][2]int // [start, end) of each spoken phrase

	mu  sync.Mutex
	enc map[codec.Name]*encoded
}

type encoded struct {
	once   sync.Once
	frames [][]byte
	err    error
}

// Duration is the announcement's playing time.
func (r *Rendered) Duration() time.Duration {
	return time.Duration(len(r.PCM)) * time.Second / sampleRate
}

// Frames returns the announcement as 20 ms payloads of codec c, encoded on
// first use with a fresh encoder (as at the start of a stream) and cached.
func (r *Rendered) Frames(c codec.Name) ([][]byte, error) {
	info, err := codec.Lookup(string(c))
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.enc == nil {
		r.enc = map[codec.Name]*encoded{}
	}
	e := r.enc[info.Name]
	if e == nil {
		e = &encoded{}
		r.enc[info.Name] = e
	}
	r.mu.Unlock()
	e.once.Do(func() { e.frames, e.err = encodeFrames(info.Name, r.PCM) })
	return e.frames, e.err
}

func encodeFrames(c codec.Name, pcm []int16) ([][]byte, error) {
	enc, err := codec.NewEncoder(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", c, err)
	}
	n := len(pcm) / codec.FrameSamples
	frames := make([][]byte, 0, n)
	// One backing array for all frames; Opus frames vary in size, so grow
	// it as needed (earlier frames keep pointing at the old array).
	buf := make([]byte, 0, n*160)
	for i := range n {
		start := len(buf)
		buf, err = enc.Encode(buf, pcm[i*codec.FrameSamples:(i+1)*codec.FrameSamples])
		if err != nil {
			return nil, fmt.Errorf("encode %s frame %d: %w", c, i, err)
		}
		frames = append(frames, buf[start:len(buf):len(buf)])
	}
	return frames, nil
}
