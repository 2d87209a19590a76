package lineout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/internal/ioctl"
)

// ALSA kernel drivers start with their mixer muted (the HDA codecs at
// minimum volume, muted): on a desktop alsactl unmutes them at boot. The
// appliance has no alsactl, so before a page the line out sets the card's
// playback path itself: every output "Playback Switch" on, every output
// "Playback Volume" at 0 dB (the page's level is announce.loudness; the
// amplifier's input gain does the rest), or at its maximum if the driver
// gives no dB scale or stops short of 0 dB. Inputs looped into the output
// (Mic, Line in, CD, Beep) are left alone: unmuting them would put their
// noise on the speakers.

// playbackControl matches the mixer controls of the output path.
var playbackControl = regexp.MustCompile(`^(Master|PCM|Front|Line Out|Speaker|Headphone|Surround|Center|LFE|Side)( [^ ]+)* Playback (Switch|Volume)$`)

// Control is one mixer control as the driver describes it (the part a
// playback path needs).
type Control struct {
	NumID  uint32
	Name   string
	Type   int32 // ctlTypeBoolean or ctlTypeInteger (others are skipped)
	Access uint32
	Count  int   // values (channels)
	Min    int64 // integer controls' range
	Max    int64
	Values []int64 // current values
	// DB is the value range's dB scale (TLV) in 0.01 dB, nil if none.
	DB []uint32
}

// ALSA control ABI constants (include/uapi/sound/asound.h, sound/tlv.h).
const (
	ctlTypeBoolean = 1
	ctlTypeInteger = 2
	ctlIfaceMixer  = 2

	ctlAccessWrite    = 1 << 1
	ctlAccessTLVRead  = 1 << 4
	ctlAccessInactive = 1 << 8

	tlvDBScale      = 1
	tlvDBLinear     = 2
	tlvDBRange      = 3
	tlvDBMinMax     = 4
	tlvDBMinMaxMute = 5
)

// MixerChange is one control set by SetPlaybackPath.
type MixerChange struct {
	Name     string
	From, To []int64
}

func (c MixerChange) String() string { return fmt.Sprintf("%s %v→%v", c.Name, c.From, c.To) }

// playbackPlan returns the values to write: the output path's switches on,
// its volumes at 0 dB; controls already there are left out.
func playbackPlan(ctls []Control) []MixerChange {
	var out []MixerChange
	for _, c := range ctls {
		if !playbackControl.MatchString(c.Name) || c.Access&ctlAccessWrite == 0 || c.Access&ctlAccessInactive != 0 || c.Count < 1 {
			continue
		}
		var v int64
		switch {
		case c.Type == ctlTypeBoolean && strings.HasSuffix(c.Name, " Switch"):
			v = 1
		case c.Type == ctlTypeInteger && strings.HasSuffix(c.Name, " Volume"):
			v = zeroDB(c)
		default:
			continue
		}
		to := make([]int64, c.Count)
		same := len(c.Values) == c.Count
		for i := range to {
			to[i] = v
			if same && c.Values[i] != v {
				same = false
			}
		}
		if !same {
			out = append(out, MixerChange{Name: c.Name, From: c.Values, To: to})
		}
	}
	return out
}

// zeroDB is the control value closest to 0 dB without going above it, by
// its dB scale; the maximum if it has none.
func zeroDB(c Control) int64 {
	if v, ok := valueAt0dB(c.DB, c.Min, c.Max); ok {
		return max(c.Min, min(c.Max, v))
	}
	return c.Max
}

