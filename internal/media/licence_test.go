package media

import (
	"os"
	"strings"
	"testing"
)

// The built-in hold music ships with its licence beside the code that
// makes it (the issue asks for royalty-free music with its licence in the
// repository).
func TestDefaultMusicLicence(t *testing.T) {
	b, err := os.ReadFile("MUSIC-LICENSE.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CC0 1.0", "defaultmusic.go", "park.music"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("MUSIC-LICENSE.md does not mention %q", want)
		}
	}
	if m, err := LoadMusic(""); err != nil || m.Source() != "built-in" {
		t.Fatalf("built-in music: %v", err)
	}
}
