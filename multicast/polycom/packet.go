// Package polycom encodes and decodes the Polycom/Poly PTT and Group Paging
// multicast wire format (Polycom Engineering Advisory 70568, Spectralink
// CS-12-30). It is pure: no sockets, no clocks. Session yields the packets of
// a whole page with their due times; Parse and Reassembler are the receive side.
//
// The format is not RTP: every packet starts with a 20-byte header (op code,
// channel, host serial, 13-byte caller ID); Transmit packets add a codec byte,
// a flags byte, a 32-bit sample count on an 8 kHz clock and one or two audio
// frames (the previous frame is repeated for loss recovery).
package polycom

import (
	"encoding/binary"
	"fmt"
)

// Op is the first byte of every packet.
type Op uint8

// Op codes (EA 70568 "Op code").
const (
	OpAlert    Op = 0x0F // announces a page; sent 31–32 times before the audio
	OpTransmit Op = 0x10 // carries audio
	OpEnd      Op = 0xFF // end of transmission; sent 12 times
)

// String names the op code.
func (o Op) String() string {
	switch o {
	case OpAlert:
		return "alert"
	case OpTransmit:
		return "transmit"
	case OpEnd:
		return "end"
	}
	return fmt.Sprintf("op(0x%02x)", uint8(o))
}

// Codec is the payload codec byte of a Transmit packet.
type Codec uint8

// Codec bytes. Phones send G.711µ or G.722 (and old SoundPoints G.726-QI);
// 0x08 for G.711A comes from one open-source sender only, so senders accept it
// only as an explicit opt-in (Config.AllowG711A).
const (
	CodecG711U  Codec = 0x00
	CodecG711A  Codec = 0x08
	CodecG722   Codec = 0x09
	CodecG726QI Codec = 0xFD // receive only: bit-reversed G.726 at 24 kbit/s
)

// String names the codec.
func (c Codec) String() string {
	switch c {
	case CodecG711U:
		return "g711u"
	case CodecG711A:
		return "g711a"
	case CodecG722:
		return "g722"
	case CodecG726QI:
		return "g726qi"
	}
	return fmt.Sprintf("codec(0x%02x)", uint8(c))
}

// frameTicks returns how many 8 kHz sample-count ticks one frame of n bytes
// covers. G.711 and G.722 (64 kbit/s) both carry 8 bytes per ms, and the
// sample count runs at 8 kHz for both (RFC 3551 G.722 quirk), so ticks == bytes;
// G.726-QI at 24 kbit/s carries 3 bytes per ms.
func (c Codec) frameTicks(n int) uint32 {
	if c == CodecG726QI {
		return uint32(n) * 8 / 3
	}
	return uint32(n)
}

// Wire sizes and limits.
const (
	HeaderLen      = 20 // common header of every packet
	AudioHeaderLen = 6  // codec, flags, sample count
	CallerIDLen    = 13 // fixed size of the caller-ID field
	MinChannel     = 1
	MaxChannel     = 50
	// SampleRate is the clock of the sample count, for every codec.
	SampleRate = 8000
)

// Defaults from EA 70568 and the phones' factory configuration.
const (
	DefaultGroup    = "224.0.1.116"
	DefaultPort     = 5001
	DefaultCallerID = "Park"
)

// Header is the common part of every packet.
type Header struct {
	Op         Op
	Channel    uint8  // 1–50: 1–25 PTT, 26–50 group paging (phone group N = channel 25+N)
	HostSerial uint32 // sender identity; on a collision the lowest serial keeps the channel
	CallerID   string // at most 13 bytes on the wire; NUL padding is not part of the string
}

// Packet is one decoded packet. For Alert and End only Header is set. Slices
// alias the buffer given to Parse.
type Packet struct {
	Header
	Codec       Codec
	Flags       uint8
	SampleCount uint32 // 8 kHz timestamp of Current
	Redundant   []byte // previous frame; nil in the first Transmit of a page
	Current     []byte
}

// validChannel reports whether ch is a channel phones listen on.
func validChannel(ch int) bool { return ch >= MinChannel && ch <= MaxChannel }

// appendHeader appends the 20-byte header. The caller ID is truncated to 13
// bytes and NUL-padded; the length byte is always 13, as phones send it.
func appendHeader(dst []byte, op Op, channel uint8, serial uint32, callerID string) []byte {
	dst = append(dst, byte(op), channel)
	dst = binary.BigEndian.AppendUint32(dst, serial)
	dst = append(dst, CallerIDLen)
	n := min(len(callerID), CallerIDLen)
	dst = append(dst, callerID[:n]...)
	for i := n; i < CallerIDLen; i++ {
		dst = append(dst, 0)
	}
	return dst
}

// AppendPacket appends the wire form of p to dst. It does not validate: use
// Config.Validate for the fields a sender controls. Redundant is written
// only if non-nil.
func AppendPacket(dst []byte, p *Packet) []byte {
	dst = appendHeader(dst, p.Op, p.Channel, p.HostSerial, p.CallerID)
	if p.Op != OpTransmit {
		return dst
	}
	dst = append(dst, byte(p.Codec), p.Flags)
	dst = binary.BigEndian.AppendUint32(dst, p.SampleCount)
	dst = append(dst, p.Redundant...)
	return append(dst, p.Current...)
}
