package tts

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// SampleRate is the rate of the PCM Synthesize returns, in Hz.
const SampleRate = 16000

// DefaultVoice is the voice New uses when given "".
const DefaultVoice = "slt"

// MaxTextLen bounds the text of one synthesis in bytes. Announcements are
// a sentence or two; the bound keeps one request from holding the
// process-wide synthesis lock for seconds.
const MaxTextLen = 1000

// Errors returned by New and Synthesize (wrapped).
var (
	// ErrUnknownVoice means the voice name is not one of Voices().
	ErrUnknownVoice = errors.New("unknown voice")
	// ErrEmptyText means there was nothing to speak.
	ErrEmptyText = errors.New("empty text")
	// ErrTextTooLong means the text exceeds MaxTextLen.
	ErrTextTooLong = errors.New("text too long")
	// ErrUnavailable means the binary was built without cgo, so flite is
	// not linked in.
	ErrUnavailable = errors.New("text-to-speech not built in (built without cgo)")
)

// Option configures an Engine.
type Option func(*Engine) error

// WithStretch scales speech duration: 1 is flite's normal rate, 1.2 is 20%
// slower (often clearer over ceiling speakers). Allowed range 0.5 to 2.
func WithStretch(f float64) Option {
	return func(e *Engine) error {
		if !(f >= 0.5 && f <= 2) {
			return fmt.Errorf("duration stretch %v out of range 0.5-2", f)
		}
		e.stretch = f
		return nil
	}
}

// cleanText turns control characters (NUL would truncate the C string)
// into spaces and checks the text is speakable.
func cleanText(s string) (string, error) {
	if len(s) > MaxTextLen {
		return "", fmt.Errorf("%w: %d bytes, max %d", ErrTextTooLong, len(s), MaxTextLen)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
	if strings.TrimSpace(s) == "" {
		return "", ErrEmptyText
	}
	return s, nil
}
