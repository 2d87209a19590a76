//go:build !linux

package relays

import (
	"errors"

	"periph.io/x/conn/v3/gpio"
)

// findChardevLine: the GPIO character device is Linux's.
func findChardevLine(name string) (gpio.PinOut, error) {
	return nil, errors.New("no GPIO character device on this system")
}
