package demo

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/parkpage/parkpage/gateway/output/lineout"
)

// findSoundCard returns the first ALSA playback device (hw:CARD,DEV) that
// opens and accepts 48 kHz 16-bit audio, or "" when there is none (no
// sound card, or every device is held by a sound server).
func findSoundCard() string {
	pcms, _ := filepath.Glob("/proc/asound/card*/pcm*p")
	sort.Strings(pcms)
	for _, p := range pcms {
		var card, dev int
		if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(p))+" "+filepath.Base(p), "card%d pcm%dp", &card, &dev); err != nil {
			continue
		}
		name := fmt.Sprintf("hw:%d,%d", card, dev)
		if usableSoundCard(name) == nil {
			return name
		}
	}
	return ""
}

// usableSoundCard opens the device and sets it up as the line out would.
func usableSoundCard(name string) error {
	path, err := lineout.DevicePath(name)
	if err != nil {
		return err
	}
	d, err := lineout.OpenDevice(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := lineout.NewWriter(d, 48000); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
