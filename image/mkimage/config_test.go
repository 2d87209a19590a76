package main

import (
	"slices"
	"testing"
)

// The Pi image turns the firmware's audio on in config.txt (gok appends
// BootloaderExtraLines to it); the other targets have no config.txt lines.
func TestInstanceConfigBootloaderLines(t *testing.T) {
	for name, want := range map[string][]string{"pi": {"dtparam=audio=on"}, "amd64": nil, "arm64": nil} {
		cfg, err := instanceConfig(t.TempDir(), targets[name], "/repo", "", "test")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.BootloaderExtraLines, want) {
			t.Errorf("%s: BootloaderExtraLines %q, want %q", name, cfg.BootloaderExtraLines, want)
		}
	}
}
