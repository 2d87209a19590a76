package polycomtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// The sender reproduces the golden packets of paging-formats.md §1.7
// (channel 26, caller ID "parkpage", serial 0x12345678, count 0, µ-law
// silence), including the first Transmit's SHA-256 printed there.
func TestGoldenPackets(t *testing.T) {
	s := &Sender{Channel: 26, Serial: 0x12345678, CallerID: "parkpage", CallerIDLen: 13, Codec: CodecG711U, FrameTicks: 160}
	alert, _ := hex.DecodeString("0f1a123456780d7061726b706167650000000000")
	if got := s.Header(OpAlert); !bytes.Equal(got, alert) {
		t.Errorf("alert % x, want % x", got, alert)
	}
	if got := s.Header(OpEnd); got[0] != 0xff || !bytes.Equal(got[1:], alert[1:]) {
		t.Errorf("end % x", got)
	}
	frames := [][]byte{bytes.Repeat([]byte{0xff}, 160), bytes.Repeat([]byte{0xff}, 160)}
	first := s.Transmit(frames, 0)
	sum := sha256.Sum256(first)
	if len(first) != 186 || hex.EncodeToString(sum[:]) != "7a944b805d3e1820185de6aaf07c2581a8a621551add46d21ad8cc2dd623013d" {
		t.Errorf("first transmit: %d bytes, sha256 %x", len(first), sum)
	}
	second := s.Transmit(frames, 1)
	if len(second) != 346 || !bytes.Equal(second[20:26], []byte{0, 0, 0, 0, 0, 0xa0}) {
		t.Errorf("second transmit: %d bytes, audio header % x", len(second), second[20:26])
	}
}

// The schedule follows §1.4: Alerts 30 ms apart, Transmits one frame
// interval apart, the first End 50 ms after the last Transmit, Ends 30 ms
// apart.
func TestSchedule(t *testing.T) {
	s := &Sender{Channel: 26, CallerIDLen: 13, FrameTicks: 240, FrameInterval: 30 * time.Millisecond}
	ev := s.Schedule(make([][]byte, 3))
	if len(ev) != 31+3+12 {
		t.Fatalf("%d packets", len(ev))
	}
	const ms = time.Millisecond
	for _, c := range []struct {
		i  int
		at time.Duration
	}{{1, 30 * ms}, {31, 930 * ms}, {33, 990 * ms}, {34, 1040 * ms}, {35, 1070 * ms}} {
		if ev[c.i].At != c.at {
			t.Errorf("packet %d at %v, want %v", c.i, ev[c.i].At, c.at)
		}
	}
}
