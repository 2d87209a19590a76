package main

import (
	"bytes"
	le "encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/parkpage/parkpage/internal/config"
)

func TestRender(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		rate uint32
		text string
	}{
		{[]string{"-text", "Sales call on 704", "-codec", "g722"}, 16000, `"Sales call on seven oh four", g722`},
		{[]string{"-text", "Test", "-codec", "pcmu", "-chime", "none"}, 8000, `"Test", pcmu`},
		{[]string{"-slot", "704", "-zone", "all"}, 16000, `"Parked call on seven oh four", g722`},
	} {
		out := filepath.Join(dir, "out.wav")
		var stdout, stderr bytes.Buffer
		code := cmdRender(append(tc.args, "-o", out), &stdout, &stderr)
		if code != 0 || !strings.Contains(stderr.String(), tc.text) {
			t.Errorf("render %v: %d %q", tc.args, code, stderr.String())
			continue
		}
		b, err := os.ReadFile(out)
		if err != nil || len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
			t.Fatalf("render %v: not a WAV file (%v)", tc.args, err)
		}
		if ch, rate := le.LittleEndian.Uint16(b[22:]), le.LittleEndian.Uint32(b[24:]); ch != 1 || rate != tc.rate {
			t.Errorf("render %v: %d channels at %d Hz, want mono %d", tc.args, ch, rate, tc.rate)
		}
		if secs := float64(len(b)-44) / 2 / float64(tc.rate); secs < 0.5 {
			t.Errorf("render %v: %.2f s of audio", tc.args, secs)
		}
	}
	for _, args := range [][]string{
		{"-text", "x"},  // no -o
		{"-o", "x.wav"}, // nothing to say
		{"-text", "x", "-codec", "gsm", "-o", "x.wav"},    // bad codec
		{"-text", "x", "-zone", "nowhere", "-o", "x.wav"}, // bad zone
		{"-slot", "799", "-o", "x.wav"},                   // not a slot
	} {
		var stdout, stderr bytes.Buffer
		if code := cmdRender(args, &stdout, &stderr); code == 0 || stderr.Len() == 0 {
			t.Errorf("render %v: %d %q, want an error", args, code, stderr.String())
		}
	}
}

func TestRelaysOff(t *testing.T) {
	y := `
relays:
  amp: {pin: P1, role: page_active}
  zone1: {pin: P2, active_low: true}
`
	cfg, _, err := config.Parse("t.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	pins := map[string]*gpiotest.Pin{"P1": {N: "P1", L: gpio.High}, "P2": {N: "P2", L: gpio.Low}}
	resolve := func(name string) (gpio.PinOut, error) {
		if p := pins[name]; p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("no pin %s", name)
	}
	var stdout, stderr bytes.Buffer
	if code := relaysOff(cfg, resolve, &stdout, &stderr); code != 0 {
		t.Fatalf("relays-off: %d %s", code, stderr.String())
	}
	if pins["P1"].Read() != gpio.Low || pins["P2"].Read() != gpio.High {
		t.Errorf("after relays-off: P1 %v (want Low), P2 %v (active-low, want High)", pins["P1"].Read(), pins["P2"].Read())
	}
	// A pin that cannot be found is an error; the others are still driven off.
	delete(pins, "P1")
	pins["P2"].L = gpio.Low
	stdout.Reset()
	if code := relaysOff(cfg, resolve, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "P1") {
		t.Errorf("missing pin: %d %q", code, stderr.String())
	}
	if pins["P2"].Read() != gpio.High {
		t.Error("P2 not driven off when P1 is missing")
	}
	// No relays configured.
	def, _ := config.LoadDefault()
	stdout.Reset()
	if code := relaysOff(def, resolve, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "no relays") {
		t.Errorf("no relays: %d %q", code, stdout.String())
	}
}
