package lineout

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's PCM ABI, from include/uapi/sound/asound.h (protocol 2.0.x).
// Only what a playback writer needs is mirrored here.

// Hardware parameter indexes (SNDRV_PCM_HW_PARAM_*).
const (
	paramAccess    = 0 // mask
	paramFormat    = 1 // mask
	paramSubformat = 2 // mask

	paramSampleBits = 8 // intervals from here on
	paramFrameBits  = 9
	paramChannels   = 10
	paramRate       = 11
	paramPeriodTime = 12 // µs
	paramPeriodSize = 13 // frames
	paramPeriods    = 15
	paramBufferTime = 16 // µs
	paramBufferSize = 17 // frames

	firstInterval = paramSampleBits
)

// Mask and interval values.
const (
	accessRWInterleaved = 3 // SNDRV_PCM_ACCESS_RW_INTERLEAVED
	formatS16LE         = 2 // SNDRV_PCM_FORMAT_S16_LE
	subformatStd        = 0 // SNDRV_PCM_SUBFORMAT_STD

	// snd_interval bit fields (GCC allocates them from bit 0 on the
	// little-endian targets parkpage runs on).
	intervalOpenMin = 1 << 0
	intervalOpenMax = 1 << 1
	intervalInteger = 1 << 2
	intervalEmpty   = 1 << 3
)

// Mask is struct snd_mask: a 256-bit set.
type Mask struct{ Bits [8]uint32 }

// Has reports whether bit v is set.
func (m *Mask) Has(v uint) bool { return v < 256 && m.Bits[v/32]&(1<<(v%32)) != 0 }

// Interval is struct snd_interval: [Min, Max], each end open or closed.
type Interval struct {
	Min, Max uint32
	Flags    uint32 // intervalOpenMin | intervalOpenMax | intervalInteger | intervalEmpty
}

// Empty reports whether the interval holds no value.
func (i *Interval) Empty() bool {
	return i.Flags&intervalEmpty != 0 || i.Min > i.Max ||
		(i.Min == i.Max && i.Flags&(intervalOpenMin|intervalOpenMax) != 0)
}

// Lo and Hi are the smallest and largest integers in the interval.
func (i *Interval) Lo() uint32 {
	if i.Flags&intervalOpenMin != 0 {
		return i.Min + 1
	}
	return i.Min
}

// Hi is the largest integer in the interval.
func (i *Interval) Hi() uint32 {
	if i.Flags&intervalOpenMax != 0 && i.Max > 0 {
		return i.Max - 1
	}
	return i.Max
}

// HWParams is struct snd_pcm_hw_params.
type HWParams struct {
	Flags     uint32
	Masks     [3]Mask // access, format, subformat
	MRes      [5]Mask
	Intervals [12]Interval // sample bits .. tick time
	IRes      [9]Interval
	RMask     uint32 // W: parameters to refine
	CMask     uint32 // R: parameters changed
	Info      uint32
	MSBits    uint32
	RateNum   uint32
	RateDen   uint32
	FifoSize  uint // snd_pcm_uframes_t (unsigned long)
	Reserved  [64]byte
}

// Interval returns the interval of parameter p (paramChannels and so on).
func (h *HWParams) Interval(p int) *Interval { return &h.Intervals[p-firstInterval] }

// any makes every parameter unconstrained, as alsa-lib's
// snd_pcm_hw_params_any does before the kernel refines it.
func (h *HWParams) any() {
	*h = HWParams{}
	for i := range h.Masks {
		for j := range h.Masks[i].Bits {
			h.Masks[i].Bits[j] = ^uint32(0)
		}
	}
	for i := range h.Intervals {
		h.Intervals[i] = Interval{Min: 0, Max: ^uint32(0)}
	}
	h.RMask = ^uint32(0)
	h.Info = ^uint32(0)
}

// setMask constrains mask parameter p to the single value v.
func (h *HWParams) setMask(p int, v uint) {
	h.Masks[p] = Mask{}
	h.Masks[p].Bits[v/32] = 1 << (v % 32)
}

// setRange constrains interval parameter p to [lo, hi].
func (h *HWParams) setRange(p int, lo, hi uint32) {
	*h.Interval(p) = Interval{Min: lo, Max: hi, Flags: intervalInteger}
}

// SWParams is struct snd_pcm_sw_params.
type SWParams struct {
	TstampMode       int32
	PeriodStep       uint32
	SleepMin         uint32
	AvailMin         uint // frames; the kernel refuses 0
	XferAlign        uint
	StartThreshold   uint // frames queued before playback starts by itself
	StopThreshold    uint // frames of underrun that stop the stream (xrun)
	SilenceThreshold uint
	SilenceSize      uint
	Boundary         uint // R: the kernel fills it in
	Proto            uint32
	TstampType       uint32
	Reserved         [56]byte
}

