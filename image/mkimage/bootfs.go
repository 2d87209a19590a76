package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// growBoot rebuilds the FAT boot partition to fill its whole partition.
// gok writes a FAT sized to its contents (no free space), so an installer
// could not drop parkpage.yaml or a password file on it. The files are
// copied into a fresh FAT16 of the partition's size, kernel and cmdline
// first (a fresh file system allocates them contiguously), and the BIOS
// boot code in the MBR, which loads both by LBA, gets their new LBAs.
func growBoot(img string, start, size int64) error {
	dir, err := os.MkdirTemp("", "parkpage-boot")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := filepath.Join(dir, "files")
	if err := os.Mkdir(files, 0o755); err != nil {
		return err
	}
	old := fmt.Sprintf("%s@@%d", img, start)
	if err := run("mcopy", "-s", "-m", "-n", "-i", old, "::*", files); err != nil {
		return err
	}
	fat := filepath.Join(dir, "boot.fat")
	// One FAT copy, as gok writes it: gokrazy's own FAT reader (which
	// finds cmdline.txt to switch root partitions on an update) assumes
	// the root directory follows the first FAT.
	if err := run("mkfs.vfat", "-F", "16", "-f", "1", "-n", "GOKRAZY", "-C", fat, strconv.FormatInt(size/1024, 10)); err != nil {
		return err
	}
	entries, err := os.ReadDir(files)
	if err != nil {
		return err
	}
	first := []string{"vmlinuz", "cmdline.txt"}
	var rest []string
	for _, e := range entries {
		if e.Name() != first[0] && e.Name() != first[1] {
			rest = append(rest, filepath.Join(files, e.Name()))
		}
	}
	for _, f := range first {
		if _, err := os.Stat(filepath.Join(files, f)); err == nil {
			if err := run("mcopy", "-m", "-i", fat, filepath.Join(files, f), "::"+f); err != nil {
				return err
			}
		}
	}
	if len(rest) > 0 {
		if err := run("mcopy", append([]string{"-s", "-m", "-i", fat}, append(rest, "::")...)...); err != nil {
			return err
		}
	}
	lbas := map[string]uint32{}
	for _, f := range first {
		if _, err := os.Stat(filepath.Join(files, f)); err != nil {
			continue
		}
		sector, err := fileSector(fat, f)
		if err != nil {
			return err
		}
		lbas[f] = uint32(start/512 + sector)
	}
	data, err := os.ReadFile(fat)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(files, "loader", "entries")); err == nil {
		if err := gokrazyDirNames(data, "loader/entries"); err != nil {
			return fmt.Errorf("boot partition: %w", err)
		}
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(data, start); err != nil {
		return err
	}
	// Self-check: the first sector at each LBA is the file's first sector.
	for name, lba := range lbas {
		want, err := os.ReadFile(filepath.Join(files, name))
		if err != nil {
			return err
		}
		got := make([]byte, min(512, len(want)))
		if _, err := f.ReadAt(got, int64(lba)*512); err != nil {
			return err
		}
		if string(got) != string(want[:len(got)]) {
			return fmt.Errorf("boot partition: %s is not at LBA %d after the rebuild", name, lba)
		}
	}
	if len(lbas) == 2 {
		// gokrazy's MBR boot code keeps vmlinuz's and cmdline.txt's LBAs
		// at bytes 432..439 (github.com/gokrazy/internal/mbr).
		var p [8]byte
		binary.LittleEndian.PutUint32(p[0:], lbas["vmlinuz"])
		binary.LittleEndian.PutUint32(p[4:], lbas["cmdline.txt"])
		if _, err := f.WriteAt(p[:], 432); err != nil {
			return err
		}
	}
	return f.Close()
}

