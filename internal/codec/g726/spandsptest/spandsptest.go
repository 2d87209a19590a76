// Package spandsptest runs spandsp's G.726 encoder and decoder for tests:
// an implementation independent of package g726, built from a small C
// program (../testdata/spandsp_g726.c) against Debian's libspandsp-dev
// (Makefile APT_TEST) with gcc.
package spandsptest

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// G726 encodes 8 kHz pcm with spandsp's G.726 at 24 kbit/s, packed "left"
// (first code in the high bits) or "right" (RFC 3551), and returns the bytes
// and spandsp's own decoding of them.
func G726(tb testing.TB, pcm []int16, packing string) (enc []byte, dec []int16) {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "..", "testdata", "spandsp_g726.c")
	dir := tb.TempDir()
	bin := filepath.Join(dir, "spandsp_g726")
	if out, err := exec.Command("gcc", "-O1", "-o", bin, src, "-lspandsp").CombinedOutput(); err != nil {
		tb.Fatalf("build the spandsp reference (needs gcc and libspandsp-dev): %v\n%s", err, out)
	}
	var in bytes.Buffer
	_ = binary.Write(&in, binary.NativeEndian, pcm)
	encPath, decPath := filepath.Join(dir, "enc"), filepath.Join(dir, "dec")
	run := exec.Command(bin, packing, encPath, decPath)
	run.Stdin = &in
	if out, err := run.CombinedOutput(); err != nil {
		tb.Fatalf("spandsp reference: %v\n%s", err, out)
	}
	enc, err := os.ReadFile(encPath)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := os.ReadFile(decPath)
	if err != nil {
		tb.Fatal(err)
	}
	dec = make([]int16, len(raw)/2)
	_ = binary.Read(bytes.NewReader(raw), binary.NativeEndian, dec)
	return enc, dec
}