// xferi is struct snd_xferi.
type xferi struct {
	result int // snd_pcm_sframes_t
	buf    unsafe.Pointer
	frames uint
}

// Linux generic ioctl encoding (x86, arm, arm64, riscv).
func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'A'<<8 | nr }

const (
	iocWrite = 1
	iocRead  = 2
)

var (
	ioctlHWRefine = ioc(iocRead|iocWrite, 0x10, unsafe.Sizeof(HWParams{}))
	ioctlHWParams = ioc(iocRead|iocWrite, 0x11, unsafe.Sizeof(HWParams{}))
	ioctlSWParams = ioc(iocRead|iocWrite, 0x13, unsafe.Sizeof(SWParams{}))
	ioctlPrepare  = ioc(0, 0x40, 0)
	ioctlDrop     = ioc(0, 0x43, 0)
	ioctlDrain    = ioc(0, 0x44, 0)
	ioctlWriteI   = ioc(iocWrite, 0x50, unsafe.Sizeof(xferi{}))
)

// Device is a PCM playback device at the ioctl boundary: each method is one
// ioctl (or the poll a nonblocking writer waits in). The kernel device
// implements it; tests put a fake in its place. Errors are unix.Errno
// values where the kernel would return them (EPIPE for an underrun,
// EAGAIN when a write would block, EINVAL for impossible parameters).
type Device interface {
	HWRefine(p *HWParams) error // SNDRV_PCM_IOCTL_HW_REFINE
	HWParams(p *HWParams) error // SNDRV_PCM_IOCTL_HW_PARAMS
	SWParams(p *SWParams) error // SNDRV_PCM_IOCTL_SW_PARAMS
	Prepare() error             // SNDRV_PCM_IOCTL_PREPARE
	// WriteI writes interleaved frames (len(buf) is a whole number of
	// frames) and returns how many frames the kernel took
	// (SNDRV_PCM_IOCTL_WRITEI_FRAMES).
	WriteI(buf []int16, channels int) (int, error)
	// Wait blocks until the device can take frames or d has passed (poll
	// for POLLOUT).
	Wait(d time.Duration) error
	Drain() error // SNDRV_PCM_IOCTL_DRAIN
	Drop() error  // SNDRV_PCM_IOCTL_DROP
	Close() error
}

// ErrNoDevice is returned by OpenDevice when the device file does not
// exist (no sound card, a wrong name, an adapter unplugged).
var ErrNoDevice = errors.New("no such sound device")

// kernelDevice is a /dev/snd/pcmC*D*p file.
type kernelDevice struct {
	fd   int
	path string
}

// OpenDevice opens a kernel PCM playback device by path. It opens
// nonblocking, so a device busy with another program fails at once
// (EBUSY) instead of waiting, then switches the file to blocking for
// drain; writes still cope with EAGAIN, because the kernel keeps the open
// flags for them.
func OpenDevice(path string) (Device, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("open %s: %w", path, ErrNoDevice)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: set blocking: %w", path, err)
	}
	return &kernelDevice{fd: fd, path: path}, nil
}

func (d *kernelDevice) ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func (d *kernelDevice) HWRefine(p *HWParams) error {
	return d.ioctl(ioctlHWRefine, unsafe.Pointer(p))
}

func (d *kernelDevice) HWParams(p *HWParams) error {
	return d.ioctl(ioctlHWParams, unsafe.Pointer(p))
}

func (d *kernelDevice) SWParams(p *SWParams) error {
	return d.ioctl(ioctlSWParams, unsafe.Pointer(p))
}

func (d *kernelDevice) Prepare() error { return d.ioctl(ioctlPrepare, nil) }
func (d *kernelDevice) Drain() error   { return d.ioctl(ioctlDrain, nil) }
func (d *kernelDevice) Drop() error    { return d.ioctl(ioctlDrop, nil) }

func (d *kernelDevice) WriteI(buf []int16, channels int) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	// The kernel reads buf through a pointer inside x: pin it for the call.
	var pin runtime.Pinner
	pin.Pin(&buf[0])
	defer pin.Unpin()
	x := xferi{buf: unsafe.Pointer(&buf[0]), frames: uint(len(buf) / channels)}
	if err := d.ioctl(ioctlWriteI, unsafe.Pointer(&x)); err != nil {
		return 0, err
	}
	return x.result, nil
}

func (d *kernelDevice) Wait(timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLOUT}}
	_, err := unix.Poll(fds, int(timeout/time.Millisecond))
	if err != nil && !errors.Is(err, unix.EINTR) {
		return err
	}
	return nil
}

func (d *kernelDevice) Close() error { return unix.Close(d.fd) }
