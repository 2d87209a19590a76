package imagetest

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	disk "github.com/parkpage/parkpage/internal/diskimage"
)

// TestARM64Boot boots the generic arm64 image (gokrazy's kernel.arm64, the
// same userland as the Pi image) in qemu-system-aarch64 (virt machine,
// UEFI, TCG) and waits for /healthz through the forward.
func TestARM64Boot(t *testing.T) {
	img, fat := copyImage(t, imagePath(t, "PARKPAGE_IMAGE_ARM64", "parkpage-arm64.img"))
	mtools(t, "mcopy", "-i", fat, filepath.Join("..", "testdata", "qemu-site.yaml"), "::parkpage.yaml")
	v := startVM(t, vmOptions{arch: "arm64", image: img, write: true})
	took := v.waitHealthy(2 * bootDeadline)
	t.Logf("arm64: QEMU start to /healthz ok: %v", took.Round(100*time.Millisecond))
	fmt.Printf("arm64 boot-to-healthy: %.1f s\n", took.Seconds())
	if s := findSlot(t, v, "701"); s == nil || s["state"] != "free" {
		t.Errorf("slot 701 on the arm64 image: %v, want free", s)
	}
}

// TestPiImageStructure checks what can be checked of the Raspberry Pi
// image without a Pi: the partition table (boot, root A, root B, perm),
// the firmware, kernel and device trees for the Pi 4 and 5 on the FAT
// partition, and a cmdline that mounts root by PARTUUID.
func TestPiImageStructure(t *testing.T) {
	img := imagePath(t, "PARKPAGE_IMAGE_PI", "parkpage-pi.img")
	parts, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 || parts[0].Size < 90<<20 || parts[1].Size != parts[2].Size || parts[3].Size < 100<<20 {
		t.Fatalf("partitions %+v, want boot (100 MB), root A and B of one size, perm", parts)
	}
	t.Logf("partitions: %+v", parts)
	fat := fmt.Sprintf("%s@@%d", img, parts[0].Start)
	list := mtools(t, "mdir", "-b", "-i", fat, "::")
	for _, f := range []string{"config.txt", "cmdline.txt", "vmlinuz", "start4.elf", "fixup4.dat",
		"bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb"} {
		if !strings.Contains(list, "::/"+f+"\n") {
			t.Errorf("boot partition lacks %s; it has:\n%s", f, list)
		}
	}
	cmdline := mtools(t, "mtype", "-i", fat, "::cmdline.txt")
	if !regexp.MustCompile(`root=PARTUUID=[0-9a-fA-F-]+`).MatchString(cmdline) {
		t.Errorf("cmdline.txt has no root=PARTUUID=: %q", cmdline)
	}
	config := mtools(t, "mtype", "-i", fat, "::config.txt")
	// gokrazy's config.txt uses the older arm_control=0x200 switch.
	if !strings.Contains(config, "arm_64bit=1") && !strings.Contains(config, "arm_control=0x200") {
		t.Errorf("config.txt does not boot the 64-bit kernel:\n%s", config)
	}
	t.Logf("cmdline.txt: %s", strings.TrimSpace(cmdline))
	if !strings.Contains(config, "kernel=vmlinuz") {
		t.Errorf("config.txt does not name the kernel:\n%s", config)
	}
	// The Pi 4's jack and HDMI audio (bcm2835) are off without it.
	if !regexp.MustCompile(`(?m)^dtparam=audio=on$`).MatchString(config) {
		t.Errorf("config.txt does not turn the firmware's audio on:\n%s", config)
	}
}
