package relays

import (
	"fmt"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

var (
	hostOnce sync.Once
	hostErr  error
)

// HostResolver finds pins on the board parkpage runs on: it loads periph's
// host drivers once (on Linux the GPIO character-device driver, which names
// Raspberry Pi lines "GPIO17" and so on) and looks names up in gpioreg.
// A name periph does not know is then looked for by line name on the GPIO
// chips present now, so a chip that appeared after the drivers loaded (a
// USB GPIO adapter enumerating late) is found too.
func HostResolver() Resolver {
	return func(name string) (gpio.PinOut, error) {
		hostOnce.Do(func() {
			if _, err := host.Init(); err != nil {
				hostErr = fmt.Errorf("load GPIO drivers: %w", err)
			}
		})
		if p := gpioreg.ByName(name); p != nil {
			return p, nil
		}
		if l, err := findChardevLine(name); err == nil {
			return l, nil
		}
		if hostErr != nil {
			return nil, hostErr
		}
		return nil, fmt.Errorf("no GPIO pin named %q on this board", name)
	}
}
