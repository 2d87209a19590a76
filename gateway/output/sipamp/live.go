package sipamp

import (
	"context"
	"errors"
	"io"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/media"
)

// playLive streams a live page into the answered call: each 20 ms frame
// goes to the leg as soon as it has arrived, and the leg's pacer sends it
// on its next tick (the leg drops the oldest frames if more than 200 ms
// queue up, so latency stays bounded). At the end it waits for the queued
// frames to go out, then the tail.
func (o *Output) playLive(ctx context.Context, leg *media.Leg, la output.LiveAudio) error {
	r := la.NewReader()
	defer r.Close()
	frame := make([]int16, codec.FrameSamples)
	for {
		err := r.Next(ctx, frame)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := leg.WritePCM(frame); err != nil {
			return err
		}
	}
	// A frame of silence queued behind the live frames returns once they
	// have all gone out.
	clear(frame)
	if err := leg.Play(ctx, frame); err != nil {
		return err
	}
	_ = sleep(ctx, o.tail)
	return nil
}
