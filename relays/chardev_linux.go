package relays

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"github.com/parkpage/parkpage/internal/ioctl"
)

// periph's GPIO character-device driver lists the chips once, when the
// host drivers load; a chip that appears later (a USB GPIO adapter that
// enumerates after parkpage started) is invisible to it. chardevLine finds
// a line by name on the chips present now, straight through the kernel's
// GPIO v2 ioctls (include/uapi/linux/gpio.h).

const (
	gpioMaxNameSize = 32
	gpioV2LinesMax  = 64
	gpioV2AttrsMax  = 10

	gpioV2LineFlagOutput    = 1 << 3
	gpioV2LineAttrIDOutputs = 2 // GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES
)

type gpiochipInfo struct {
	Name  [gpioMaxNameSize]byte
	Label [gpioMaxNameSize]byte
	Lines uint32
}

type gpioV2LineAttribute struct {
	ID      uint32
	Padding uint32
	Value   uint64 // flags, values or debounce period
}

type gpioV2LineConfigAttribute struct {
	Attr gpioV2LineAttribute
	Mask uint64
}

type gpioV2LineConfig struct {
	Flags    uint64
	NumAttrs uint32
	Padding  [5]uint32
	Attrs    [gpioV2AttrsMax]gpioV2LineConfigAttribute
}

type gpioV2LineRequest struct {
	Offsets         [gpioV2LinesMax]uint32
	Consumer        [gpioMaxNameSize]byte
	Config          gpioV2LineConfig
	NumLines        uint32
	EventBufferSize uint32
	Padding         [5]uint32
	FD              int32
}

type gpioV2LineInfo struct {
	Name     [gpioMaxNameSize]byte
	Consumer [gpioMaxNameSize]byte
	Offset   uint32
	NumAttrs uint32
	Flags    uint64
	Attrs    [gpioV2AttrsMax]gpioV2LineAttribute
	Padding  [4]uint32
}

type gpioV2LineValues struct {
	Bits, Mask uint64
}

func gpioIOC(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 0xB4<<8 | nr }

var (
	ioctlChipInfo  = gpioIOC(2, 0x01, unsafe.Sizeof(gpiochipInfo{}))
	ioctlLineInfo  = gpioIOC(3, 0x05, unsafe.Sizeof(gpioV2LineInfo{}))
	ioctlGetLine   = gpioIOC(3, 0x07, unsafe.Sizeof(gpioV2LineRequest{}))
	ioctlSetValues = gpioIOC(3, 0x0F, unsafe.Sizeof(gpioV2LineValues{}))
)

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// chardevLine is one GPIO line found by name. It is requested from the
// kernel as an output on the first Out and kept for the process's life,
// as periph does with its own lines.
type chardevLine struct {
	name   string
	chip   string // /dev/gpiochipN
	offset uint32

	mu sync.Mutex
	fd int // the line request; -1 before the first Out
}

// chardevLines are the lines found so far, by chip and offset: a line is
// requested once per process, so a second lookup (relays.AllOff, a
// config reload) must get the same chardevLine, not a new request the
// kernel refuses as busy.
var chardevLines struct {
	sync.Mutex
	m map[string]*chardevLine
}

// findChardevLine looks for a line called name on every GPIO chip.
func findChardevLine(name string) (*chardevLine, error) {
	chips, err := filepath.Glob("/dev/gpiochip*")
	if err != nil {
		return nil, err
	}
	for _, chip := range chips {
		off, ok, err := lineOffset(chip, name)
		if err != nil {
			continue // not a chip we can read (or gone again)
		}
		if ok {
			return chardevLineAt(name, chip, off), nil
		}
	}
	return nil, fmt.Errorf("no GPIO line named %q on %d chips", name, len(chips))
}

func chardevLineAt(name, chip string, off uint32) *chardevLine {
	chardevLines.Lock()
	defer chardevLines.Unlock()
	key := fmt.Sprintf("%s:%d", chip, off)
	if l := chardevLines.m[key]; l != nil {
		return l
	}
	if chardevLines.m == nil {
		chardevLines.m = map[string]*chardevLine{}
	}
	l := &chardevLine{name: name, chip: chip, offset: off, fd: -1}
	chardevLines.m[key] = l
	return l
}

