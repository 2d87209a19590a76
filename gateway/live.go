package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/parkpage/parkpage/internal/codec"
)

// ErrLiveAudio is what Frames of a LiveAudio returns: a live page cannot be
// rendered ahead, so an output that only plays pre-rendered frames fails
// (and says so in an OutputFailed event) instead of playing it late.
var ErrLiveAudio = errors.New("live page: this output cannot stream; it plays pre-rendered pages only")

// LiveAudio is the sound of a page that is still being spoken: a phone's
// live page (package livepage) or a phone's own multicast page relayed to a
// zone's amplifiers (package phonepage). Outputs that can stream look for it
// with a type assertion on Playback.Audio and read it through their own
// LiveReader; the multicast outputs built here, internal/sipout and
// internal/lineout do. Its Frames returns ErrLiveAudio and its PCM nil.
//
// A zone without outputs (relays only) holds its relays until Done.
type LiveAudio interface {
	Audio
	// NewReader opens a reader for one output. Close it when done.
	NewReader() LiveReader
	// Done is closed when the talker has finished (hung up, the page's
	// maximum length, the phone's page ended). Readers still play what they
	// have buffered.
	Done() <-chan struct{}
}

// LiveReader is one output's view of a LiveAudio. Until the page's source
// says "go" (LiveBuffer.Go) it yields silence; then the prelude (the chime)
// from its start, then the talker from the live edge on.
type LiveReader interface {
	// Read fills dst (codec.FrameSamples samples) with the next 20 ms, for
	// outputs that send on their own clock (the multicast Pacer). It never
	// blocks: audio that has not arrived is silence, and the reader keeps a
	// small adaptive jitter margin. It returns false once the talker has
	// finished and this reader has played everything.
	Read(dst []int16) bool
	// Next waits for the next whole 20 ms and copies it to dst, for outputs
	// whose player paces the audio itself (a SIP call's RTP leg, a sound
	// card): the prelude comes at real-time pace, the talker as it arrives.
	// It returns io.EOF at the end, or ctx's error.
	Next(ctx context.Context, dst []int16) error
	// Over reports whether Read would return false: the talker has finished
	// and nothing is left for this reader.
	Over() bool
	// Close releases the reader.
	Close()
}

// playLive plays a live page as a Polycom group page: Alerts, then one
// Transmit per 20 ms read from the page as it is spoken, then Ends.
func (o *polycomOutput) playLive(ctx context.Context, pb *Playback, la LiveAudio) error {
	feed, err := newLiveFeed(la, o.codec)
	if err != nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	defer feed.close()
	out, err := o.session(pb)
	if err != nil {
		return err
	}
	st, err := out.PlayLive(ctx, feed)
	logStats(o.log, o.name, pb.ID, st)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return err
}

// playLive plays a live page as an RTP multicast stream.
func (o *rtpOutput) playLive(ctx context.Context, pb *Playback, la LiveAudio) error {
	feed, err := newLiveFeed(la, o.codec)
	if err != nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	defer feed.close()
	st, err := o.out.PlayLive(ctx, feed)
	logStats(o.log, o.name, pb.ID, st)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return err
}

// liveFeed encodes a LiveReader's frames for one multicast output. The
// Pacer calls it from its loop thread only.
type liveFeed struct {
	r    LiveReader
	enc  codec.Encoder
	pcm  []int16
	over bool
}

func newLiveFeed(la LiveAudio, c codec.Name) (*liveFeed, error) {
	enc, err := codec.NewEncoder(c)
	if err != nil {
		return nil, fmt.Errorf("live page encoder: %w", err)
	}
	return &liveFeed{r: la.NewReader(), enc: enc, pcm: make([]int16, codec.FrameSamples)}, nil
}

// Frame implements multicast.LiveFeed.
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

// Over implements multicast.LiveFeed.
func (f *liveFeed) Over() bool { return f.over || f.r.Over() }

func (f *liveFeed) close() { f.r.Close() }

// pageOutputs returns the outputs of a zone a page plays on: those of the
// page's OutputTypes, or all of them.
func pageOutputs(types []string, outs []Output) []Output {
	if len(types) == 0 {
		return outs
	}
	var keep []Output
	for _, o := range outs {
		if slices.Contains(types, describe(o).Type) {
			keep = append(keep, o)
		}
	}
	return keep
}
