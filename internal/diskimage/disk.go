// Package diskimage reads the partition table of an appliance image (MBR, or
// GPT behind a protective MBR), so the image tools can find the FAT boot
// partition and /perm inside a .img file.
package diskimage

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Partition is one partition of a disk image, in bytes.
type Partition struct {
	Start, Size int64
	Type        byte // MBR type (0 for GPT entries)
}

// Read returns the image's partitions in table order: the MBR's,
// or the GPT's when the MBR is a protective one (type 0xEE).
func Read(path string) ([]Partition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Of(f)
}

// Of reads the partitions of a disk image.
func Of(r io.ReaderAt) ([]Partition, error) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("reading MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, fmt.Errorf("no MBR boot signature")
	}
	var parts []Partition
	gpt := false
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		typ := e[4]
		if typ == 0 {
			continue
		}
		if typ == 0xEE {
			gpt = true
			break
		}
		parts = append(parts, Partition{
			Start: int64(binary.LittleEndian.Uint32(e[8:])) * 512,
			Size:  int64(binary.LittleEndian.Uint32(e[12:])) * 512,
			Type:  typ,
		})
	}
	if !gpt {
		return parts, nil
	}
	hdr := make([]byte, 92)
	if _, err := r.ReadAt(hdr, 512); err != nil {
		return nil, fmt.Errorf("reading GPT header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, fmt.Errorf("protective MBR but no GPT header")
	}
	entriesLBA := int64(binary.LittleEndian.Uint64(hdr[72:]))
	n := int(binary.LittleEndian.Uint32(hdr[80:]))
	esize := int(binary.LittleEndian.Uint32(hdr[84:]))
	if n > 256 || esize < 128 || esize > 1024 {
		return nil, fmt.Errorf("implausible GPT: %d entries of %d bytes", n, esize)
	}
	ents := make([]byte, n*esize)
	if _, err := r.ReadAt(ents, entriesLBA*512); err != nil {
		return nil, fmt.Errorf("reading GPT entries: %w", err)
	}
	parts = nil
	for i := 0; i < n; i++ {
		e := ents[i*esize : (i+1)*esize]
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		last := int64(binary.LittleEndian.Uint64(e[40:]))
		if first == 0 && last == 0 {
			continue
		}
		parts = append(parts, Partition{Start: first * 512, Size: (last - first + 1) * 512})
	}
	return parts, nil
}
