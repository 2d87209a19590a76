package lineout

import (
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// PCM states (SNDRV_PCM_STATE_*).
const (
	stOpen = iota
	stSetup
	stPrepared
	stRunning
	stXrun
)

// fakeDevice stands in for a kernel PCM device: it refines parameters the
// way the kernel does (intersecting what is asked with what the hardware
// offers, EINVAL when nothing is left), keeps the PCM state machine, and
// records every call, the final parameters and the frames written.
type fakeDevice struct {
	// Hardware.
	rates      []uint32 // supported rates
	channels   []uint32 // supported channel counts
	noS16      bool     // the device lacks S16_LE
	periodMin  uint32   // frames
	periodMax  uint32
	bufferMax  uint32
	xrunOn     map[int]bool // write call numbers that underrun
	eagainOn   map[int]bool // write call numbers that would block
	partialOn  map[int]bool // write call numbers that take half the frames
	onWrite    func(n int)  // called after each write call
	openErr    error
	failDrain  error
	mu         sync.Mutex
	state      int
	calls      []string
	hw         HWParams
	sw         SWParams
	written    []int16
	writeCalls int
	prepares   int
	waits      int
	open       bool
}

func newFake(rates []uint32, channels []uint32) *fakeDevice {
	return &fakeDevice{rates: rates, channels: channels, periodMin: 64, periodMax: 8192, bufferMax: 65536}
}

func (f *fakeDevice) call(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

// pick keeps the supported values inside iv, or reports none.
func pick(iv *Interval, supported []uint32) ([]uint32, bool) {
	var in []uint32
	for _, v := range supported {
		if !iv.Empty() && v >= iv.Lo() && v <= iv.Hi() {
			in = append(in, v)
		}
	}
	if len(in) == 0 {
		return nil, false
	}
	*iv = Interval{Min: slices.Min(in), Max: slices.Max(in), Flags: intervalInteger}
	return in, true
}

func clampIv(iv *Interval, lo, hi uint32) bool {
	if iv.Empty() {
		return false
	}
	l, h := max(iv.Lo(), lo), min(iv.Hi(), hi)
	if l > h {
		return false
	}
	*iv = Interval{Min: l, Max: h, Flags: intervalInteger}
	return true
}

func (f *fakeDevice) refine(p *HWParams) error {
	if !p.Masks[paramAccess].Has(accessRWInterleaved) || !p.Masks[paramFormat].Has(formatS16LE) || f.noS16 {
		return unix.EINVAL
	}
	p.setMask(paramAccess, accessRWInterleaved)
	p.setMask(paramFormat, formatS16LE)
	p.setMask(paramSubformat, subformatStd)
	chs, ok := pick(p.Interval(paramChannels), f.channels)
	if !ok {
		return unix.EINVAL
	}
	if _, ok := pick(p.Interval(paramRate), f.rates); !ok {
		return unix.EINVAL
	}
	if !clampIv(p.Interval(paramSampleBits), 16, 16) {
		return unix.EINVAL
	}
	if !clampIv(p.Interval(paramFrameBits), 16*slices.Min(chs), 16*slices.Max(chs)) {
		return unix.EINVAL
	}
	rate := p.Interval(paramRate)
	// Period and buffer sizes in frames, from the frame and time limits.
	ps, bs := p.Interval(paramPeriodSize), p.Interval(paramBufferSize)
	if !clampIv(ps, f.periodMin, f.periodMax) || !clampIv(bs, 2*f.periodMin, f.bufferMax) {
		return unix.EINVAL
	}
	us := func(iv *Interval, r uint32, hi bool) uint32 {
		v := iv.Lo()
		if hi {
			v = iv.Hi()
		}
		if v == ^uint32(0) {
			return v
		}
		return uint32(uint64(v) * uint64(r) / 1e6)
	}
	if pt := p.Interval(paramPeriodTime); !pt.Empty() && pt.Hi() != ^uint32(0) {
		if !clampIv(ps, us(pt, rate.Lo(), false), us(pt, rate.Hi(), true)) {
			return unix.EINVAL
		}
	}
	if bt := p.Interval(paramBufferTime); !bt.Empty() && bt.Hi() != ^uint32(0) {
		if !clampIv(bs, us(bt, rate.Lo(), false), us(bt, rate.Hi(), true)) {
			return unix.EINVAL
		}
	}
	if bs.Hi() < 2*ps.Lo() {
		return unix.EINVAL
	}
	return nil
}

func (f *fakeDevice) HWRefine(p *HWParams) error {
	f.call("HW_REFINE")
	return f.refine(p)
}

func (f *fakeDevice) HWParams(p *HWParams) error {
	f.call("HW_PARAMS")
	if err := f.refine(p); err != nil {
		return err
	}
	// The kernel's choice: the first of everything, the largest buffer.
	fix := func(i int, v uint32) { *p.Interval(i) = Interval{Min: v, Max: v, Flags: intervalInteger} }
	ch, rate := p.Interval(paramChannels).Lo(), p.Interval(paramRate).Lo()
	period := p.Interval(paramPeriodSize).Lo()
	buffer := p.Interval(paramBufferSize).Hi() / period * period
	fix(paramChannels, ch)
	fix(paramRate, rate)
	fix(paramFrameBits, 16*ch)
	fix(paramPeriodSize, period)
	fix(paramBufferSize, buffer)
	fix(paramPeriods, buffer/period)
	fix(paramPeriodTime, uint32(uint64(period)*1e6/uint64(rate)))
	fix(paramBufferTime, uint32(uint64(buffer)*1e6/uint64(rate)))
	f.mu.Lock()
	f.hw = *p
	f.state = stSetup
	f.mu.Unlock()
	return nil
}

func (f *fakeDevice) SWParams(p *SWParams) error {
	f.call("SW_PARAMS")
	f.mu.Lock()
	defer f.mu.Unlock()
	buffer := uint(f.hw.Interval(paramBufferSize).Lo())
	if f.state == stOpen || p.AvailMin == 0 || p.StopThreshold > buffer || p.StartThreshold > buffer {
		return unix.EINVAL
	}
	p.Boundary = buffer << 20
	f.sw = *p
	return nil
}

func (f *fakeDevice) Prepare() error {
	f.call("PREPARE")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == stOpen {
		return unix.EBADFD
	}
	f.state = stPrepared
	f.prepares++
	return nil
}

func (f *fakeDevice) WriteI(buf []int16, channels int) (int, error) {
	f.mu.Lock()
	n := f.writeCalls
	f.writeCalls++
	hook := f.onWrite
	f.calls = append(f.calls, "WRITEI")
	res, err := f.writeLocked(n, buf, channels)
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return res, err
}

func (f *fakeDevice) writeLocked(n int, buf []int16, channels int) (int, error) {
	if channels != int(f.hw.Interval(paramChannels).Lo()) || len(buf)%channels != 0 {
		return 0, unix.EINVAL
	}
	switch f.state {
	case stXrun:
		return 0, unix.EPIPE
	case stPrepared, stRunning:
	default:
		return 0, unix.EBADFD
	}
	if f.xrunOn[n] {
		f.state = stXrun
		return 0, unix.EPIPE
	}
	if f.eagainOn[n] {
		return 0, unix.EAGAIN
	}
	frames := len(buf) / channels
	if f.partialOn[n] && frames > 1 {
		frames /= 2
	}
	f.written = append(f.written, buf[:frames*channels]...)
	f.state = stRunning
	return frames, nil
}

func (f *fakeDevice) Wait(time.Duration) error {
	f.mu.Lock()
	f.waits++
	f.mu.Unlock()
	return nil
}

func (f *fakeDevice) Drain() error {
	f.call("DRAIN")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failDrain != nil {
		return f.failDrain
	}
	if f.state != stPrepared && f.state != stRunning {
		return unix.EBADFD
	}
	f.state = stSetup
	return nil
}

func (f *fakeDevice) Drop() error {
	f.call("DROP")
	f.mu.Lock()
	f.state = stSetup
	f.mu.Unlock()
	return nil
}

func (f *fakeDevice) Close() error {
	f.call("CLOSE")
	f.mu.Lock()
	f.open = false
	f.mu.Unlock()
	return nil
}

// opener hands out the fake for its path, refusing a second concurrent
// open as the kernel does (EBUSY).
func (f *fakeDevice) opener(path *string) func(string) (Device, error) {
	return func(p string) (Device, error) {
		if path != nil {
			*path = p
		}
		if f.openErr != nil {
			return nil, f.openErr
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.open {
			return nil, unix.EBUSY
		}
		f.open = true
		f.state = stOpen
		return f, nil
	}
}
