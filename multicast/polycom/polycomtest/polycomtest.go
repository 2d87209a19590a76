// Package polycomtest is a Polycom/Poly group-paging sender for tests that
// is independent of package polycom: it builds the packets byte by byte
// from the tables of docs/paging-formats.md §1 (header, Transmit payload,
// session sequence) and shares no code with parkpage's encoder, so a test
// that pages with it checks parkpage's receiver against the document, not
// against parkpage's own idea of the format.
package polycomtest

import (
	"encoding/binary"
	"net"
	"time"
)

// Op codes and codec bytes (paging-formats.md §1.2, §1.3).
const (
	OpAlert    = 0x0F
	OpTransmit = 0x10
	OpEnd      = 0xFF

	CodecG711U  = 0x00
	CodecG722   = 0x09
	CodecG726QI = 0xFD
)

// Sender pages like a phone or a third-party repeater. Zero timing fields
// take the document's values: 31 Alerts 30 ms apart, one Transmit per
// frame, 50 ms after the last Transmit 12 Ends 30 ms apart.
type Sender struct {
	Conn     *net.UDPConn // socket to send from (multicast interface set by the caller)
	Dst      *net.UDPAddr // group and port
	Channel  byte
	Serial   uint32
	CallerID string
	// CallerIDLen is the caller-ID length byte: 13 (the document's fixed
	// size) or, as one repeater writes it, the string's real length.
	CallerIDLen byte
	Codec       byte
	// FrameTicks is the sample-count step per frame: 160 for 20 ms, 240
	// for 30 ms (an 8 kHz clock for every codec).
	FrameTicks    uint32
	FirstCount    uint32
	FrameInterval time.Duration // 20 ms

	AlertCount    int           // 31
	AlertInterval time.Duration // 30 ms
	EndDelay      time.Duration // 50 ms
	EndCount      int           // 12
	EndInterval   time.Duration // 30 ms
}

// Header returns the 20-byte header of op.
func (s *Sender) Header(op byte) []byte {
	b := make([]byte, 20, 20+6+2*240)
	b[0], b[1] = op, s.Channel
	binary.BigEndian.PutUint32(b[2:6], s.Serial)
	b[6] = s.CallerIDLen
	copy(b[7:20], s.CallerID) // NUL-padded, truncated to 13
	return b
}

// Transmit returns Transmit packet k of frames: codec, flags 0, the sample
// count of frame k, then frame k-1 (absent for k = 0) and frame k.
func (s *Sender) Transmit(frames [][]byte, k int) []byte {
	b := append(s.Header(OpTransmit), s.Codec, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[22:26], s.FirstCount+uint32(k)*s.FrameTicks)
	if k > 0 {
		b = append(b, frames[k-1]...)
	}
	return append(b, frames[k]...)
}

// Event is one scheduled packet of a page.
type Event struct {
	At     time.Duration // from the start of the page
	Packet []byte
}

// Schedule returns the page of frames as packets with their send times.
func (s *Sender) Schedule(frames [][]byte) []Event {
	def := func(d, v time.Duration) time.Duration {
		if d == 0 {
			return v
		}
		return d
	}
	alertN, endN := s.AlertCount, s.EndCount
	if alertN == 0 {
		alertN = 31
	}
	if endN == 0 {
		endN = 12
	}
	ai, fi := def(s.AlertInterval, 30*time.Millisecond), def(s.FrameInterval, 20*time.Millisecond)
	ed, ei := def(s.EndDelay, 50*time.Millisecond), def(s.EndInterval, 30*time.Millisecond)
	var ev []Event
	var at time.Duration
	for range alertN {
		ev = append(ev, Event{at, s.Header(OpAlert)})
		at += ai
	}
	for k := range frames {
		ev = append(ev, Event{at, s.Transmit(frames, k)})
		at += fi
	}
	at += ed - fi
	for range endN {
		ev = append(ev, Event{at, s.Header(OpEnd)})
		at += ei
	}
	return ev
}

// Page sends the page of frames in real time (each packet at its time
// from the start on the monotonic clock, never in bursts).
func (s *Sender) Page(frames [][]byte) error {
	start := time.Now()
	for _, e := range s.Schedule(frames) {
		time.Sleep(time.Until(start.Add(e.At)))
		if _, err := s.Conn.WriteToUDP(e.Packet, s.Dst); err != nil {
			return err
		}
	}
	return nil
}
