//go:build !linux

package relays

import (
	"errors"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// findChardevLine: the GPIO character device is Linux's.
func findChardevLine(name string) (gpio.PinOut, error) {
	return nil, errors.New("no GPIO character device on this system")
}

// PulseOff: the GPIO character device is Linux's.
func PulseOff(name string, off int, hold time.Duration) error {
	return errors.New("no GPIO character device on this system")
}
