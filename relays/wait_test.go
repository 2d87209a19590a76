package relays

import (
	"errors"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// lateChip resolves GPIO27 only from its appear-th lookup on, as a GPIO chip
// that enumerates after parkpage started; the other pins at once.
type lateChip struct {
	mu      sync.Mutex
	pins    map[string]*gpiotest.Pin
	lookups int // of GPIO27
	appear  int
	// offAtAppearance: the other pins' levels when GPIO27 appeared.
	offAtAppearance bool
}

func (c *lateChip) resolve(n string) (gpio.PinOut, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == "GPIO27" {
		c.lookups++
		if c.lookups < c.appear {
			return nil, errors.New("no GPIO pin named GPIO27 on this board")
		}
		c.offAtAppearance = c.pins["GPIO5"].L == gpio.Low && c.pins["GPIO17"].L == gpio.Low
	}
	return c.pins[n], nil
}

func TestNewWaitsForLatePins(t *testing.T) {
	cfg := testConfig()
	c := &lateChip{pins: map[string]*gpiotest.Pin{}, appear: 4}
	for _, rc := range cfg.Relays {
		c.pins[rc.Pin] = &gpiotest.Pin{N: rc.Pin, L: gpio.High}
	}
	b, err := New(ConfigOf(cfg), Options{Resolve: c.resolve, WaitPins: time.Minute})
	if err != nil {
		t.Fatalf("New with a pin appearing late: %v", err)
	}
	defer b.Close()
	if c.lookups != c.appear {
		t.Errorf("GPIO27 looked up %d times, want %d", c.lookups, c.appear)
	}
	if !c.offAtAppearance {
		t.Error("the pins present at start were not driven off while waiting for the late one")
	}
	for n, rc := range cfg.Relays {
		off := gpio.Low
		if rc.ActiveLow {
			off = gpio.High
		}
		if c.pins[rc.Pin].L != off {
			t.Errorf("relay %s (%s) not driven off", n, rc.Pin)
		}
	}
}

func TestNewGivesUpWaiting(t *testing.T) {
	cfg := testConfig()
	c := &lateChip{pins: map[string]*gpiotest.Pin{}, appear: 1 << 30}
	for _, rc := range cfg.Relays {
		c.pins[rc.Pin] = &gpiotest.Pin{N: rc.Pin, L: gpio.High}
	}
	start := time.Now()
	_, err := New(ConfigOf(cfg), Options{Resolve: c.resolve, WaitPins: 3 * pinPoll})
	if err == nil {
		t.Fatal("New with a pin that never appears succeeded")
	}
	if took := time.Since(start); took < 3*pinPoll {
		t.Errorf("gave up after %v, want at least %v", took, 3*pinPoll)
	}
	if c.lookups < 3 {
		t.Errorf("GPIO27 looked up %d times while waiting", c.lookups)
	}
	// Without WaitPins an injected resolver is asked once.
	c.lookups = 0
	if _, err := New(ConfigOf(cfg), Options{Resolve: c.resolve}); err == nil || c.lookups != 1 {
		t.Errorf("New without WaitPins: err %v after %d lookups, want an error after 1", err, c.lookups)
	}
}