// valueAt0dB reads one TLV dB description of the range [lo, hi].
func valueAt0dB(tlv []uint32, lo, hi int64) (int64, bool) {
	if len(tlv) < 2 || int(tlv[1])/4 > len(tlv)-2 {
		return 0, false
	}
	typ, data := tlv[0], tlv[2:2+int(tlv[1])/4]
	switch typ {
	case tlvDBScale: // [min dB, step dB | mute flag]
		if len(data) < 2 {
			return 0, false
		}
		minDB, step := int64(int32(data[0])), int64(data[1]&0xffff)
		if step == 0 {
			return 0, false
		}
		if minDB >= 0 {
			return lo, true
		}
		return lo + (-minDB)/step, true
	case tlvDBLinear, tlvDBMinMax, tlvDBMinMaxMute: // [min dB, max dB] over the range
		if len(data) < 2 || hi <= lo {
			return 0, false
		}
		minDB, maxDB := int64(int32(data[0])), int64(int32(data[1]))
		if tlv[0] == tlvDBLinear {
			// Linear in amplitude; the 0 dB point is (hi-lo)·10^(-maxDB/20)
			// above lo: only a scale ending at 0 dB or above is common.
			if maxDB <= 0 {
				return hi, true
			}
			return 0, false
		}
		if maxDB <= minDB || maxDB <= 0 {
			return hi, true
		}
		if minDB >= 0 {
			return lo, true
		}
		return lo + (-minDB)*(hi-lo)/(maxDB-minDB), true
	case tlvDBRange: // (min value, max value, TLV)...
		best, found := int64(0), false
		for len(data) >= 4 {
			rlo, rhi := int64(data[0]), int64(data[1])
			n := 2 + int(data[3])/4
			if n > len(data)-2 {
				return 0, false
			}
			sub := data[2 : 2+n]
			if v, ok := valueAt0dB(sub, rlo, rhi); ok && v >= rlo && v <= rhi {
				// The highest sub-range that reaches 0 dB wins: ranges
				// are listed low to high.
				best, found = v, true
			}
			data = data[2+n:]
		}
		return best, found
	}
	return 0, false
}

// The kernel's control ABI (64-bit layouts: amd64 and arm64).

type ctlElemID struct {
	NumID     uint32
	Iface     int32
	Device    uint32
	Subdevice uint32
	Name      [44]byte
	Index     uint32
}

type ctlElemList struct {
	Offset, Space, Used, Count uint32
	Pids                       uintptr
	Reserved                   [50]byte
}

type ctlElemInfo struct {
	ID     ctlElemID
	Type   int32
	Access uint32
	Count  uint32
	Owner  int32
	Value  [128]byte // union: integer {min, max, step} as int64 on 64-bit
	_      [64]byte
}

type ctlElemValue struct {
	ID       ctlElemID
	Indirect uint32
	_        uint32
	Value    [128]int64 // integer values (long) on 64-bit
	_        [128]byte
}

func iocU(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'U'<<8 | nr }

var (
	ioctlElemList  = iocU(iocRead|iocWrite, 0x10, unsafe.Sizeof(ctlElemList{}))
	ioctlElemInfo  = iocU(iocRead|iocWrite, 0x11, unsafe.Sizeof(ctlElemInfo{}))
	ioctlElemRead  = iocU(iocRead|iocWrite, 0x12, unsafe.Sizeof(ctlElemValue{}))
	ioctlElemWrite = iocU(iocRead|iocWrite, 0x13, unsafe.Sizeof(ctlElemValue{}))
	ioctlTLVRead   = iocU(iocRead|iocWrite, 0x1a, 8) // struct snd_ctl_tlv's header
)

var pcmCardRe = regexp.MustCompile(`^/dev/snd/pcmC([0-9]+)D[0-9]+p$`)

