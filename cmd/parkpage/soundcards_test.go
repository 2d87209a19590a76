package main

import (
	"slices"
	"testing"
)

func TestSoundCards(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string
	}{
		{"none", "--- no soundcards ---\n", nil},
		{"hda and usb", ` 0 [Intel          ]: HDA-Intel - HDA Intel
                      HDA Intel at 0xfebf0000 irq 29
 1 [Device         ]: USB-Audio - USB Audio Device
                      C-Media Electronics Inc. USB Audio Device at usb-0000:00:14.0-1, full speed
`, []string{
			`sound card 0 "Intel" (HDA-Intel - HDA Intel): device hw:CARD=Intel,DEV=0 or hw:0,0`,
			`sound card 1 "Device" (USB-Audio - USB Audio Device): device hw:CARD=Device,DEV=0 or hw:1,0`,
		}},
		{"pi jack", ` 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones
                      bcm2835 Headphones
`, []string{`sound card 0 "Headphones" (bcm2835_headpho - bcm2835 Headphones): device hw:CARD=Headphones,DEV=0 or hw:0,0`}},
	} {
		if got := soundCards(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
