//go:build !cgo

package tts

import (
	"context"
	"fmt"
)

// Voices returns nil: no voices are linked into a build without cgo.
func Voices() []string { return nil }

// New always fails with ErrUnavailable in a build without cgo.
func New(voice string, opts ...Option) (*Engine, error) {
	return nil, fmt.Errorf("voice %q: %w", voice, ErrUnavailable)
}

// Engine is never constructed in a build without cgo.
type Engine struct {
	voice   string
	stretch float64
}

// Voice returns the engine's voice name.
func (e *Engine) Voice() string { return e.voice }

// Synthesize always fails with ErrUnavailable in a build without cgo.
func (e *Engine) Synthesize(ctx context.Context, text string) ([]int16, error) {
	return nil, fmt.Errorf("voice %q: %w", e.voice, ErrUnavailable)
}

// ReleaseMemory does nothing in a build without cgo (no C heap).
func ReleaseMemory() {}
