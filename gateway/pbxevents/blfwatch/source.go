package blfwatch

import (
	"context"
	"log/slog"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
)

// Source makes the BLF watcher for config section external.blf, on its
// own Endpoint at cfg.Listen, as a pbxevents.Source
// (pbxevents.SourcesOptions.BLF). Its Run closes the endpoint when the
// watcher stops.
func Source(cfg config.BLFWatch, sink pbxevents.Sink, mapper *pbxevents.SlotMapper, log *slog.Logger) (pbxevents.Source, error) {
	user := cfg.Username
	if user == "" {
		user = "parkpage"
	}
	ep, err := Listen(cfg.Listen, user, log)
	if err != nil {
		return nil, err
	}
	w, err := New(cfg, Options{Client: ep.Client, Contact: ep.Contact, Sink: sink, Mapper: mapper, Logger: log})
	if err != nil {
		ep.Close()
		return nil, err
	}
	ep.OnNotify(w.OnNotify)
	return &source{ep: ep, w: w}, nil
}

type source struct {
	ep *Endpoint
	w  *Watcher
}

func (s *source) Run(ctx context.Context) error {
	defer s.ep.Close()
	return s.w.Run(ctx)
}
