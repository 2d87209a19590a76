package blfwatch

import (
	"context"
	"log/slog"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// Stack is what the watcher needs of the appliance's SIP stack
// (*sipstack.Stack): it sends the SUBSCRIBEs from the SIP port, names the
// Contact the PBX sends NOTIFYs to, and hands over NOTIFYs that match no
// call.
type Stack interface {
	Requester
	Contact(user string) (sip.Uri, error)
	HandleNotify(h sipstack.NotifyHandler) (remove func())
}

// Source returns the maker of the BLF watcher for config section
// external.blf, subscribing through stack, as a pbxevents.Source
// (pbxevents.SourcesOptions.BLF). Its Run stops taking NOTIFYs when the
// watcher stops.
func Source(stack Stack) func(cfg config.BLFWatch, sink pbxevents.Sink, mapper *pbxevents.SlotMapper, log *slog.Logger) (pbxevents.Source, error) {
	return func(cfg config.BLFWatch, sink pbxevents.Sink, mapper *pbxevents.SlotMapper, log *slog.Logger) (pbxevents.Source, error) {
		user := cfg.Username
		if user == "" {
			user = "parkpage"
		}
		if cfg.Listen != "" {
			log.Warn("external.blf.listen is no longer used: the PBX's NOTIFYs arrive on the SIP port (sip.listen)", "listen", cfg.Listen)
		}
		contact, err := stack.Contact(user)
		if err != nil {
			return nil, err
		}
		w, err := New(cfg, Options{SIP: stack, Contact: contact, Sink: sink, Mapper: mapper, Logger: log})
		if err != nil {
			return nil, err
		}
		return &source{stack: stack, w: w}, nil
	}
}

type source struct {
	stack Stack
	w     *Watcher
}

func (s *source) Run(ctx context.Context) error {
	remove := s.stack.HandleNotify(s.w.HandleNotify)
	defer remove()
	return s.w.Run(ctx)
}
