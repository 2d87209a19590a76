package relays

import (
	"testing"
	"unsafe"
)

// The ioctl structs must match include/uapi/linux/gpio.h byte for byte:
// the kernel checks the size encoded in the request number.
func TestChardevABISizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"gpiochip_info", unsafe.Sizeof(gpiochipInfo{}), 68},
		{"gpio_v2_line_info", unsafe.Sizeof(gpioV2LineInfo{}), 256},
		{"gpio_v2_line_request", unsafe.Sizeof(gpioV2LineRequest{}), 592},
		{"gpio_v2_line_values", unsafe.Sizeof(gpioV2LineValues{}), 16},
		{"gpio_v2_line_request.config", unsafe.Offsetof(gpioV2LineRequest{}.Config), 288},
		{"gpio_v2_line_request.fd", unsafe.Offsetof(gpioV2LineRequest{}.FD), 588},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
	// GPIO_V2_GET_LINE_IOCTL as the kernel headers spell it: 0xc250b407.
	if ioctlGetLine != 0xc250b407 {
		t.Errorf("GPIO_V2_GET_LINE_IOCTL %#x, want 0xc250b407", ioctlGetLine)
	}
}

// A line is requested once per process: looking it up again (AllOff at
// start, a config reload) must give the same line, holding the request.
func TestChardevLineFoundOnce(t *testing.T) {
	a := chardevLineAt("RELAY0", "/dev/gpiochip9", 3)
	b := chardevLineAt("RELAY0", "/dev/gpiochip9", 3)
	if a != b {
		t.Error("second lookup of /dev/gpiochip9 line 3 made a new line (the kernel would refuse its request as busy)")
	}
	if c := chardevLineAt("RELAY1", "/dev/gpiochip9", 4); c == a {
		t.Error("another offset gave the same line")
	}
}
