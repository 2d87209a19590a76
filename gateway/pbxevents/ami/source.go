package ami

import (
	"log/slog"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
)

// Source makes the AMI client for config section external.ami as a
// pbxevents.Source (pbxevents.SourcesOptions.AMI).
func Source(cfg config.AMI, sink pbxevents.Sink, mapper *pbxevents.SlotMapper, log *slog.Logger) (pbxevents.Source, error) {
	return New(cfg, Options{Sink: sink, Mapper: mapper, Logger: log})
}
