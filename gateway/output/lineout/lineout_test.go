package lineout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
)

// The kernel ABI: sizes and ioctl numbers as the C compiler computes them
// from /usr/include/sound/asound.h (printed by a 10-line C program with
// sizeof and the SNDRV_PCM_IOCTL_* macros, on amd64; arm64 is the same, and
// 32-bit ARM/x86 have 4-byte longs and pointers).
func TestKernelABI(t *testing.T) {
	type abi struct {
		hw, sw, xfer                uintptr
		refine, params, swp, writei uintptr
		prepare, drain, drop        uintptr
	}
	want := abi{608, 136, 24, 0xc2604110, 0xc2604111, 0xc0884113, 0x40184150, 0x4140, 0x4144, 0x4143}
	if unsafe.Sizeof(uintptr(0)) == 4 {
		want = abi{604, 104, 12, 0xc25c4110, 0xc25c4111, 0xc0684113, 0x400c4150, 0x4140, 0x4144, 0x4143}
	}
	got := abi{unsafe.Sizeof(HWParams{}), unsafe.Sizeof(SWParams{}), unsafe.Sizeof(xferi{}),
		ioctlHWRefine, ioctlHWParams, ioctlSWParams, ioctlWriteI, ioctlPrepare, ioctlDrain, ioctlDrop}
	if got != want {
		t.Errorf("ABI\n got %#v\nwant %#v", got, want)
	}
	var h HWParams
	if off := unsafe.Offsetof(h.Intervals); off != 260 {
		t.Errorf("intervals at %d, want 260", off)
	}
	if off := unsafe.Offsetof(h.RMask); off != 512 {
		t.Errorf("rmask at %d, want 512", off)
	}
	var s SWParams
	if off := unsafe.Offsetof(s.AvailMin); unsafe.Sizeof(uintptr(0)) == 8 && off != 16 {
		t.Errorf("avail_min at %d, want 16", off)
	}
}

// The kernel device really issues the ioctls: on a file that is not a
// sound device they fail with ENOTTY, and a missing device is ErrNoDevice.
func TestKernelDevice(t *testing.T) {
	if _, err := OpenDevice("/dev/snd/pcmC97D0p"); !errors.Is(err, ErrNoDevice) {
		t.Errorf("missing device: %v", err)
	}
	d, err := OpenDevice(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var p HWParams
	p.any()
	if err := d.HWRefine(&p); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("HW_REFINE on %s: %v, want ENOTTY", os.DevNull, err)
	}
	if _, err := d.WriteI(make([]int16, 4), 2); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("WRITEI on %s: %v, want ENOTTY", os.DevNull, err)
	}
	if err := d.Prepare(); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("PREPARE on %s: %v, want ENOTTY", os.DevNull, err)
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name     string
		dev      func() *fakeDevice
		rate     int
		channels int
		err      string
	}{
		{"stereo-only USB adapter", func() *fakeDevice { return newFake([]uint32{44100, 48000}, []uint32{2}) }, 48000, 2, ""},
		{"mono and stereo", func() *fakeDevice { return newFake([]uint32{8000, 16000, 48000}, []uint32{1, 2}) }, 16000, 1, ""},
		{"mono only", func() *fakeDevice { return newFake([]uint32{8000}, []uint32{1}) }, 8000, 1, ""},
		{"rate inside the range but not offered", func() *fakeDevice { return newFake([]uint32{44100, 48000}, []uint32{2}) }, 46000, 0, "plays 44100-48000 Hz but not 46000 Hz"},
		{"rate outside", func() *fakeDevice { return newFake([]uint32{48000}, []uint32{2}) }, 8000, 0, "not 8000 Hz"},
		{"no S16_LE", func() *fakeDevice { d := newFake([]uint32{48000}, []uint32{2}); d.noS16 = true; return d }, 48000, 0, "16-bit"},
		{"six channels only", func() *fakeDevice { return newFake([]uint32{48000}, []uint32{6}) }, 48000, 0, "mono or stereo"},
		{"huge periods: the device's own buffer", func() *fakeDevice {
			d := newFake([]uint32{48000}, []uint32{2})
			d.periodMin = 4096
			return d
		}, 48000, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.dev()
			w, err := NewWriter(d, tt.rate)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := w.Params()
			if p.Rate != tt.rate || p.Channels != tt.channels {
				t.Errorf("params %+v, want %d Hz %d channels", p, tt.rate, tt.channels)
			}
			hw := &d.hw
			if !hw.Masks[paramAccess].Has(accessRWInterleaved) || !hw.Masks[paramFormat].Has(formatS16LE) {
				t.Errorf("access/format masks %v %v", hw.Masks[paramAccess], hw.Masks[paramFormat])
			}
			if fb := hw.Interval(paramFrameBits); fb.Lo() != uint32(16*tt.channels) {
				t.Errorf("frame bits %d", fb.Lo())
			}
			if d.periodMin <= 1200 {
				// Our bounds held: periods 10-25 ms, buffer at most 150 ms.
				if ms := p.PeriodFrames * 1000 / p.Rate; ms < 10 || ms > 25 {
					t.Errorf("period %d frames = %d ms", p.PeriodFrames, ms)
				}
				if ms := p.BufferFrames * 1000 / p.Rate; ms > 150 || ms < 60 {
					t.Errorf("buffer %d frames = %d ms", p.BufferFrames, ms)
				}
			} else if p.PeriodFrames != 4096 {
				t.Errorf("fallback period %d", p.PeriodFrames)
			}
			if d.sw.AvailMin != uint(p.PeriodFrames) || d.sw.StopThreshold != uint(p.BufferFrames) ||
				d.sw.StartThreshold != uint(min(2*p.PeriodFrames, p.BufferFrames)) {
				t.Errorf("sw params %+v for %+v", d.sw, p)
			}
			if d.state != stPrepared {
				t.Errorf("state %d after setup, want prepared", d.state)
			}
		})
	}
}

