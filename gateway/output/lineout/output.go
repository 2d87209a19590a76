package lineout

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
)

// Options are an Output's optional collaborators.
type Options struct {
	Logger *slog.Logger // default: discard
	// Open opens a device by path; default OpenDevice (the kernel device).
	// Tests inject a fake.
	Open func(path string) (Device, error)
	// ProcAsound is where card names ("hw:Device,0") are looked up;
	// default /proc/asound.
	ProcAsound string
	// Mixer, if set, sets the card's playback path before each page
	// (SetPlaybackPath: unmuted, 0 dB). The appliance sets it: nothing
	// else unmutes its cards. Default none, so a desktop's mixer is left
	// alone.
	Mixer func(pcmPath string) ([]MixerChange, error)
}

// Output plays pages on a sound device: a USB adapter into an amplifier's
// line input, a radio's microphone input. It implements output.Output.
// The device is opened for each page and closed after it, so other
// programs (and other outputs naming the same device, which take turns)
// can use it in between.
type Output struct {
	name   string
	device string // as configured
	path   string // /dev/snd/pcmC0D0p
	rate   int
	open   func(string) (Device, error)
	mixer  func(string) ([]MixerChange, error)
	log    *slog.Logger
	lock   chan struct{} // shared by every Output on path
}

// New makes the line-out output called name (output.Name) from its
// config: o.Device and o.Rate.
func New(name string, o *config.Output, opts Options) (*Output, error) {
	proc := opts.ProcAsound
	if proc == "" {
		proc = "/proc/asound"
	}
	path, err := devicePath(o.Device, proc)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", name, err)
	}
	if o.Rate < codec.MinRate || o.Rate > codec.MaxRate {
		return nil, fmt.Errorf("output %s: rate %d Hz out of range", name, o.Rate)
	}
	out := &Output{
		name: name, device: o.Device, path: path, rate: o.Rate,
		open: opts.Open, mixer: opts.Mixer, log: opts.Logger, lock: deviceLock(path),
	}
	if out.open == nil {
		out.open = OpenDevice
	}
	if out.log == nil {
		out.log = slog.New(slog.DiscardHandler)
	}
	return out, nil
}

// Name identifies the output in logs and events.
func (o *Output) Name() string { return o.name }

// Path is the kernel device the output plays on.
func (o *Output) Path() string { return o.path }

// AlignsStart implements output.Aligned: the zone's Polycom Alerts and SIP
// amplifiers' set-up hold the line out's first sample, so the speakers
// and the phones play the page at once.
func (o *Output) AlignsStart() {}

// fadeSamples is the fade-out (at 16 kHz) played when a page is cut, so the
// speakers do not click: 20 ms.
const fadeSamples = codec.FrameSamples

