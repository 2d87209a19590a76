package multicast

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/multicast/polycom"
	"github.com/parkpage/parkpage/multicast/rtp"
)

// LiveFeed supplies a live page's frames (a phone's page, relayed as it is
// spoken) as the Pacer sends them. The Pacer calls it from its loop thread
// only, when each frame is due: Frame must not block, and should do no more
// than read a buffer and encode one frame.
type LiveFeed interface {
	// Frame appends the payload of the next 20 ms frame in the output's
	// codec to dst.
	Frame(dst []byte) []byte
	// Over reports whether the page has ended: no frame follows.
	Over() bool
}

// PlayLive plays a live page: Alerts, then one Transmit per frame interval
// read from feed until it is over, then Ends. It returns when the page is
// over; if ctx is cancelled the End burst still goes out and the error is
// ctx's.
func (o *PolycomOutput) PlayLive(ctx context.Context, feed LiveFeed) (Stats, error) {
	return o.PlayLiveAt(ctx, feed, time.Time{})
}

// PlayLiveAt is PlayLive with the first Alert at at (zero: at once); feed
// is read from the first Transmit on.
func (o *PolycomOutput) PlayLiveAt(ctx context.Context, feed LiveFeed, at time.Time) (Stats, error) {
	s, err := polycom.NewLiveSession(o.opts.config(rand.Uint32()), feed)
	if err != nil {
		return Stats{}, fmt.Errorf("polycom output: %w", err)
	}
	r := <-o.pacer.PlayAt(ctx, o.out, s, pacer.At(at))
	return r.Stats, r.Err
}

// PlayLive plays a live page as a new RTP stream, one packet per 20 ms
// read from feed until it is over or ctx is cancelled.
func (o *RTPOutput) PlayLive(ctx context.Context, feed LiveFeed) (Stats, error) {
	return o.PlayLiveAt(ctx, feed, time.Time{})
}

// PlayLiveAt is PlayLive with the first packet at at (zero: at once).
func (o *RTPOutput) PlayLiveAt(ctx context.Context, feed LiveFeed, at time.Time) (Stats, error) {
	s, err := rtp.NewLiveStream(rtp.NewConfig(o.info), feed)
	if err != nil {
		return Stats{}, fmt.Errorf("rtp output: %w", err)
	}
	r := <-o.pacer.PlayAt(ctx, o.out, s, pacer.At(at))
	return r.Stats, r.Err
}
