//go:build cgo

package tts

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStaticLink proves the appliance link: a fully static binary with the
// static_flite tag links (libflite.a's ALSA references resolved by
// alsa_static.c), runs, and speaks the same audio as this test binary.
func TestStaticLink(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "staticprobe")
	build := exec.Command(gobin, "build", "-tags", "netgo,osusergo,static_flite",
		"-ldflags", "-extldflags -static", "-o", bin, "./testdata/staticprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	if isDynamic(t, bin) {
		t.Fatal("static build produced a dynamically linked binary")
	}
	out, err := exec.Command(bin, "kal16").CombinedOutput()
	if err != nil {
		t.Fatalf("static binary: %v\n%s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("static binary printed %q", out)
	}
	e, err := New("kal16")
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := e.Synthesize(context.Background(), "Sales call on seven oh four")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(pcm) {
		t.Errorf("static binary spoke %d samples, this binary %d", n, len(pcm))
	}
}

// isDynamic reports whether the ELF file at path has a program
// interpreter (PT_INTERP), i.e. needs the dynamic loader.
func isDynamic(t *testing.T, path string) bool {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}
