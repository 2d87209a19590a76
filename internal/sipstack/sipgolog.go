package sipstack

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// tamedHandler is sipgo's log as parkpage writes it: long string values
// (sipgo quotes whole unparseable payloads, e.g. a TCP stream's) are
// truncated, and each message is logged at most once per badLogEvery
// with a count of the ones left out, so a flood cannot flood the log.
type tamedHandler struct {
	slog.Handler
	st *tameState
}

type tameState struct {
	mu   sync.Mutex
	last map[string]time.Time
	left map[string]int
}

func tame(h slog.Handler) slog.Handler {
	return tamedHandler{h, &tameState{last: map[string]time.Time{}, left: map[string]int{}}}
}

func (h tamedHandler) Handle(ctx context.Context, r slog.Record) error {
	h.st.mu.Lock()
	if t, ok := h.st.last[r.Message]; ok && r.Time.Sub(t) < badLogEvery {
		h.st.left[r.Message]++
		h.st.mu.Unlock()
		return nil
	}
	if len(h.st.last) > 256 { // sipgo's messages are constants; bound it anyway
		clear(h.st.last)
	}
	h.st.last[r.Message] = r.Time
	left := h.st.left[r.Message]
	delete(h.st.left, r.Message)
	h.st.mu.Unlock()
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(truncate(a.Value.String()))
		} else if a.Value.Kind() == slog.KindAny {
			if err, ok := a.Value.Any().(error); ok {
				a.Value = slog.StringValue(truncate(err.Error()))
			}
		}
		out.AddAttrs(a)
		return true
	})
	if left > 0 {
		out.AddAttrs(slog.Int("not_logged_since", left))
	}
	return h.Handler.Handle(ctx, out)
}

func (h tamedHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return tamedHandler{h.Handler.WithAttrs(a), h.st}
}

func (h tamedHandler) WithGroup(n string) slog.Handler {
	return tamedHandler{h.Handler.WithGroup(n), h.st}
}
