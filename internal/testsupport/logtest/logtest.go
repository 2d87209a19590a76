// Package logtest is a slog.Handler for tests that keeps every record, so
// a test can count what a part logged (a warning once per outage, not once
// per retry). Buffer keeps a part's text log (or a process's output) for
// the test to read, and Stderr logs to the test's output. Only tests
// import it.
package logtest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// Recorder keeps log records; its zero value is ready. Attributes added
// with WithAttrs and groups are not kept.
type Recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

// Logger returns a logger writing to r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

// Enabled reports true: every level is kept.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps rec.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}

// WithAttrs returns r itself.
func (r *Recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup returns r itself.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Count returns how many records at level or above have a message
// starting with msg and, when errIs is not nil, an "err" attribute
// matching it (errors.Is).
func (r *Recorder) Count(level slog.Level, msg string, errIs error) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level < level || !strings.HasPrefix(rec.Message, msg) {
			continue
		}
		ok := errIs == nil
		rec.Attrs(func(a slog.Attr) bool {
			if e, isErr := a.Value.Any().(error); isErr && a.Key == "err" && errors.Is(e, errIs) {
				ok = true
			}
			return true
		})
		if ok {
			n++
		}
	}
	return n
}

// Stderr is a text logger to stderr at level and above: for the parts a
// test starts whose warnings should show in its output.
func Stderr(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