// staticAudio is a page's audio with only PCM.
type staticAudio []int16

func (a staticAudio) Frames(codec.Name) ([][]byte, error) { return nil, errors.New("not used") }
func (a staticAudio) PCM() []int16                        { return a }

func sine(freq float64, rate, n int, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
	}
	return out
}

func newOutput(t *testing.T, d *fakeDevice, device string, rate int) *Output {
	t.Helper()
	o, err := New("shop/outputs[0]", &config.Output{Type: "lineout", Device: device, Rate: rate}, Options{Open: d.opener(nil)})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The page's 16 kHz audio reaches the device at the device's rate, on
// both channels of a stereo-only adapter, as the same tone.
func TestPlayResamplesAndUpmixes(t *testing.T) {
	for _, rate := range []int{48000, 44100, 8000} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			d := newFake([]uint32{8000, 44100, 48000}, []uint32{2})
			o := newOutput(t, d, "hw:1,0", rate)
			in := sine(1000, codec.SampleRate, codec.SampleRate/2, 10000) // 0.5 s
			if err := o.Play(context.Background(), &output.Playback{ID: "p1", Audio: staticAudio(in)}); err != nil {
				t.Fatal(err)
			}
			if d.hw.Interval(paramRate).Lo() != uint32(rate) {
				t.Fatalf("device rate %d", d.hw.Interval(paramRate).Lo())
			}
			if len(d.written)%2 != 0 {
				t.Fatal("odd number of samples for stereo")
			}
			frames := len(d.written) / 2
			if want := rate / 2; frames != want {
				t.Errorf("%d frames written, want %d", frames, want)
			}
			left := make([]int16, frames)
			for i := range frames {
				l, r := d.written[2*i], d.written[2*i+1]
				if l != r {
					t.Fatalf("frame %d: left %d right %d", i, l, r)
				}
				left[i] = l
			}
			// Compare with the ideal tone at the device rate, away from the
			// filter's edges: the resampler has no delay.
			ideal := sine(1000, rate, frames, 10000)
			var sig, noise float64
			for i := rate / 50; i < frames-rate/50; i++ {
				e := float64(left[i]) - float64(ideal[i])
				sig += float64(ideal[i]) * float64(ideal[i])
				noise += e * e
			}
			if snr := 10 * math.Log10(sig/noise); snr < 40 {
				t.Errorf("SNR %.1f dB against the ideal tone, want >= 40", snr)
			}
			if !slices.Equal(d.calls[len(d.calls)-2:], []string{"DRAIN", "CLOSE"}) {
				t.Errorf("calls end %v", d.calls[len(d.calls)-2:])
			}
		})
	}
}

// Underruns, writes that would block and partial writes lose and repeat
// nothing: the device gets exactly the page, frame for frame.
func TestXrunRecovery(t *testing.T) {
	d := newFake([]uint32{16000}, []uint32{1})
	d.xrunOn = map[int]bool{2: true, 7: true}
	d.eagainOn = map[int]bool{4: true}
	d.partialOn = map[int]bool{5: true}
	o := newOutput(t, d, "/dev/snd/pcmC0D0p", 16000)
	in := make([]int16, 16000) // 1 s ramp, no resampling at 16 kHz
	for i := range in {
		in[i] = int16(i)
	}
	if err := o.Play(context.Background(), &output.Playback{Audio: staticAudio(in)}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.written, in) {
		t.Fatalf("device got %d samples, differing from the page", len(d.written))
	}
	if d.prepares != 3 { // setup + 2 recoveries
		t.Errorf("%d PREPAREs, want 3", d.prepares)
	}
	if d.waits != 1 {
		t.Errorf("%d waits for EAGAIN, want 1", d.waits)
	}
}

// An underrun that cannot be recovered is an error, not a hang.
func TestWriteFails(t *testing.T) {
	d := newFake([]uint32{16000}, []uint32{1})
	w, err := NewWriter(d, 16000)
	if err != nil {
		t.Fatal(err)
	}
	d.state = stOpen // PREPARE and WRITEI now fail with EBADFD
	d.xrunOn = map[int]bool{0: true}
	err = w.Write(context.Background(), make([]int16, 100))
	if !errors.Is(err, unix.EBADFD) {
		t.Errorf("got %v, want EBADFD", err)
	}
}

