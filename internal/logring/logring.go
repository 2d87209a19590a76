// Package logring keeps the appliance's most recent log records in memory
// for the console's Status page: a slog.Handler that passes every record
// on to the real handler and keeps a copy in a fixed-size ring. It imports
// nothing of parkpage's.
package logring

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Entry is one kept log record.
type Entry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	// Attrs are the record's attributes as key=value text.
	Attrs string `json:"attrs,omitempty"`
}

// Ring holds the last N entries.
type Ring struct {
	mu    sync.Mutex
	buf   []Entry
	next  int
	full  bool
	level slog.Leveler
}

// New returns a ring keeping size entries at or above min (nil: Info).
func New(size int, min slog.Leveler) *Ring {
	if min == nil {
		min = slog.LevelInfo
	}
	return &Ring{buf: make([]Entry, max(1, size)), level: min}
}

func (r *Ring) add(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// Last returns up to n entries, newest first.
func (r *Ring) Last(n int) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := r.next
	if r.full {
		size = len(r.buf)
	}
	n = min(n, size)
	out := make([]Entry, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// Handler returns a handler that keeps records in r and passes them to
// next.
func (r *Ring) Handler(next slog.Handler) slog.Handler { return &handler{next: next, ring: r} }

type handler struct {
	next   slog.Handler
	ring   *Ring
	prefix string // attrs from WithAttrs, as text
	group  string // WithGroup prefix for keys ("a.b.")
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l) || l >= h.ring.level.Level()
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= h.ring.level.Level() {
		var b strings.Builder
		b.WriteString(h.prefix)
		rec.Attrs(func(a slog.Attr) bool {
			writeAttr(&b, h.group, a)
			return true
		})
		h.ring.add(Entry{Time: rec.Time, Level: rec.Level.String(), Message: rec.Message, Attrs: strings.TrimSpace(b.String())})
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, x := range a.Value.Group() {
			writeAttr(b, g, x)
		}
		return
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	fmt.Fprintf(b, " %s%s=%s", group, a.Key, v)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range as {
		writeAttr(&b, h.group, a)
	}
	return &handler{next: h.next.WithAttrs(as), ring: h.ring, prefix: b.String(), group: h.group}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{next: h.next.WithGroup(name), ring: h.ring, prefix: h.prefix, group: h.group + name + "."}
}
