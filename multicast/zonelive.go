package multicast

import (
	"context"
	"fmt"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
)

// playLive plays a live page as a Polycom group page: Alerts, then one
// Transmit per 20 ms read from the page as it is spoken, then Ends.
func (o *polycomZoneOutput) playLive(ctx context.Context, pb *output.Playback, la output.LiveAudio) error {
	feed, err := newLiveFeed(la, o.codec)
	if err != nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	defer feed.close()
	out, err := o.session(pb)
	if err != nil {
		return err
	}
	// Lined up, the faster outputs wait (and the talker's audio waits in
	// the LiveBuffer) until the Alerts are over.
	begin, err := o.startAt(ctx, pb)
	if err != nil {
		return err
	}
	st, err := out.PlayLiveAt(ctx, feed, begin)
	logStats(o.log, o.name, pb.ID, st)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return err
}

// playLive plays a live page as an RTP multicast stream.
func (o *rtpZoneOutput) playLive(ctx context.Context, pb *output.Playback, la output.LiveAudio) error {
	feed, err := newLiveFeed(la, o.codec)
	if err != nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	defer feed.close()
	begin, err := output.StartAt(ctx, pb, output.Ready{})
	if err != nil {
		return err
	}
	st, err := o.out.PlayLiveAt(ctx, feed, begin)
	logStats(o.log, o.name, pb.ID, st)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return err
}

// liveFeed encodes a LiveReader's frames for one multicast output. The
// Pacer calls it from its loop thread only.
type liveFeed struct {
	r    output.LiveReader
	enc  codec.Encoder
	pcm  []int16
	over bool
}

func newLiveFeed(la output.LiveAudio, c codec.Name) (*liveFeed, error) {
	enc, err := codec.NewEncoder(c)
	if err != nil {
		return nil, fmt.Errorf("live page encoder: %w", err)
	}
	return &liveFeed{r: la.NewReader(), enc: enc, pcm: make([]int16, codec.FrameSamples)}, nil
}

// Frame implements LiveFeed.
func (f *liveFeed) Frame(dst []byte) []byte {
	if !f.r.Read(f.pcm) {
		f.over = true
		clear(f.pcm)
	}
	out, err := f.enc.Encode(dst, f.pcm)
	if err != nil {
		// Encoders fail only on a wrong frame length, which cannot happen
		// here; end the page rather than send a short packet.
		f.over = true
		return dst
	}
	return out
}

// Over implements LiveFeed.
func (f *liveFeed) Over() bool { return f.over || f.r.Over() }

func (f *liveFeed) close() { f.r.Close() }
