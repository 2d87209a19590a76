// Package output defines what a zone output is: the Output interface the
// gateway's scheduler plays pages on, the Playback it hands each output,
// the page's Audio (rendered ahead, or LiveAudio still being spoken), and
// the Factory that makes an output from its config.
//
// Every output kind implements it in its own package: Polycom group paging
// and RTP multicast in package multicast, SIP amplifiers in
// gateway/output/sipamp, sound devices in gateway/output/lineout.
//
// It is a leaf: it imports nothing of parkpage but internal/codec and
// internal/config, so the scheduler (gateway) and the output kinds depend
// on it and never on each other.
package output

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
)

// Priority orders pages: a higher one pre-empts a lower one on shared zones.
type Priority int

// Page priorities, lowest first.
const (
	PriorityTest      Priority = iota // installer test pages
	PriorityPark                      // park announcements
	PriorityLive                      // live pages from a phone's page key
	PriorityEmergency                 // emergency pages: Polycom emergency channel, overrides DND
)

var priorityNames = []string{"test", "park", "live", "emergency"}

func (p Priority) String() string {
	if p < 0 || int(p) >= len(priorityNames) {
		return fmt.Sprintf("priority(%d)", int(p))
	}
	return priorityNames[p]
}

// ParsePriority reads a priority name as written in config and the API.
func ParsePriority(s string) (Priority, error) {
	for i, n := range priorityNames {
		if n == s {
			return Priority(i), nil
		}
	}
	return 0, fmt.Errorf("unknown priority %q (want test, park, live or emergency)", s)
}

// Audio is the sound of a page, rendered once and shared by every output.
type Audio interface {
	// Frames returns the page as 20 ms frames encoded in c. Implementations
	// cache per codec, so every output of a page sends the same frames.
	Frames(c codec.Name) ([][]byte, error)
	// PCM returns the page as 16 kHz mono samples (for line out, in-band use).
	PCM() []int16
}

// Playback is one page as an output sees it.
type Playback struct {
	ID       string
	Priority Priority
	Zone     string
	Audio    Audio
	CallerID string // what phones show, when the output can show it
	// Start lines up the first audio frame of the zone's outputs; nil:
	// start at once (the zone favours latency, or a lone output). Outputs
	// that implement Aligned call it before they send anything.
	Start Starter
}

// Ready is what an output tells its zone before it sends anything, so that
// every output's first audio frame leaves at the same moment.
type Ready struct {
	// Lead is how long the output sends before its first audio frame once
	// it starts: Polycom group paging's Alerts (AlertCount × AlertInterval,
	// about 0.93 s); zero for RTP, line out and a SIP call already set up.
	Lead time.Duration
	// At is the earliest moment the output can start sending, for one whose
	// set-up is already under way and cannot be held (a SIP amplifier that
	// has answered: answer + settle + zone code + after_code). Zero: now.
	At time.Time
}

// Starter lines up the first audio frames of one page on one zone's
// outputs (the gateway's, see package gateway/align).
type Starter interface {
	// Start reports r and waits until the zone has decided when its first
	// audio frame leaves, then returns that moment: the output starts
	// sending at the returned time minus r.Lead. An output that reports
	// after the decision (a SIP amplifier answering after the zone's
	// align_wait) gets its own earliest moment back, or the zone's if that
	// is still ahead: it joins late rather than holding the others. It
	// returns ctx's error if ctx ends first.
	Start(ctx context.Context, r Ready) (time.Time, error)
}

// Aligned is implemented by outputs that call Playback.Start before they
// send anything. The zone waits for them (up to its align_wait); outputs
// that do not implement it start at once and are not waited for.
type Aligned interface {
	AlignsStart()
}