func lineOffset(chip, name string) (uint32, bool, error) {
	fd, err := unix.Open(chip, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(fd)
	var info gpiochipInfo
	if err := ioctl.Do(fd, ioctlChipInfo, unsafe.Pointer(&info)); err != nil {
		return 0, false, fmt.Errorf("%s: chip info: %w", chip, err)
	}
	for off := uint32(0); off < info.Lines; off++ {
		li := gpioV2LineInfo{Offset: off}
		if err := ioctl.Do(fd, ioctlLineInfo, unsafe.Pointer(&li)); err != nil {
			return 0, false, fmt.Errorf("%s: line %d info: %w", chip, off, err)
		}
		if cString(li.Name[:]) == name {
			return off, true, nil
		}
	}
	return 0, false, nil
}

func (l *chardevLine) String() string   { return fmt.Sprintf("%s(%s:%d)", l.name, l.chip, l.offset) }
func (l *chardevLine) Name() string     { return l.name }
func (l *chardevLine) Number() int      { return int(l.offset) }
func (l *chardevLine) Function() string { return "Out" }
func (l *chardevLine) Halt() error      { return nil }

func (l *chardevLine) PWM(gpio.Duty, physic.Frequency) error { return errors.New("relays: no PWM") }

// Out drives the line: the first call requests it as an output at level
// v, later calls set the value.
func (l *chardevLine) Out(v gpio.Level) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bit uint64
	if v == gpio.High {
		bit = 1
	}
	if l.fd >= 0 {
		vals := gpioV2LineValues{Bits: bit, Mask: 1}
		err := ioctl.Do(l.fd, ioctlSetValues, unsafe.Pointer(&vals))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("%s: set value: %w", l, err)
		}
		// The chip went away (a USB adapter unplugged): request the
		// line again below, in case it is back.
		unix.Close(l.fd)
		l.fd = -1
	}
	chip, err := unix.Open(l.chip, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(chip)
	req := gpioV2LineRequest{NumLines: 1}
	req.Offsets[0] = l.offset
	copy(req.Consumer[:gpioMaxNameSize-1], "parkpage")
	req.Config.Flags = gpioV2LineFlagOutput
	req.Config.NumAttrs = 1
	req.Config.Attrs[0] = gpioV2LineConfigAttribute{Attr: gpioV2LineAttribute{ID: gpioV2LineAttrIDOutputs, Value: bit}, Mask: 1}
	if err := ioctl.Do(chip, ioctlGetLine, unsafe.Pointer(&req)); err != nil {
		return fmt.Errorf("%s: request as output: %w", l, err)
	}
	l.fd = int(req.FD)
	return nil
}

// PulseOff drives the GPIO line called name to level off and releases it
// after hold: for a watcher process (parkpage-guard) that must leave the
// line free for the restarted parkpage. A controller that keeps a
// released line's level (a Pi's) stays off; hold lets the level settle.
func PulseOff(name string, off int, hold time.Duration) error {
	chips, err := filepath.Glob("/dev/gpiochip*")
	if err != nil {
		return err
	}
	for _, chip := range chips {
		offset, ok, err := lineOffset(chip, name)
		if err != nil || !ok {
			continue
		}
		fd, err := unix.Open(chip, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		req := gpioV2LineRequest{NumLines: 1}
		req.Offsets[0] = offset
		copy(req.Consumer[:gpioMaxNameSize-1], "parkpage-guard")
		req.Config.Flags = gpioV2LineFlagOutput
		req.Config.NumAttrs = 1
		req.Config.Attrs[0] = gpioV2LineConfigAttribute{Attr: gpioV2LineAttribute{ID: gpioV2LineAttrIDOutputs, Value: uint64(off & 1)}, Mask: 1}
		err = ioctl.Do(fd, ioctlGetLine, unsafe.Pointer(&req))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s (%s:%d): request as output: %w", name, chip, offset, err)
		}
		time.Sleep(hold)
		return unix.Close(int(req.FD))
	}
	return fmt.Errorf("no GPIO line named %q on %d chips", name, len(chips))
}
