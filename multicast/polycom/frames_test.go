package polycom

import (
	"bytes"
	"testing"
	"time"
)

// The caller-ID length byte as two senders write it (paging-formats.md
// §1.2): 13 with NUL padding (the document, parkpage) and the string's
// real length (8 for "Asterisk", the Asterisk-to-Poly repeater). Both read
// "Asterisk"; with the real length, bytes after it are not part of the
// name even if they are not NUL.
func TestParseCallerIDLength(t *testing.T) {
	hdr := func(n byte, field string) []byte {
		b := []byte{0x0f, 0x1a, 0x12, 0x34, 0x56, 0x78, n}
		return append(b, field...)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want string
	}{
		{"13, NUL-padded", hdr(13, "Asterisk\x00\x00\x00\x00\x00"), "Asterisk"},
		{"8, NUL-padded", hdr(8, "Asterisk\x00\x00\x00\x00\x00"), "Asterisk"},
		{"8, junk after", hdr(8, "AsteriskXXXXX"), "Asterisk"},
		{"13, full", hdr(13, "Paging Group1"), "Paging Group1"},
		{"0", hdr(0, "Asterisk\x00\x00\x00\x00\x00"), ""},
		{"255: clamped to the field", hdr(255, "Asterisk\x00\x00\x00\x00\x00"), "Asterisk"},
	} {
		p, err := Parse(tc.pkt)
		if err != nil || p.CallerID != tc.want {
			t.Errorf("%s: caller ID %q, %v; want %q", tc.name, p.CallerID, err, tc.want)
		}
	}
}

func TestFrameBytes(t *testing.T) {
	for _, tc := range []struct {
		c    Codec
		d    time.Duration
		want int
	}{
		{CodecG711U, 20 * time.Millisecond, 160}, {CodecG711U, 30 * time.Millisecond, 240},
		{CodecG722, 20 * time.Millisecond, 160}, {CodecG722, 30 * time.Millisecond, 240},
		{CodecG726QI, 20 * time.Millisecond, 60}, {CodecG726QI, 30 * time.Millisecond, 90},
	} {
		if got := FrameBytes(tc.c, tc.d); got != tc.want {
			t.Errorf("FrameBytes(%s, %v) = %d, want %d", tc.c, tc.d, got, tc.want)
		}
	}
}

// counting returns n 20 ms frames whose bytes count up, so regrouping
// errors show.
func counting(n int) ([][]byte, []byte) {
	var frames [][]byte
	var all []byte
	for i := range n {
		f := make([]byte, 160)
		for k := range f {
			f[k] = byte(i*160 + k)
		}
		frames = append(frames, f)
		all = append(all, f...)
	}
	return frames, all
}

// A page rendered in 20 ms frames goes out in 30 ms frames: three become
// two, the audio in order, an odd tail padded with the codec's silence; the
// sample count steps +240 and the packets are 266 then 506 bytes (the
// document's table).
func TestSession30msFrom20ms(t *testing.T) {
	frames, all := counting(7) // 140 ms: four 30 ms frames plus 10 ms of padding
	cfg := Config{Channel: 26, Codec: CodecG711U, FirstSampleCount: 0xffffff00,
		Timing: Timing{AlertCount: 1, FrameInterval: 30 * time.Millisecond, EndCount: 1}}
	s, err := NewSession(cfg, frames)
	if err != nil {
		t.Fatal(err)
	}
	out := drain(t, s, -1)
	var got []byte
	var tx []sent
	for _, o := range out {
		if o.p.Op == OpTransmit {
			tx = append(tx, o)
			got = append(got, o.p.Current...)
		}
	}
	if len(tx) != 5 {
		t.Fatalf("%d Transmits, want 5 (7 × 20 ms in 30 ms frames)", len(tx))
	}
	for k, o := range tx {
		if want := uint32(0xffffff00) + uint32(k)*240; o.p.SampleCount != want {
			t.Errorf("transmit %d: sample count %#x, want %#x", k, o.p.SampleCount, want)
		}
		if n, want := HeaderLen+AudioHeaderLen+len(o.p.Redundant)+len(o.p.Current), []int{266, 506}[min(k, 1)]; n != want {
			t.Errorf("transmit %d: %d bytes, want %d", k, n, want)
		}
		if want := time.Duration(30*k) * time.Millisecond; o.due-tx[0].due != want {
			t.Errorf("transmit %d due %v after the first, want %v", k, o.due-tx[0].due, want)
		}
	}
	if !bytes.Equal(got[:len(all)], all) {
		t.Error("30 ms frames do not carry the 20 ms frames' audio in order")
	}
	for _, b := range got[len(all):] {
		if b != 0xFF {
			t.Fatalf("padding byte %#x, want µ-law silence 0xff", b)
		}
	}
}

// frameSource yields 20 ms frames from a list, then is over.
type frameSource struct {
	frames [][]byte
	i      int
}

func (f *frameSource) Frame(dst []byte) []byte {
	if f.i >= len(f.frames) {
		return dst
	}
	f.i++
	return append(dst, f.frames[f.i-1]...)
}

func (f *frameSource) Over() bool { return f.i >= len(f.frames) }

// A live page in 30 ms frames reads the source's 20 ms frames three per two
// Transmits and sends its last half frame padded, not dropped.
func TestLiveSession30ms(t *testing.T) {
	frames, all := counting(5)
	src := &frameSource{frames: frames}
	s, err := NewLiveSession(Config{Channel: 26, Codec: CodecG722,
		Timing: Timing{AlertCount: 1, FrameInterval: 30 * time.Millisecond, EndCount: 1}}, src)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	var counts []uint32
	for {
		if _, ok := s.Due(); !ok {
			break
		}
		p, err := Parse(s.Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		if p.Op == OpTransmit {
			if len(p.Current) != 240 {
				t.Fatalf("live 30 ms frame of %d bytes", len(p.Current))
			}
			got = append(got, p.Current...)
			counts = append(counts, p.SampleCount)
		}
	}
	if len(counts) != 4 || counts[3]-counts[0] != 3*240 {
		t.Fatalf("sample counts %v, want 4 Transmits 240 apart (100 ms in 30 ms frames)", counts)
	}
	if !bytes.Equal(got[:len(all)], all) {
		t.Error("live 30 ms frames do not carry the source's audio in order")
	}
	for _, b := range got[len(all):] {
		if b != 0xFA {
			t.Fatalf("padding byte %#x, want G.722 idle 0xfa", b)
		}
	}
}
