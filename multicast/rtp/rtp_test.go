package rtp

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/codec"
)

// readGolden returns the packets of a testdata/*.hex file, one per line.
func readGolden(t testing.TB, name string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		b, err := hex.DecodeString(strings.Join(strings.Fields(line), ""))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pkts = append(pkts, b)
	}
	return pkts
}

func repeat(n, size int, b ...byte) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = bytes.Repeat(b, size/len(b))
	}
	return frames
}

func TestGoldenStreams(t *testing.T) {
	tests := []struct {
		file   string
		codec  codec.Name
		cfg    Config // PayloadType and TimestampStep come from the codec
		frames [][]byte
	}{
		{"pcmu.hex", codec.PCMU, Config{SSRC: 0x01020304, FirstSequence: 0xfffe, FirstTimestamp: 0xffffff00}, repeat(3, 4, 0xff)},
		{"pcma.hex", codec.PCMA, Config{SSRC: 1, FirstSequence: 0, FirstTimestamp: 0x7fffffff}, repeat(2, 1, 0xd5)},
		{"g722.hex", codec.G722, Config{SSRC: 0xcafebabe, FirstSequence: 0x1234}, repeat(2, 2, 0x55)},
		{"opus.hex", codec.Opus, Config{SSRC: 0xdeadbeef, FirstSequence: 7, FirstTimestamp: 1000}, repeat(3, 3, 0xf8, 0xff, 0xfe)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			info, err := codec.Lookup(string(tt.codec))
			if err != nil {
				t.Fatal(err)
			}
			cfg := tt.cfg
			cfg.PayloadType, cfg.TimestampStep = info.PayloadType, info.TimestampStep
			s, err := NewStream(cfg, tt.frames)
			if err != nil {
				t.Fatal(err)
			}
			golden := readGolden(t, tt.file)
			buf := make([]byte, 0, 8) // forces AppendPacket to grow
			for i, want := range golden {
				due, ok := s.Due()
				if !ok || due != time.Duration(i)*20*time.Millisecond {
					t.Fatalf("packet %d: due %v ok %v", i, due, ok)
				}
				buf = s.Append(buf[:0])
				if !bytes.Equal(buf, want) {
					t.Fatalf("packet %d:\n got %x\nwant %x", i, buf, want)
				}
				var p pionrtp.Packet
				if err := p.Unmarshal(buf); err != nil {
					t.Fatalf("pion cannot parse packet %d: %v", i, err)
				}
				if p.Marker != (i == 0) || p.PayloadType != info.PayloadType {
					t.Fatalf("packet %d: marker %v PT %d", i, p.Marker, p.PayloadType)
				}
			}
			if _, ok := s.Due(); ok {
				t.Fatal("stream not over after its frames")
			}
			if got := s.Append([]byte{1}); len(got) != 1 {
				t.Fatal("Append after the end wrote a packet")
			}
		})
	}
}

func TestNewConfigRandom(t *testing.T) {
	info, _ := codec.Lookup("opus")
	a, b := NewConfig(info), NewConfig(info)
	if a.PayloadType != 111 || a.TimestampStep != 960 {
		t.Fatalf("opus config %+v", a)
	}
	// Three independent 32/16/32-bit draws all colliding would be a broken RNG.
	if a.SSRC == b.SSRC && a.FirstSequence == b.FirstSequence && a.FirstTimestamp == b.FirstTimestamp {
		t.Fatalf("two configs drew the same random fields: %+v", a)
	}
}

func TestStop(t *testing.T) {
	frames := repeat(10, 160, 0xff)
	s, err := NewStream(Config{TimestampStep: 160}, frames)
	if err != nil {
		t.Fatal(err)
	}
	s.Append(nil)
	s.Append(nil)
	s.Stop()
	if _, ok := s.Due(); ok {
		t.Fatal("stream continues after Stop")
	}
	if len(frames) != 10 || s.Len() != 2 {
		t.Fatalf("frames %d, Len %d", len(frames), s.Len())
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{PayloadType: 111, TimestampStep: 960}, ""},
		{Config{PayloadType: 128, TimestampStep: 960}, "payload_type 128"},
		{Config{PayloadType: 0}, "timestamp_step"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := NewStream(Config{TimestampStep: 160}, [][]byte{nil}); err == nil {
		t.Error("NewStream accepted an empty frame")
	}
}

// TestRewind: packets taken back are appended again, identical (same
// sequence number, timestamp and payload), and the stream ends as before.
func TestRewind(t *testing.T) {
	frames := repeat(10, 160, 0xff)
	for i := range frames {
		frames[i][0] = byte(i)
	}
	want, _ := NewStream(Config{TimestampStep: 160, FirstSequence: 65530}, frames)
	s, _ := NewStream(Config{TimestampStep: 160, FirstSequence: 65530}, frames)
	for range 6 {
		s.Append(nil)
	}
	s.Rewind(4)
	want.Append(nil)
	want.Append(nil)
	for k := 2; ; k++ {
		dw, okw := want.Due()
		d, ok := s.Due()
		if d != dw || ok != okw {
			t.Fatalf("packet %d: due %v %v, want %v %v", k, d, ok, dw, okw)
		}
		if !ok {
			break
		}
		if got, exp := s.Append(nil), want.Append(nil); string(got) != string(exp) {
			t.Fatalf("packet %d after Rewind differs", k)
		}
	}
	s.Rewind(3)
	s.Stop()
	if s.Len() != 7 {
		t.Fatalf("stopped after rewinding 3 of 10: Len %d, want 7", s.Len())
	}
}
