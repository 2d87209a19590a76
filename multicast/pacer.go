package multicast

import (
	"log/slog"

	"github.com/parkpage/parkpage/internal/pacer"
)

// Pages go out through the appliance's one sending loop, internal/pacer,
// which hold music and call legs share. These names keep the multicast
// API its users (gateway, wiring, tests) know.
type (
	// Pacer is the sending loop; see pacer.Pacer.
	Pacer = pacer.Pacer
	// Source is one stream's packets with their due times; polycom.Session
	// and rtp.Stream implement it.
	Source = pacer.Source
	// Sink is where a stream's packets go; Sender implements it.
	Sink = pacer.Sink
	// Stats describes how a stream went.
	Stats = pacer.Stats
	// Result is the outcome of one Play.
	Result = pacer.Result
)

// ErrPacerClosed ends streams still playing when the Pacer stops, and any
// Play after that.
var ErrPacerClosed = pacer.ErrClosed

// NewPacer returns a sending loop that logs to log (nil: discard).
func NewPacer(log *slog.Logger, opts ...pacer.Option) *Pacer { return pacer.New(log, opts...) }