// Play plays the page's audio, resampled from 16 kHz to the device rate,
// and returns once the device has played it out. If ctx ends first, the
// next 20 ms fade to silence, the little that is queued plays out (the
// device buffer is at most 150 ms) and Play returns ctx.Err().
func (o *Output) Play(ctx context.Context, p *output.Playback) error {
	select {
	case o.lock <- struct{}{}:
		defer func() { <-o.lock }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if o.mixer != nil {
		// A muted mixer would play the page as silence.
		changes, err := o.mixer(o.path)
		if len(changes) > 0 {
			o.log.Info("line out: mixer set for playback", "output", o.name, "device", o.path, "changes", fmt.Sprint(changes))
		}
		if err != nil {
			o.log.Warn("line out: mixer", "output", o.name, "err", err)
		}
	}
	dev, err := o.open(o.path)
	if err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	defer dev.Close()
	w, err := NewWriter(dev, o.rate)
	if err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	conv, err := codec.NewConverter(codec.SampleRate, o.rate)
	if err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	// In step with the zone's other outputs: the device is open and set
	// up; the first write starts the sound.
	if err := output.WaitStart(ctx, p, output.Ready{}); err != nil {
		return err
	}
	if la, ok := p.Audio.(output.LiveAudio); ok {
		return o.playLive(ctx, w, conv, la)
	}
	pcm := p.Audio.PCM()
	var out []int16
	bg := context.Background() // Play checks ctx itself, between frames
	for len(pcm) > 0 {
		n := min(len(pcm), codec.FrameSamples)
		if ctx.Err() != nil {
			return o.fadeOut(w, conv, pcm[:min(len(pcm), fadeSamples)], ctx.Err())
		}
		if out, err = conv.Process(out[:0], pcm[:n]); err != nil {
			return fmt.Errorf("line out %s: %w", o.device, err)
		}
		if err := w.Write(bg, out); err != nil {
			return fmt.Errorf("line out %s: %w", o.device, err)
		}
		pcm = pcm[n:]
	}
	if err := w.Write(bg, conv.Flush(out[:0])); err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	if err := w.Drain(); err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	if x := w.Xruns(); x > 0 {
		o.log.Warn("line out underruns during page", "output", o.name, "page", p.ID, "xruns", x)
	}
	return nil
}

// fadeOut ends a cut page: rest faded from full level to silence, then
// drained. It returns cause unless the device fails.
func (o *Output) fadeOut(w *Writer, conv *codec.Converter, rest []int16, cause error) error {
	faded := make([]int16, len(rest))
	for i, s := range rest {
		faded[i] = int16(int32(s) * int32(len(rest)-1-i) / int32(len(rest)))
	}
	out, _ := conv.Process(nil, faded)
	out = conv.Flush(out)
	if err := w.Write(context.Background(), out); err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	if err := w.Drain(); err != nil {
		return fmt.Errorf("line out %s: %w", o.device, err)
	}
	return cause
}

var (
	locksMu sync.Mutex
	locks   = map[string]chan struct{}{}
)

// deviceLock returns the turn-taking lock of a device path: the kernel
// lets one writer at a time open a hw device.
func deviceLock(path string) chan struct{} {
	locksMu.Lock()
	defer locksMu.Unlock()
	l, ok := locks[path]
	if !ok {
		l = make(chan struct{}, 1)
		locks[path] = l
	}
	return l
}

var (
	pcmPathRe = regexp.MustCompile(`^/dev/snd/pcmC[0-9]+D[0-9]+p$`)
	hwNameRe  = regexp.MustCompile(`^(?:plug)?hw:(.+)$`)
)

// DevicePath maps an ALSA device name to its kernel playback device:
// "hw:0,0" and "plughw:0,0" to /dev/snd/pcmC0D0p, "hw:1" to
// /dev/snd/pcmC1D0p, a card name ("hw:Device,0", "hw:CARD=Device,DEV=0")
// through /proc/asound. A /dev/snd/pcmC*D*p path is taken as it is.
// Format conversion is parkpage's own, so plughw means the same as hw.
func DevicePath(name string) (string, error) { return devicePath(name, "/proc/asound") }

func devicePath(name, proc string) (string, error) {
	if pcmPathRe.MatchString(name) {
		return name, nil
	}
	m := hwNameRe.FindStringSubmatch(name)
	if m == nil {
		return "", fmt.Errorf("sound device %q: write hw:CARD,DEVICE (e.g. hw:0,0) or /dev/snd/pcmC0D0p", name)
	}
	card, dev := "", "0"
	for i, part := range strings.Split(m[1], ",") {
		k, v, named := strings.Cut(part, "=")
		if !named {
			v = k
			k = []string{"CARD", "DEV"}[min(i, 1)]
			if i > 1 {
				k = ""
			}
		}
		switch k {
		case "CARD":
			card = v
		case "DEV":
			dev = v
		default:
			return "", fmt.Errorf("sound device %q: unexpected %q", name, part)
		}
	}
	if _, err := strconv.Atoi(dev); err != nil || card == "" {
		return "", fmt.Errorf("sound device %q: write hw:CARD,DEVICE (e.g. hw:0,0)", name)
	}
	if _, err := strconv.Atoi(card); err != nil {
		// A card id: /proc/asound/<id> links to cardN.
		target, err := os.Readlink(filepath.Join(proc, card))
		if err != nil {
			return "", fmt.Errorf("sound device %q: no sound card named %q: %w", name, card, err)
		}
		idx, ok := strings.CutPrefix(filepath.Base(target), "card")
		if _, err := strconv.Atoi(idx); !ok || err != nil {
			return "", fmt.Errorf("sound device %q: %s links to %q, not a card", name, filepath.Join(proc, card), target)
		}
		card = idx
	}
	return fmt.Sprintf("/dev/snd/pcmC%sD%sp", card, dev), nil
}

// Factory returns the output.Factory for config type lineout: output i of
// zone is New(output.Name(zone, i), o, opts).
func Factory(opts Options) output.Factory {
	return func(zone string, i int, o *config.Output) (output.Output, error) {
		return New(output.Name(zone, i), o, opts)
	}
}
