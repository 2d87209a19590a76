package polycom

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Parse errors. Parse wraps them with detail; test with errors.Is.
var (
	ErrShort   = errors.New("packet too short")
	ErrOp      = errors.New("unknown op code")
	ErrChannel = errors.New("channel out of range 1-50")
	ErrNoAudio = errors.New("transmit without audio")
)

// singleFrameSizes are the frame sizes (bytes) phones send with one frame per
// packet: 20 and 30 ms of G.711/G.722 (8 bytes per ms) and of G.726-QI at
// 24 kbit/s (3 bytes per ms).
func singleFrame(c Codec, n int) bool {
	switch c {
	case CodecG726QI:
		return n == 60 || n == 90
	default:
		return n == 160 || n == 240
	}
}

// Parse decodes one packet. The returned slices alias b.
//
// A Transmit holds one frame (the first of a page) or two equal frames
// (previous + current); the wire does not say which. Parse treats a payload
// of exactly one 20 or 30 ms frame of the packet's codec as a single frame and
// any other even length as two halves; an odd length is a single frame.
//
// The caller-ID length byte is informative only: some senders write the
// string length instead of 13, so Parse reads up to 13 bytes and stops at the
// first NUL.
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) < HeaderLen {
		return p, fmt.Errorf("polycom: %d bytes, need %d: %w", len(b), HeaderLen, ErrShort)
	}
	p.Op = Op(b[0])
	switch p.Op {
	case OpAlert, OpTransmit, OpEnd:
	default:
		return p, fmt.Errorf("polycom: op 0x%02x: %w", b[0], ErrOp)
	}
	p.Channel = b[1]
	if !validChannel(int(p.Channel)) {
		return p, fmt.Errorf("polycom: channel %d: %w", p.Channel, ErrChannel)
	}
	p.HostSerial = binary.BigEndian.Uint32(b[2:6])
	id := b[7 : 7+min(int(b[6]), CallerIDLen)]
	for i, c := range id {
		if c == 0 {
			id = id[:i]
			break
		}
	}
	p.CallerID = string(id)
	if p.Op != OpTransmit {
		return p, nil
	}
	if len(b) < HeaderLen+AudioHeaderLen {
		return p, fmt.Errorf("polycom: transmit of %d bytes, need %d: %w", len(b), HeaderLen+AudioHeaderLen, ErrShort)
	}
	a := b[HeaderLen:]
	p.Codec = Codec(a[0])
	p.Flags = a[1]
	p.SampleCount = binary.BigEndian.Uint32(a[2:6])
	audio := a[AudioHeaderLen:]
	switch n := len(audio); {
	case n == 0:
		return p, fmt.Errorf("polycom: %w", ErrNoAudio)
	case singleFrame(p.Codec, n) || n%2 == 1:
		p.Current = audio
	default:
		p.Redundant, p.Current = audio[:n/2:n/2], audio[n/2:]
	}
	return p, nil
}
