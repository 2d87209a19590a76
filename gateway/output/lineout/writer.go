package lineout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Params is the setup a Writer negotiated with its device.
type Params struct {
	Rate         int // frames per second
	Channels     int // 1 or 2
	PeriodFrames int // frames between interrupts
	BufferFrames int // frames the device queues
}

// Buffer bounds asked of the device: periods of 10–25 ms, a buffer of
// 60–150 ms. The buffer is all that still plays after a page is cut, so it
// is kept short; 60 ms is ample slack for a writer fed from memory.
const (
	minPeriodUS = 10000
	maxPeriodUS = 25000
	minBufferUS = 60000
	maxBufferUS = 150000
)

// Writer plays 16-bit audio on a PCM device: it sets the device up
// (interleaved S16_LE, mono if the device offers it or else stereo, the
// requested rate), then writes mono samples, duplicated to every channel,
// recovering from underruns. Not safe for concurrent use.
type Writer struct {
	dev    Device
	p      Params
	xruns  int
	frames []int16 // interleaving buffer
}

// NewWriter sets dev up for playback of mono audio at rate Hz. It fails
// if the device cannot play 16-bit interleaved audio at that rate; the
// caller still owns dev and closes it.
func NewWriter(dev Device, rate int) (*Writer, error) {
	w := &Writer{dev: dev}
	if err := w.setup(rate); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) setup(rate int) error {
	// What can the device do with 16-bit interleaved frames?
	var caps HWParams
	caps.any()
	caps.setMask(paramAccess, accessRWInterleaved)
	caps.setMask(paramFormat, formatS16LE)
	caps.setMask(paramSubformat, subformatStd)
	caps.setRange(paramChannels, 1, 2)
	if err := w.dev.HWRefine(&caps); err != nil {
		return fmt.Errorf("device does not play 16-bit interleaved mono or stereo audio: %w", err)
	}
	ch := caps.Interval(paramChannels).Lo()
	rates := caps.Interval(paramRate)

	base := caps // keeps the device's own limits on everything else
	base.setRange(paramChannels, ch, ch)
	base.setRange(paramSampleBits, 16, 16)
	base.setRange(paramFrameBits, 16*ch, 16*ch)
	base.setRange(paramRate, uint32(rate), uint32(rate))
	base.RMask = ^uint32(0)
	check := base
	if err := w.dev.HWRefine(&check); err != nil {
		return fmt.Errorf("device plays %d-%d Hz but not %d Hz: %w", rates.Lo(), rates.Hi(), rate, err)
	}

	hw := base
	hw.setRange(paramPeriodTime, minPeriodUS, maxPeriodUS)
	hw.setRange(paramBufferTime, minBufferUS, maxBufferUS)
	if err := w.dev.HWParams(&hw); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("set hardware parameters: %w", err)
		}
		// The device cannot meet our buffer bounds: take its own choice.
		hw = base
		if err := w.dev.HWParams(&hw); err != nil {
			return fmt.Errorf("set hardware parameters: %w", err)
		}
	}
	w.p = Params{
		Rate:         int(hw.Interval(paramRate).Lo()),
		Channels:     int(hw.Interval(paramChannels).Lo()),
		PeriodFrames: int(hw.Interval(paramPeriodSize).Lo()),
		BufferFrames: int(hw.Interval(paramBufferSize).Lo()),
	}
	if w.p.Rate != rate || w.p.Channels != int(ch) || w.p.PeriodFrames <= 0 || w.p.BufferFrames < w.p.PeriodFrames {
		return fmt.Errorf("device set up %+v, asked %d Hz, %d channels", w.p, rate, ch)
	}

	// Start once two periods are queued (or at drain, for shorter
	// sounds); an underrun of the whole buffer is an xrun.
	sw := SWParams{
		PeriodStep:     1,
		AvailMin:       uint(w.p.PeriodFrames),
		StartThreshold: uint(min(2*w.p.PeriodFrames, w.p.BufferFrames)),
		StopThreshold:  uint(w.p.BufferFrames),
	}
	if err := w.dev.SWParams(&sw); err != nil {
		return fmt.Errorf("set software parameters: %w", err)
	}
	if err := w.dev.Prepare(); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

// Params returns the negotiated setup.
func (w *Writer) Params() Params { return w.p }

// Xruns counts the underruns recovered from.
func (w *Writer) Xruns() int { return w.xruns }

// Write plays mono samples at the device rate, one period at a time,
// returning early with ctx.Err() if ctx ends between periods. An underrun
// (EPIPE) or a suspend (ESTRPIPE) prepares the device again and rewrites
// the frames that were refused.
func (w *Writer) Write(ctx context.Context, mono []int16) error {
	for len(mono) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(mono), w.p.PeriodFrames)
		w.frames = w.frames[:0]
		for _, s := range mono[:n] {
			for range w.p.Channels {
				w.frames = append(w.frames, s)
			}
		}
		if err := w.writeFrames(ctx, w.frames); err != nil {
			return err
		}
		mono = mono[n:]
	}
	return nil
}

// writeFrames writes interleaved frames completely.
func (w *Writer) writeFrames(ctx context.Context, buf []int16) error {
	retries := 0
	for len(buf) > 0 {
		n, err := w.dev.WriteI(buf, w.p.Channels)
		switch {
		case err == nil:
			buf = buf[n*w.p.Channels:]
			if n == 0 {
				retries++
			} else {
				retries = 0
			}
		case errors.Is(err, unix.EAGAIN):
			if err := w.dev.Wait(50 * time.Millisecond); err != nil {
				return fmt.Errorf("wait for device: %w", err)
			}
			retries++
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.ESTRPIPE):
			w.xruns++
			if err := w.dev.Prepare(); err != nil {
				return fmt.Errorf("recover from underrun: %w", err)
			}
			retries++
		case errors.Is(err, unix.EINTR):
		default:
			return fmt.Errorf("write frames: %w", err)
		}
		if retries > 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if retries > 100 {
			return fmt.Errorf("write frames: device makes no progress (last error %v)", err)
		}
	}
	return nil
}

// Drain plays out what is queued and stops.
func (w *Writer) Drain() error {
	for {
		err := w.dev.Drain()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EPIPE):
			return nil // underrun at the end: everything has played
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			// A nonblocking drain has started and the stream stops by itself
			// once the buffer has played; closing earlier would cut it.
			time.Sleep(time.Duration(w.p.BufferFrames) * time.Second / time.Duration(w.p.Rate))
			return nil
		}
		return fmt.Errorf("drain: %w", err)
	}
}

// Drop stops at once, discarding what is queued.
func (w *Writer) Drop() error {
	if err := w.dev.Drop(); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	return nil
}