// SetPlaybackPath unmutes the playback path of the card of pcmPath
// (/dev/snd/pcmC0D0p: /dev/snd/controlC0) at 0 dB, and returns what it
// changed.
func SetPlaybackPath(pcmPath string) ([]MixerChange, error) {
	m := pcmCardRe.FindStringSubmatch(pcmPath)
	if m == nil {
		return nil, fmt.Errorf("mixer: %s is not a /dev/snd/pcmC*D*p device", pcmPath)
	}
	card, _ := strconv.Atoi(m[1])
	path := fmt.Sprintf("/dev/snd/controlC%d", card)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mixer: open %s: %w", path, err)
	}
	defer unix.Close(fd)
	ctls, err := readControls(fd)
	if err != nil {
		return nil, fmt.Errorf("mixer %s: %w", path, err)
	}
	plan := playbackPlan(ctls)
	byName := map[string]Control{}
	for _, c := range ctls {
		byName[c.Name] = c
	}
	var errs []error
	var done []MixerChange
	for _, ch := range plan {
		v := ctlElemValue{ID: ctlElemID{NumID: byName[ch.Name].NumID}}
		copy(v.Value[:], ch.To)
		if err := ioctl.Do(fd, ioctlElemWrite, unsafe.Pointer(&v)); err != nil {
			errs = append(errs, fmt.Errorf("set %s: %w", ch.Name, err))
			continue
		}
		done = append(done, ch)
	}
	if err := errors.Join(errs...); err != nil {
		return done, fmt.Errorf("mixer %s: %w", path, err)
	}
	return done, nil
}

// readControls lists the card's mixer controls with their ranges, values
// and dB scales.
func readControls(fd int) ([]Control, error) {
	var l ctlElemList
	if err := ioctl.Do(fd, ioctlElemList, unsafe.Pointer(&l)); err != nil {
		return nil, fmt.Errorf("list controls: %w", err)
	}
	if l.Count == 0 {
		return nil, nil
	}
	ids := make([]ctlElemID, l.Count)
	l = ctlElemList{Space: uint32(len(ids)), Pids: uintptr(unsafe.Pointer(&ids[0]))}
	err := ioctl.Do(fd, ioctlElemList, unsafe.Pointer(&l))
	ids = ids[:min(int(l.Used), len(ids))]
	if err != nil {
		return nil, fmt.Errorf("list controls: %w", err)
	}
	var out []Control
	for _, id := range ids {
		if id.Iface != ctlIfaceMixer {
			continue
		}
		name := string(bytes.TrimRight(id.Name[:], "\x00"))
		if !playbackControl.MatchString(name) {
			continue
		}
		info := ctlElemInfo{ID: ctlElemID{NumID: id.NumID}}
		if err := ioctl.Do(fd, ioctlElemInfo, unsafe.Pointer(&info)); err != nil {
			return nil, fmt.Errorf("control %q info: %w", name, err)
		}
		c := Control{NumID: id.NumID, Name: name, Type: info.Type, Access: info.Access, Count: int(min(info.Count, 128))}
		if c.Type == ctlTypeInteger {
			c.Min = int64(binary.NativeEndian.Uint64(info.Value[0:]))
			c.Max = int64(binary.NativeEndian.Uint64(info.Value[8:]))
			if c.Access&ctlAccessTLVRead != 0 {
				c.DB = readTLV(fd, id.NumID)
			}
		}
		v := ctlElemValue{ID: ctlElemID{NumID: id.NumID}}
		if err := ioctl.Do(fd, ioctlElemRead, unsafe.Pointer(&v)); err == nil {
			c.Values = append([]int64(nil), v.Value[:c.Count]...)
		}
		out = append(out, c)
	}
	return out, nil
}

// readTLV reads a control's dB description (type, length, data...); nil
// if it has none.
func readTLV(fd int, numid uint32) []uint32 {
	buf := make([]uint32, 2+64)
	buf[0], buf[1] = numid, uint32(4*(len(buf)-2))
	if err := ioctl.Do(fd, ioctlTLVRead, unsafe.Pointer(&buf[0])); err != nil {
		return nil
	}
	tlv := buf[2:]
	if len(tlv) < 2 || int(tlv[1])/4 > len(tlv)-2 {
		return nil
	}
	return append([]uint32(nil), tlv[:2+tlv[1]/4]...)
}
