package appliance

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// BootPartition returns the device of the FAT boot partition: partition 1
// of the disk whose partition 4 is mounted on permMount (gokrazy's layout:
// boot, root A, root B, perm).
func BootPartition(mountinfo, permMount string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[4] != permMount {
			continue
		}
		for i, fl := range fields {
			if fl == "-" && i+2 < len(fields) {
				return siblingPartition(fields[i+2], 1)
			}
		}
	}
	return "", fmt.Errorf("%s is not mounted", permMount)
}

// siblingPartition turns /dev/sda4 into /dev/sda1, /dev/mmcblk0p4 into
// /dev/mmcblk0p1, /dev/nvme0n1p4 into /dev/nvme0n1p1.
func siblingPartition(dev string, n int) (string, error) {
	base := strings.TrimRight(dev, "0123456789")
	if base == dev || !strings.HasPrefix(dev, "/dev/") {
		return "", fmt.Errorf("%q is not a partition device", dev)
	}
	return fmt.Sprintf("%s%d", base, n), nil
}

// WithBootPartition mounts the FAT boot partition dev read-write on dir,
// runs fn and unmounts it again (gokrazy does not keep it mounted).
func WithBootPartition(dev, dir string, fn func(dir string) error) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount(dev, dir, "vfat", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, dir, err)
	}
	ferr := fn(dir)
	if err := syscall.Unmount(dir, 0); err != nil && ferr == nil {
		ferr = fmt.Errorf("unmount %s: %w", dir, err)
	}
	return ferr
}