// A cut page fades out over 20 ms, drains, and returns ctx's error.
func TestPlayCut(t *testing.T) {
	d := newFake([]uint32{48000}, []uint32{1, 2})
	ctx, cancel := context.WithCancel(context.Background())
	d.onWrite = func(n int) {
		if n == 10 {
			cancel()
		}
	}
	o := newOutput(t, d, "hw:0", 48000)
	in := sine(500, codec.SampleRate, 5*codec.SampleRate, 20000) // 5 s
	err := o.Play(ctx, &output.Playback{Audio: staticAudio(in)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(d.written) >= 48000 {
		t.Errorf("%d frames written after a cut in the first second", len(d.written))
	}
	// The last 20 ms decay to silence.
	tail := d.written[len(d.written)-960:]
	peak := func(s []int16) int {
		m := 0
		for _, v := range s {
			m = max(m, int(math.Abs(float64(v))))
		}
		return m
	}
	if a, b, c := peak(tail[:240]), peak(tail[720:]), peak(tail[912:]); a < 15000 || b > 6000 || c > 1500 {
		t.Errorf("fade: peak %d in the first quarter, %d in the last, %d in the last 1 ms", a, b, c)
	}
	if !slices.Contains(d.calls, "DRAIN") {
		t.Error("cut page not drained")
	}
	if d.open {
		t.Error("device left open")
	}
}

// Two outputs on one device take turns instead of failing with EBUSY.
func TestSharedDevice(t *testing.T) {
	d := newFake([]uint32{16000}, []uint32{1})
	a := newOutput(t, d, "hw:2,0", 16000)
	b := newOutput(t, d, "/dev/snd/pcmC2D0p", 16000)
	in := make([]int16, 3200)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, o := range []*Output{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = o.Play(context.Background(), &output.Playback{Audio: staticAudio(in)})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if len(d.written) != 2*len(in) {
		t.Errorf("%d samples written, want %d", len(d.written), 2*len(in))
	}
}

func TestOpenFails(t *testing.T) {
	d := newFake([]uint32{16000}, []uint32{1})
	d.openErr = ErrNoDevice
	o := newOutput(t, d, "hw:0,0", 16000)
	err := o.Play(context.Background(), &output.Playback{Audio: staticAudio(make([]int16, 320))})
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "hw:0,0") {
		t.Errorf("got %v", err)
	}
}

func TestDevicePath(t *testing.T) {
	proc := t.TempDir()
	if err := os.Symlink("card1", filepath.Join(proc, "Device")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("self", filepath.Join(proc, "Odd")); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want, err string }{
		{"hw:0,0", "/dev/snd/pcmC0D0p", ""},
		{"hw:1", "/dev/snd/pcmC1D0p", ""},
		{"plughw:2,3", "/dev/snd/pcmC2D3p", ""},
		{"hw:CARD=1,DEV=2", "/dev/snd/pcmC1D2p", ""},
		{"hw:Device,0", "/dev/snd/pcmC1D0p", ""},
		{"hw:CARD=Device", "/dev/snd/pcmC1D0p", ""},
		{"/dev/snd/pcmC3D0p", "/dev/snd/pcmC3D0p", ""},
		{"/dev/snd/pcmC3D0c", "", "write hw"},
		{"default", "", "write hw"},
		{"hw:", "", "write hw"},
		{"hw:0,x", "", "write hw"},
		{"hw:0,0,0", "", "unexpected"},
		{"hw:Nope,0", "", "no sound card named"},
		{"hw:Odd", "", "not a card"},
	}
	for _, tt := range tests {
		got, err := devicePath(tt.in, proc)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: got %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzDevicePath(f *testing.F) {
	for _, s := range []string{"hw:0,0", "hw:CARD=x,DEV=1", "plughw:1", "/dev/snd/pcmC0D0p", "hw:,,,", "hw:=="} {
		f.Add(s)
	}
	proc := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		p, err := devicePath(s, proc)
		if err == nil && !pcmPathRe.MatchString(p) {
			t.Errorf("%q mapped to %q", s, p)
		}
	})
}

// BenchmarkPlay48k measures the CPU cost of a 10 s page on a 48 kHz
// stereo device (resampling and interleaving; the fake device is free).
func BenchmarkPlay48k(b *testing.B) {
	in := sine(440, codec.SampleRate, 10*codec.SampleRate, 8000)
	for b.Loop() {
		d := newFake([]uint32{48000}, []uint32{2})
		o, err := New("b", &config.Output{Device: "hw:0,0", Rate: 48000}, Options{Open: d.opener(nil)})
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Play(context.Background(), &output.Playback{Audio: staticAudio(in)}); err != nil {
			b.Fatal(err)
		}
	}
}
