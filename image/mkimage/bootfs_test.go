package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGrowBoot builds a small disk like gok's (a full FAT16 at sector
// 8192), grows it and checks the files, the free space and the MBR LBAs.
func TestGrowBoot(t *testing.T) {
	for _, tool := range []string{"mkfs.vfat", "mcopy", "mshowfat", "minfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing (apt-get install dosfstools mtools): %v", tool, err)
		}
	}
	dir := t.TempDir()
	kernel := make([]byte, 3<<20+123)
	rand.Read(kernel)
	files := map[string][]byte{"vmlinuz": kernel, "cmdline.txt": []byte("console=ttyS0 root=PARTUUID=1/PARTNROFF=1\n"),
		"EFI/BOOT/BOOTX64.EFI": []byte("efi stub"), "loader/entries/gokrazy.conf": []byte("options console=ttyS0 root=PARTUUID=1/PARTNROFF=1\n")}
	// The "gok" FAT: a padding file first, so the kernel does not start at
	// the first data cluster and the rebuilt LBAs differ.
	small := filepath.Join(dir, "small.fat")
	must(t, "mkfs.vfat", "-F", "16", "-C", small, "16384")
	pad := filepath.Join(dir, "pad")
	os.WriteFile(pad, make([]byte, 1<<20), 0o644)
	must(t, "mcopy", "-i", small, pad, "::pad")
	must(t, "mmd", "-i", small, "::EFI", "::EFI/BOOT", "::loader", "::loader/entries")
	for name, b := range files {
		p := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
		os.WriteFile(p, b, 0o644)
		must(t, "mcopy", "-i", small, p, "::"+name)
	}
	const start, size = 8192 * 512, 100 << 20
	img := filepath.Join(dir, "disk.img")
	f, _ := os.Create(img)
	f.Truncate(start + size + 1<<20)
	sb, _ := os.ReadFile(small)
	f.WriteAt(sb, start)
	f.WriteAt([]byte{0x55, 0xAA}, 510)
	f.Close()

	if err := growBoot(img, start, size); err != nil {
		t.Fatal(err)
	}
	fat := fmt.Sprintf("%s@@%d", img, start)
	for name, want := range files {
		got, err := exec.Command("mtype", "-i", fat, "::"+name).Output()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after growing: %d bytes, %v (want %d bytes)", name, len(got), err, len(want))
		}
	}
	out, _ := exec.Command("mdir", "-i", fat, "::").CombinedOutput()
	var free int64
	for _, l := range strings.Split(string(out), "\n") {
		if n, ok := strings.CutSuffix(strings.TrimSpace(l), "bytes free"); ok {
			fmt.Sscan(strings.Join(strings.Fields(n), ""), &free)
		}
	}
	if free < 80<<20 {
		t.Errorf("free space after growing: %d bytes, want > 80 MiB\n%s", free, out)
	}
	raw, _ := os.ReadFile(img)
	vm := binary.LittleEndian.Uint32(raw[432:])
	cl := binary.LittleEndian.Uint32(raw[436:])
	if !bytes.Equal(raw[int64(vm)*512:int64(vm)*512+4096], kernel[:4096]) {
		t.Errorf("MBR vmlinuz LBA %d does not point at the kernel", vm)
	}
	if !bytes.HasPrefix(raw[int64(cl)*512:], files["cmdline.txt"]) {
		t.Errorf("MBR cmdline LBA %d does not point at cmdline.txt", cl)
	}
	// The lower-case directory names gokrazy needs are a clean FAT to
	// dosfstools (and so to Linux's vfat and the firmware).
	part := filepath.Join(dir, "boot.part")
	os.WriteFile(part, raw[start:start+size], 0o644)
	if _, err := exec.LookPath("fsck.vfat"); err == nil {
		if out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput(); err != nil {
			t.Errorf("fsck.vfat -n on the grown boot partition: %v\n%s", err, out)
		}
	}
	// gokrazy rewrites root= in both files in place on an update (and
	// its init turns the trial flag into a spent one): its FAT reader
	// must find them.
	for _, name := range []string{"cmdline.txt", "loader/entries/gokrazy.conf"} {
		off, n, err := gokrazyExtents(raw[start:start+size], name)
		if err != nil {
			t.Errorf("gokrazy's FAT reader: %v", err)
			continue
		}
		if got := raw[start+off : start+off+n]; !bytes.Equal(got, files[name]) {
			t.Errorf("gokrazy's FAT reader finds %s at %d: %q", name, off, got)
		}
	}
}

// gokrazyExtents finds a file on the FAT image fs with gokrazy's own
// reader (gokrazyfat_test.go).
func gokrazyExtents(fs []byte, path string) (off, n int64, err error) {
	rd, err := newGokrazyFATReader(bytes.NewReader(fs))
	if err != nil {
		return 0, 0, err
	}
	return rd.Extents("/" + path)
}

func must(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// TestGokrazyDirNames: the directories on the path get lower-case short
// names; a path that is missing, not a directory or not a short name
// without extension is an error, and nothing else on the disk changes.
func TestGokrazyDirNames(t *testing.T) {
	dir := t.TempDir()
	fat := filepath.Join(dir, "boot.fat")
	must(t, "mkfs.vfat", "-F", "16", "-f", "1", "-C", fat, "20480")
	must(t, "mmd", "-i", fat, "::loader", "::loader/entries", "::EFI")
	conf := filepath.Join(dir, "gokrazy.conf")
	os.WriteFile(conf, []byte("options root=x\n"), 0o644)
	must(t, "mcopy", "-i", fat, conf, "::loader/entries/gokrazy.conf")
	must(t, "mcopy", "-i", fat, conf, "::loader/plain")
	orig, err := os.ReadFile(fat)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, err string
	}{
		{"loader/entries", ""},
		{"loader", ""},
		{"loader/missing", "directory missing of loader/missing not found"},
		{"nope", "directory nope of nope not found"},
		{"loader/plain", "plain is not a directory"},
		{"loader/entries.d", "not an 8.3 name without extension"},
		{"longdirname", "not an 8.3 name without extension"},
	} {
		b := bytes.Clone(orig)
		err := gokrazyDirNames(b, tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		// Only the names' bytes (8 each) and their case flags change.
		changed := 0
		for i := range b {
			if b[i] != orig[i] {
				changed++
			}
		}
		if n := len(strings.Split(tc.path, "/")); changed == 0 || changed > 9*n {
			t.Errorf("%s: %d bytes changed, want 1..%d", tc.path, changed, 9*n)
		}
		if tc.path == "loader/entries" {
			if _, _, err := gokrazyExtents(b, "loader/entries/gokrazy.conf"); err != nil {
				t.Errorf("gokrazy's reader after %s: %v", tc.path, err)
			}
		}
		if _, _, err := gokrazyExtents(orig, "loader/entries/gokrazy.conf"); err == nil {
			t.Error("gokrazy's reader finds gokrazy.conf under mtools' names: the test no longer shows the problem")
		}
		p := filepath.Join(dir, "fixed.fat")
		os.WriteFile(p, b, 0o644)
		if out, err := exec.Command("mtype", "-i", p, "::loader/entries/gokrazy.conf").Output(); err != nil || string(out) != "options root=x\n" {
			t.Errorf("%s: mtools reads gokrazy.conf as %q, %v", tc.path, out, err)
		}
		if out, err := exec.Command("fsck.vfat", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: fsck.vfat -n: %v\n%s", tc.path, err, out)
		}
	}
}
