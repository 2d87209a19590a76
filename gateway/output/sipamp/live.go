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
// on its next tick. The reader starts at the page's start, however long the
// call took to set up (and the zone to line its outputs up): what the
// talker said meanwhile is played delayed, not dropped, so the leg is fed
// at its own pace (WritePCMWait) and the backlog waits in the LiveBuffer.
// At the end it waits for the queued frames to go out, then the tail.
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
		if err := leg.WritePCMWait(ctx, frame); err != nil {
			return err
		}
	}
	// Wait for the queued frames to go out, adding no packet: the talker's
	// end is known only when its source ends (a Polycom sender's End burst
	// comes 50 ms after its last frame), and a closing frame queued then
	// would follow a pause and end the stream with a timestamp jump.
	if err := leg.Drain(ctx); err != nil {
		return err
	}
	_ = output.Sleep(ctx, o.tail)
	return nil
}
