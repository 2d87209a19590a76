package diskimage

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestMBR(t *testing.T) {
	img := make([]byte, 4096)
	put := func(i int, typ byte, start, size uint32) {
		e := img[446+16*i:]
		e[4] = typ
		binary.LittleEndian.PutUint32(e[8:], start)
		binary.LittleEndian.PutUint32(e[12:], size)
	}
	put(0, 0x0c, 8192, 204800)
	put(1, 0x83, 212992, 1024000)
	img[510], img[511] = 0x55, 0xAA
	parts, err := Of(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{{8192 * 512, 204800 * 512, 0x0c}, {212992 * 512, 1024000 * 512, 0x83}}
	if len(parts) != 2 || parts[0] != want[0] || parts[1] != want[1] {
		t.Errorf("got %+v, want %+v", parts, want)
	}
	img[511] = 0
	if _, err := Of(bytes.NewReader(img)); err == nil {
		t.Error("no error without a boot signature")
	}
}

// TestGPT checks a GPT made by sfdisk, the tool installers' systems use.
func TestGPT(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Fatalf("sfdisk missing (apt-get install fdisk): %v", err)
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(p)
	f.Truncate(64 << 20)
	f.Close()
	cmd := exec.Command("sfdisk", "-q", p)
	cmd.Stdin = bytes.NewBufferString("label: gpt\nstart=2048, size=20480\nstart=22528, size=40960\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	parts, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0].Start != 2048*512 || parts[0].Size != 20480*512 || parts[1].Start != 22528*512 || parts[1].Size != 40960*512 {
		t.Errorf("got %+v", parts)
	}
}
