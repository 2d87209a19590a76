// Package ffmpegtest runs ffmpeg, the reference peer the codec tests
// compare against, and reads the raw audio it writes. ffmpeg missing is a
// test failure, not a skip (`make test` installs it). Only tests import it.
package ffmpegtest

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
)

// Path returns the ffmpeg binary, failing the test if there is none.
func Path(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("ffmpeg is required as the reference peer (apt-get install ffmpeg): %v", err)
	}
	return p
}

// Run runs ffmpeg quietly with args (overwriting outputs), failing the
// test with ffmpeg's output if it fails.
func Run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(Path(t), append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// ReadS16 reads a raw signed 16-bit little-endian file (ffmpeg's s16le).
func ReadS16(t testing.TB, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(b)/2)
	if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, pcm); err != nil {
		t.Fatal(err)
	}
	return pcm
}
