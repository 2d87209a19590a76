package lineout

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
)

// playLive plays a live page as it arrives: each 20 ms frame is resampled
// and written as soon as it is there, so the device's start threshold (two
// periods, 20-50 ms) is the only added latency. A talker's pause longer
// than the device buffer underruns it; the Writer recovers and counts it.
func (o *Output) playLive(ctx context.Context, w *Writer, conv *codec.Converter, la output.LiveAudio) error {
	r := la.NewReader()
	defer r.Close()
	frame := make([]int16, codec.FrameSamples)
	var out []int16
	bg := context.Background() // ctx is checked between frames, as in Play
	for {
		err := r.Next(ctx, frame)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return o.fadeOut(w, conv, frame, err)
		}
		if out, err = conv.Process(out[:0], frame); err != nil {
			return fmt.Errorf("line out %s: %w", o.device, err)
		}
		if err := w.Write(bg, out); err != nil {
			return fmt.Errorf("line out %s: %w", o.device, err)
		}
	}
	if err := w.Write(bg, conv.Flush(out[:0])); err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	if err := w.Drain(); err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	if x := w.Xruns(); x > 0 {
		o.log.Debug("line out underruns during live page (talker pauses)", "output", o.name, "xruns", x)
	}
	return nil
}