// gokrazyDirNames writes the short names of the directories on path in
// lower case, as gokrazy's own FAT writer does. gokrazy's reader, which
// rewrites root= and the trial-boot flag in loader/entries/gokrazy.conf
// on an update (github.com/gokrazy/internal/fat Reader.Extents), matches
// a directory without an extension only against its name byte for byte
// (it looks for "LOADER." otherwise), and mtools stores "loader" as
// "LOADER" plus a lower-case flag. Missed, systemd-boot's entry keeps the
// first root and the trial flag for good: a UEFI box that boots it (a
// power cycle, or a kexec that resets) runs the old root. Linux's vfat,
// mtools and UEFI firmware compare short names case-insensitively.
func gokrazyDirNames(fs []byte, path string) error {
	if len(fs) < 512 {
		return fmt.Errorf("FAT too small")
	}
	le := binary.LittleEndian
	sector := int(le.Uint16(fs[11:]))
	perCluster := int(fs[13])
	reserved := int(le.Uint16(fs[14:]))
	fats := int(fs[16])
	rootEntries := int(le.Uint16(fs[17:]))
	perFAT := int(le.Uint16(fs[22:]))
	if sector == 0 || perCluster == 0 || perFAT == 0 {
		return fmt.Errorf("not a FAT16 file system")
	}
	dir := (reserved + fats*perFAT) * sector
	data := dir + (rootEntries*32+sector-1)/sector*sector
	n := rootEntries
	for _, comp := range strings.Split(path, "/") {
		short := strings.ToUpper(comp)
		if len(short) > 8 || strings.ContainsAny(short, ". ") {
			return fmt.Errorf("%s: not an 8.3 name without extension", comp)
		}
		want := fmt.Sprintf("%-11s", short)
		found := false
		for i := 0; i < n && dir+i*32+32 <= len(fs); i++ {
			e := fs[dir+i*32 : dir+i*32+32]
			if e[0] == 0 {
				break
			}
			if e[0] == 0xe5 || e[11] == 0x0f || string(e[:11]) != want {
				continue
			}
			if e[11]&0x10 == 0 {
				return fmt.Errorf("%s is not a directory", comp)
			}
			if i > 0 && fs[dir+i*32-32+11] == 0x0f {
				// A long name's checksum covers the short name.
				return fmt.Errorf("%s has a long file name entry", comp)
			}
			copy(e[:8], fmt.Sprintf("%-8s", comp))
			e[12] &^= 0x18 // the lower-case flags: the name is lower case now
			dir = data + (int(le.Uint16(e[26:]))-2)*perCluster*sector
			n = perCluster * sector / 32
			found = true
			break
		}
		if !found {
			return fmt.Errorf("directory %s of %s not found", comp, path)
		}
	}
	return nil
}

var (
	chainRe  = regexp.MustCompile(`<(\d+)(?:-(\d+))?>`)
	minfoNum = func(out, key string) (int64, error) {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `: (\d+)`).FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("minfo: no %q", key)
		}
		return strconv.ParseInt(m[1], 10, 64)
	}
)

// fileSector returns the first sector (within the FAT image) of a file
// that must be contiguous.
func fileSector(fat, name string) (int64, error) {
	out, err := exec.Command("mshowfat", "-i", fat, "::"+name).Output()
	if err != nil {
		return 0, fmt.Errorf("mshowfat %s: %w", name, err)
	}
	chains := chainRe.FindAllStringSubmatch(string(out), -1)
	if len(chains) != 1 {
		return 0, fmt.Errorf("%s is not contiguous on the boot partition: %s", name, strings.TrimSpace(string(out)))
	}
	cluster, _ := strconv.ParseInt(chains[0][1], 10, 64)
	info, err := exec.Command("minfo", "-i", fat).Output()
	if err != nil {
		return 0, fmt.Errorf("minfo: %w", err)
	}
	var v [5]int64
	for i, k := range []string{"reserved (boot) sectors", "fats", "sectors per fat", "max available root directory slots", "cluster size"} {
		if v[i], err = minfoNum(string(info), k); err != nil {
			return 0, err
		}
	}
	reserved, fats, perFAT, rootSlots, perCluster := v[0], v[1], v[2], v[3], v[4]
	dataStart := reserved + fats*perFAT + (rootSlots*32+511)/512
	return dataStart + (cluster-2)*perCluster, nil
}
