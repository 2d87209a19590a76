package lineout

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/config"
)

// The control structs must match include/uapi/sound/asound.h (64-bit): the
// kernel checks the size encoded in the request number.
func TestMixerABI(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"snd_ctl_elem_id", unsafe.Sizeof(ctlElemID{}), 64},
		{"snd_ctl_elem_list", unsafe.Sizeof(ctlElemList{}), 80},
		{"snd_ctl_elem_list.pids", unsafe.Offsetof(ctlElemList{}.Pids), 16},
		{"snd_ctl_elem_info", unsafe.Sizeof(ctlElemInfo{}), 272},
		{"snd_ctl_elem_info.value", unsafe.Offsetof(ctlElemInfo{}.Value), 80},
		{"snd_ctl_elem_value", unsafe.Sizeof(ctlElemValue{}), 1224},
		{"snd_ctl_elem_value.value", unsafe.Offsetof(ctlElemValue{}.Value), 72},
		// The request numbers as gcc computes them from the headers.
		{"SNDRV_CTL_IOCTL_ELEM_LIST", ioctlElemList, 0xc0505510},
		{"SNDRV_CTL_IOCTL_ELEM_INFO", ioctlElemInfo, 0xc1105511},
		{"SNDRV_CTL_IOCTL_ELEM_READ", ioctlElemRead, 0xc4c85512},
		{"SNDRV_CTL_IOCTL_ELEM_WRITE", ioctlElemWrite, 0xc4c85513},
		{"SNDRV_CTL_IOCTL_TLV_READ", ioctlTLVRead, 0xc008551a},
	} {
		if c.got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// tlvScale is DECLARE_TLV_DB_SCALE(min, step, mute) in 0.01 dB.
func tlvScale(min int32, step uint32, mute bool) []uint32 {
	if mute {
		step |= 0x10000
	}
	return []uint32{tlvDBScale, 8, uint32(min), step}
}

func TestPlaybackPlan(t *testing.T) {
	const rw = ctlAccessWrite | 1 | ctlAccessTLVRead
	for _, c := range []struct {
		name string
		ctls []Control
		want string
	}{{
		// QEMU's hda-output with the generic codec, as the kernel starts
		// it: muted at -74 dB.
		name: "qemu hda",
		ctls: []Control{
			{Name: "Master Playback Volume", Type: ctlTypeInteger, Access: rw, Count: 2, Min: 0, Max: 74, Values: []int64{0, 0}, DB: tlvScale(-7400, 100, true)},
			{Name: "Master Playback Switch", Type: ctlTypeBoolean, Access: rw, Count: 2, Max: 1, Values: []int64{0, 0}},
		},
		want: "[Master Playback Volume [0 0]→[74 74] Master Playback Switch [0 0]→[1 1]]",
	}, {
		// A codec with gain above 0 dB stops at 0 dB; inputs looped into
		// the output, the beep and read-only or inactive controls are left.
		name: "realtek",
		ctls: []Control{
			{Name: "Front Playback Volume", Type: ctlTypeInteger, Access: rw, Count: 2, Min: 0, Max: 87, Values: []int64{0, 0}, DB: tlvScale(-6525, 75, false)},
			{Name: "Mic Playback Volume", Type: ctlTypeInteger, Access: rw, Count: 2, Max: 31, Values: []int64{0, 0}},
			{Name: "Mic Playback Switch", Type: ctlTypeBoolean, Access: rw, Count: 2, Max: 1, Values: []int64{0, 0}},
			{Name: "Beep Playback Switch", Type: ctlTypeBoolean, Access: rw, Count: 1, Max: 1, Values: []int64{0}},
			{Name: "Line Playback Switch", Type: ctlTypeBoolean, Access: rw, Count: 2, Max: 1, Values: []int64{0, 0}},
			{Name: "Speaker Playback Switch", Type: ctlTypeBoolean, Access: 1, Count: 2, Max: 1, Values: []int64{0, 0}},
			{Name: "Headphone Playback Switch", Type: ctlTypeBoolean, Access: rw | ctlAccessInactive, Count: 2, Max: 1, Values: []int64{0, 0}},
		},
		want: "[Front Playback Volume [0 0]→[87 87]]",
	}, {
		// The Pi's bcm2835 (-102.39..+4 dB in 0.01 dB steps) at 0 dB, not +4.
		name: "pi jack",
		ctls: []Control{
			{Name: "PCM Playback Volume", Type: ctlTypeInteger, Access: rw, Count: 1, Min: -10239, Max: 400, Values: []int64{-2000}, DB: tlvScale(-10239, 1, true)},
			{Name: "PCM Playback Switch", Type: ctlTypeBoolean, Access: rw, Count: 1, Max: 1, Values: []int64{1}},
		},
		want: "[PCM Playback Volume [-2000]→[0]]",
	}, {
		// A USB adapter: min/max dB scale, and a volume without one (max).
		name: "usb",
		ctls: []Control{
			{Name: "Speaker Playback Volume", Type: ctlTypeInteger, Access: rw, Count: 2, Min: 0, Max: 151, Values: []int64{100, 100}, DB: []uint32{tlvDBMinMax, 8, uint32(0xffffffff - 2831 + 1), 189}},
			{Name: "PCM Playback Volume", Type: ctlTypeInteger, Access: rw, Count: 1, Min: 0, Max: 30, Values: []int64{3}},
			{Name: "Speaker Playback Switch", Type: ctlTypeBoolean, Access: rw, Count: 1, Max: 1, Values: []int64{1}},
		},
		// -28.31..+1.89 dB over 0..151: 0 dB at 2831·151/3020 = 141.
		want: "[Speaker Playback Volume [100 100]→[141 141] PCM Playback Volume [3]→[30]]",
	}, {
		name: "already set",
		ctls: []Control{
			{Name: "Master Playback Volume", Type: ctlTypeInteger, Access: rw, Count: 2, Max: 74, Values: []int64{74, 74}, DB: tlvScale(-7400, 100, true)},
			{Name: "Master Playback Switch", Type: ctlTypeBoolean, Access: rw, Count: 2, Max: 1, Values: []int64{1, 1}},
		},
		want: "[]",
	}} {
		if got := fmt.Sprint(playbackPlan(c.ctls)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestValueAt0dB(t *testing.T) {
	for _, c := range []struct {
		name   string
		tlv    []uint32
		lo, hi int64
		want   int64
		ok     bool
	}{
		{"scale", tlvScale(-4650, 150, false), 0, 63, 31, true},
		{"scale above 0 dB only", tlvScale(100, 50, false), 0, 10, 0, true},
		{"minmax ending below 0 dB", []uint32{tlvDBMinMax, 8, uint32(0xffffffff - 6000 + 1), uint32(0xffffffff - 1000 + 1)}, 0, 50, 50, true},
		// Two ranges: 0..9 from -60 dB in 5 dB steps, 10..20 from -10 dB in
		// 1 dB steps: 0 dB at 20.
		{"range", []uint32{tlvDBRange, 48, 0, 9, tlvDBScale, 8, uint32(0xffffffff - 6000 + 1), 500, 10, 20, tlvDBScale, 8, uint32(0xffffffff - 1000 + 1), 100}, 0, 20, 20, true},
		{"none", nil, 0, 10, 0, false},
		{"truncated", []uint32{tlvDBScale, 8, 1}, 0, 10, 0, false},
	} {
		got, ok := valueAt0dB(c.tlv, c.lo, c.hi)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// The page's card is set for playback before the device opens; a mixer
// that fails is logged, and the page still plays.
func TestPlaySetsMixerFirst(t *testing.T) {
	d := newFake([]uint32{48000}, []uint32{2})
	var calls []string
	mixer := func(path string) ([]MixerChange, error) {
		calls = append(calls, fmt.Sprintf("mixer %s, device opened %v", path, len(d.calls) > 0))
		return nil, errors.New("no control device")
	}
	o, err := New("shop/outputs[0]", &config.Output{Type: "lineout", Device: "hw:1,0", Rate: 48000}, Options{Open: d.opener(nil), Mixer: mixer})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Play(context.Background(), &output.Playback{ID: "p1", Audio: staticAudio(make([]int16, 3200))}); err != nil {
		t.Fatalf("page with a failing mixer: %v", err)
	}
	if want := "[mixer /dev/snd/pcmC1D0p, device opened false]"; fmt.Sprint(calls) != want {
		t.Errorf("mixer calls %v, want %s", calls, want)
	}
	if len(d.written) == 0 {
		t.Error("nothing played")
	}
}
