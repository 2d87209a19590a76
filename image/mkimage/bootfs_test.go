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
	// gokrazy rewrites root= in both files in place on an update; its FAT
	// reader must find them.
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

// gokrazyExtents finds a file the way github.com/gokrazy/internal/fat's
// Reader.Extents does (a module-internal package): the root directory
// right after ONE FAT, 8.3 names, subdirectories by first cluster.
func gokrazyExtents(fs []byte, path string) (off, n int64, err error) {
	le := binary.LittleEndian
	sector := int64(le.Uint16(fs[11:]))
	perCluster := int64(fs[13])
	reserved := int64(le.Uint16(fs[14:]))
	rootEntries := int64(le.Uint16(fs[17:]))
	fatSectors := int64(le.Uint16(fs[22:]))
	dir := (reserved + fatSectors) * sector
	data := dir + (rootEntries*32+sector-1)/sector*sector
	for _, comp := range strings.Split(path, "/") {
		base, ext, _ := strings.Cut(strings.ToUpper(comp), ".")
		if len(base) > 8 || len(ext) > 3 {
			base, ext = base[:min(6, len(base))]+"~1", ext[:min(3, len(ext))]
		}
		found := false
		for i := int64(0); i < rootEntries; i++ {
			e := fs[dir+i*32 : dir+i*32+32]
			name := strings.TrimRight(string(e[:8]), " ")
			if x := strings.TrimRight(string(e[8:11]), " "); x != "" {
				name += "." + x
			}
			want := base
			if ext != "" {
				want += "." + ext
			}
			if e[0] == 0 || name != want {
				continue
			}
			at := data + (int64(le.Uint16(e[26:]))-2)*perCluster*sector
			if e[11] == 0x10 {
				dir, found = at, true
				break
			}
			return at, int64(le.Uint32(e[28:])), nil
		}
		if !found {
			return 0, 0, fmt.Errorf("%s not found", path)
		}
	}
	return 0, 0, fmt.Errorf("%s is a directory", path)
}

func must(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