// StartAt reports r to p.Start (if any), waits for the zone's decision and
// returns when the output should begin sending: the zone's first-audio
// moment minus r.Lead. Without a Starter it returns r.At (zero: now).
// Outputs that send through the pacer hand their stream over with this
// start (pacer.PlayAt), so that the zone's first frames leave in one of the
// loop's wake-ups whatever the scheduler does to their goroutines.
func StartAt(ctx context.Context, p *Playback, r Ready) (time.Time, error) {
	if p.Start == nil {
		return r.At, nil
	}
	first, err := p.Start.Start(ctx, r)
	if err != nil {
		return time.Time{}, err
	}
	return first.Add(-r.Lead), nil
}

// WaitStart is StartAt, then sleeps until the returned moment: for outputs
// that start sending by themselves (line out).
func WaitStart(ctx context.Context, p *Playback, r Ready) error {
	begin, err := StartAt(ctx, p, r)
	if err != nil {
		return err
	}
	return Sleep(ctx, time.Until(begin))
}

// Sleep waits d or until ctx ends (ctx's error then; at once for d <= 0).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Output plays pages to one device or group address. An Output that holds
// resources (sockets, calls being hung up) also implements io.Closer; the
// gateway closes it when its zone is reloaded away or the gateway closes.
type Output interface {
	// Name identifies the output in logs, events and metrics, e.g.
	// "warehouse/outputs[1]" (see Name).
	Name() string
	// Play sends the whole page and returns when it has been played, or
	// ends it cleanly (Polycom End burst, SIP BYE, drained line out) and
	// returns ctx.Err() when ctx is cancelled (pre-emption, pickup).
	Play(ctx context.Context, p *Playback) error
}

// Func adapts a play function to an Output called name, for tests and
// small outputs.
func Func(name string, play func(ctx context.Context, p *Playback) error) Output {
	return funcOutput{name, play}
}

type funcOutput struct {
	name string
	play func(ctx context.Context, p *Playback) error
}

func (f funcOutput) Name() string                                { return f.name }
func (f funcOutput) Play(ctx context.Context, p *Playback) error { return f.play(ctx, p) }

// Name is the conventional name of output i of zone, as events and metrics
// show it.
func Name(zone string, i int) string { return fmt.Sprintf("%s/outputs[%d]", zone, i) }

// Factory makes the Output for output index i of zone from its config
// section (zones.NAME.outputs[i]); the output is called Name(zone, i).
type Factory func(zone string, i int, o *config.Output) (Output, error)

// Kinds makes outputs by their config type (config.OutputPolycom, ...):
// the wiring lists the kinds this build has, each kind's package supplies
// its Factory. Its Output method is a Factory.
type Kinds map[string]Factory

// Output makes output i of zone with the factory of its type. A type
// without a factory is an error naming it.
func (k Kinds) Output(zone string, i int, o *config.Output) (Output, error) {
	if f := k[o.Type]; f != nil {
		return f(zone, i, o)
	}
	switch o.Type {
	case config.OutputPolycom, config.OutputRTP, config.OutputSIP, config.OutputLineOut:
		return nil, fmt.Errorf("%s outputs are not available in this build", o.Type)
	}
	return nil, fmt.Errorf("unknown output type %q", o.Type)
}

// ErrLiveAudio is what Frames of a LiveAudio returns: a live page cannot be
// rendered ahead, so an output that only plays pre-rendered frames fails
// (and says so in an OutputFailed event) instead of playing it late.
var ErrLiveAudio = errors.New("live page: this output cannot stream; it plays pre-rendered pages only")

// LiveAudio is the sound of a page that is still being spoken: a phone's
// live page (package livepage) or a phone's own multicast page relayed to a
// zone's amplifiers (package phonepage). Outputs that can stream look for it
// with a type assertion on Playback.Audio and read it through their own
// LiveReader; every output kind does. Its Frames returns ErrLiveAudio and
// its PCM nil.
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
// says "go" (paging.LiveBuffer.Go) it yields silence; then the prelude
// (the chime) from its start, then the talker from the end of the prelude
// on: a reader that starts late (an output still setting up, or waiting
// for its zone's first-audio moment) plays the page from its start,
// delayed by as much, rather than losing its first words.
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
