package labels

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
)

// Kind is what a recording replaces in a slot's announcement.
type Kind string

const (
	// KindLabel is spoken in place of {label} in the slot's template.
	KindLabel Kind = "label"
	// KindAnnouncement is played instead of the whole spoken template.
	KindAnnouncement Kind = "announcement"
)

// ParseKind reads "label" or "announcement".
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case KindLabel, KindAnnouncement:
		return Kind(s), nil
	}
	return "", fmt.Errorf("%q is not label or announcement", s)
}

// Limits bound a recording's voiced length, after trimming.
type Limits struct{ Min, Max time.Duration }

// LimitsFor returns the length limits of a kind: a label is a word or
// two, an announcement a sentence.
func LimitsFor(k Kind) Limits {
	if k == KindAnnouncement {
		return Limits{Min: 800 * time.Millisecond, Max: 15 * time.Second}
	}
	return Limits{Min: 250 * time.Millisecond, Max: 4 * time.Second}
}

// Problem is why a recording was refused, in words for the API and in
// words a phone can speak.
type Problem struct {
	Code   string // silent, clipped, too_short, too_long
	Msg    string
	Spoken string
}

func (p *Problem) Error() string { return p.Msg }

// Problem codes.
var (
	ErrSilent   = &Problem{Code: "silent", Msg: "the recording is silent", Spoken: "Nothing was heard."}
	ErrClipped  = &Problem{Code: "clipped", Msg: "the recording is clipped (too loud)", Spoken: "That was too loud. Please hold the handset a little further away."}
	ErrTooShort = &Problem{Code: "too_short", Msg: "the recording is too short", Spoken: "That was too short."}
	ErrTooLong  = &Problem{Code: "too_long", Msg: "the recording is too long", Spoken: "That was too long."}
)

// AsProblem returns the Problem in err's chain, if any.
func AsProblem(err error) (*Problem, bool) {
	var p *Problem
	ok := errors.As(err, &p)
	return p, ok
}

const (
	block = codec.SampleRate / 50 // 20 ms
	// silentDBFS is the active loudness under which a recording is taken
	// for silence (line noise of a phone sits around -60 to -70 dBFS).
	silentDBFS = -52.0
	// clipLevel and clipShare: a recording with more than clipShare of
	// its voiced samples at or past clipLevel was distorted at the source;
	// levelling cannot undo that.
	clipLevel = 32000
	clipShare = 0.005
	// gateBelow: blocks this far under the recording's active loudness are
	// pause or noise when trimming.
	gateBelow = 25.0
	// margin kept around the voice when trimming, so consonants at the
	// edges survive.
	margin = 60 * time.Millisecond
	fade   = 10 * time.Millisecond
	// minVoice is the least voiced time that is not taken for silence.
	minVoice = 100 * time.Millisecond
)

// Prepare checks a recording (16 kHz mono PCM) and returns it trimmed to
// the voice, levelled like rendered announcements (targetDBFS, ceiling -1
// dBFS; 0 = announce.DefaultTargetDBFS) with short fades. A silent,
// clipped, too short or too long recording is refused with a *Problem.
func Prepare(pcm []int16, k Kind, targetDBFS float64) ([]int16, error) {
	lim := LimitsFor(k)
	loud := announce.Loudness(pcm)
	if math.IsInf(loud, -1) || loud < silentDBFS {
		return nil, ErrSilent
	}
	first, last, blocks := voiced(pcm, max(loud-gateBelow, silentDBFS))
	// A click or two (a handset knocked, a codec's start-up burst) in
	// silence is not a voice.
	if blocks*block < samples(minVoice) {
		return nil, ErrSilent
	}
	voice := pcm[first:last]
	clipped := 0
	for _, v := range voice {
		if v >= clipLevel || v <= -clipLevel {
			clipped++
		}
	}
	if float64(clipped) > clipShare*float64(len(voice)) {
		return nil, ErrClipped
	}
	d := time.Duration(len(voice)) * time.Second / codec.SampleRate
	if d < lim.Min {
		return nil, fmt.Errorf("%w: %.2f s of voice, at least %.2f s needed", ErrTooShort, d.Seconds(), lim.Min.Seconds())
	}
	if d > lim.Max {
		return nil, fmt.Errorf("%w: %.1f s of voice, at most %.0f s", ErrTooLong, d.Seconds(), lim.Max.Seconds())
	}
	m := samples(margin)
	out := append([]int16(nil), pcm[max(first-m, 0):min(last+m, len(pcm))]...)
	removeDC(out)
	out = announce.Level(out, targetDBFS, 0)
	f := min(samples(fade), len(out)/2)
	for i := range f {
		g := float64(i) / float64(f)
		out[i] = int16(float64(out[i]) * g)
		out[len(out)-1-i] = int16(float64(out[len(out)-1-i]) * g)
	}
	return out, nil
}

func samples(d time.Duration) int { return int(d * codec.SampleRate / time.Second) }

// voiced returns the sample span from the first to the end of the last
// 20 ms block louder than gateDBFS, and how many blocks are; first is -1
// when there is none.
func voiced(pcm []int16, gateDBFS float64) (first, last, blocks int) {
	gate := math.Pow(10, gateDBFS/10) * 32768 * 32768
	first, last = -1, -1
	for i := 0; i < len(pcm); i += block {
		b := pcm[i:min(i+block, len(pcm))]
		var p float64
		for _, v := range b {
			p += float64(v) * float64(v)
		}
		if p/float64(len(b)) > gate {
			if first < 0 {
				first = i
			}
			last = i + len(b)
			blocks++
		}
	}
	return first, last, blocks
}

// removeDC subtracts the mean: some phones' ADCs carry an offset that the
// limiter would otherwise count as level.
func removeDC(pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	var sum float64
	for _, v := range pcm {
		sum += float64(v)
	}
	mean := sum / float64(len(pcm))
	for i, v := range pcm {
		pcm[i] = int16(max(min(math.Round(float64(v)-mean), 32767), -32768))
	}
}
