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

// HostResolver finds pins on the board parkpage runs on. A name the
// kernel gives a GPIO line ("GPIO17" on a Raspberry Pi, a USB adapter's
// line names) is driven through parkpage's own character-device requests,
// which set the line's level in the request itself: periph's driver
// switches a line to output at low before it sets the level asked for, a
// brief "on" for an active-low relay board at every start. Names only
// periph knows (pin numbers, header positions such as "P1_11") go to
// periph's host drivers, loaded once. A chip that appears after start (a
// USB GPIO adapter enumerating late) is found too.
func HostResolver() Resolver {
	return hostResolver(findChardevLine, func(name string) (gpio.PinOut, error) {
		hostOnce.Do(func() {
			if _, err := host.Init(); err != nil {
				hostErr = fmt.Errorf("load GPIO drivers: %w", err)
			}
		})
		if p := gpioreg.ByName(name); p != nil {
			return p, nil
		}
		return nil, hostErr
	})
}

// hostResolver looks a name up by kernel line name first, then in periph.
func hostResolver[L gpio.PinOut](byLine func(string) (L, error), byPeriph func(string) (gpio.PinOut, error)) Resolver {
	return func(name string) (gpio.PinOut, error) {
		if l, err := byLine(name); err == nil {
			return l, nil
		}
		p, err := byPeriph(name)
		if p != nil {
			return p, nil
		}
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no GPIO pin named %q on this board", name)
	}
}
