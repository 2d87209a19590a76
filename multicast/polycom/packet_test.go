package polycom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readGolden reads a testdata/*.hex file: hex bytes, '#' comment lines.
func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// goldenConfig is the fixture of paging-formats.md §1.7.
func goldenConfig() Config {
	return Config{Channel: 26, HostSerial: 0x12345678, CallerID: "parkpage", Codec: CodecG711U}
}

func silence(n int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{0xff}, 160)
	}
	return frames
}

func TestGoldenPackets(t *testing.T) {
	s, err := NewSession(goldenConfig(), silence(3))
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for {
		if _, ok := s.Due(); !ok {
			break
		}
		pkts = append(pkts, s.Append(nil))
	}
	if len(pkts) != 31+3+12 {
		t.Fatalf("got %d packets, want 46", len(pkts))
	}
	want := map[string][]int{
		"alert.hex":           {0, 15, 30},
		"transmit-first.hex":  {31},
		"transmit-second.hex": {32},
		"end.hex":             {34, 40, 45},
	}
	for file, idx := range want {
		golden := readGolden(t, file)
		for _, i := range idx {
			if !bytes.Equal(pkts[i], golden) {
				t.Errorf("packet %d differs from %s:\n got %x\nwant %x", i, file, pkts[i], golden)
			}
		}
	}
	sum := sha256.Sum256(pkts[31])
	if got := hex.EncodeToString(sum[:]); got != "7a944b805d3e1820185de6aaf07c2581a8a621551add46d21ad8cc2dd623013d" {
		t.Errorf("first Transmit SHA-256 = %s", got)
	}
	if len(pkts[31]) != 186 || len(pkts[32]) != 346 {
		t.Errorf("transmit sizes %d, %d; want 186, 346", len(pkts[31]), len(pkts[32]))
	}
}

func TestAppendPacketMatchesGolden(t *testing.T) {
	frame := bytes.Repeat([]byte{0xff}, 160)
	h := Header{Channel: 26, HostSerial: 0x12345678, CallerID: "parkpage"}
	tests := []struct {
		file string
		p    Packet
	}{
		{"alert.hex", Packet{Header: withOp(h, OpAlert)}},
		{"end.hex", Packet{Header: withOp(h, OpEnd)}},
		{"transmit-first.hex", Packet{Header: withOp(h, OpTransmit), Current: frame}},
		{"transmit-second.hex", Packet{Header: withOp(h, OpTransmit), SampleCount: 160, Redundant: frame, Current: frame}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			golden := readGolden(t, tt.file)
			if got := AppendPacket(nil, &tt.p); !bytes.Equal(got, golden) {
				t.Errorf("got %x\nwant %x", got, golden)
			}
			p, err := Parse(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !packetEqual(&p, &tt.p) {
				t.Errorf("Parse = %+v, want %+v", p, tt.p)
			}
		})
	}
}

func withOp(h Header, op Op) Header { h.Op = op; return h }

func packetEqual(a, b *Packet) bool {
	return a.Header == b.Header && a.Codec == b.Codec && a.Flags == b.Flags && a.SampleCount == b.SampleCount &&
		bytes.Equal(a.Redundant, b.Redundant) && bytes.Equal(a.Current, b.Current) &&
		(a.Redundant == nil) == (b.Redundant == nil)
}

func TestCallerID(t *testing.T) {
	tests := []struct {
		in    string
		field string // the 13 bytes on the wire
	}{
		{"", "Park\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"Lobby", "Lobby\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"exactly13char", "exactly13char"},
		{"much longer than thirteen", "much longer t"},
	}
	for _, tt := range tests {
		cfg := goldenConfig()
		cfg.CallerID = tt.in
		s, err := NewSession(cfg, silence(1))
		if err != nil {
			t.Fatal(err)
		}
		b := s.Append(nil)
		if b[6] != 13 || string(b[7:20]) != tt.field {
			t.Errorf("caller ID %q: wire len %d field %q, want 13 %q", tt.in, b[6], b[7:20], tt.field)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring naming the field; "" = valid
	}{
		{"golden", func(*Config) {}, ""},
		{"channel 1", func(c *Config) { c.Channel = 1 }, ""},
		{"channel 50", func(c *Config) { c.Channel = 50 }, ""},
		{"channel 0", func(c *Config) { c.Channel = 0 }, "channel 0"},
		{"channel 51", func(c *Config) { c.Channel = 51 }, "channel 51"},
		{"g722", func(c *Config) { c.Codec = CodecG722 }, ""},
		{"g711a refused", func(c *Config) { c.Codec = CodecG711A }, "codec g711a"},
		{"g711a opt-in", func(c *Config) { c.Codec = CodecG711A; c.AllowG711A = true }, ""},
		{"g726 refused", func(c *Config) { c.Codec = CodecG726QI }, "codec g726qi"},
		{"negative interval", func(c *Config) { c.Timing.EndDelay = -time.Millisecond }, "timing.end_delay"},
		{"fractional frame", func(c *Config) { c.Timing.FrameInterval = 1500 * time.Microsecond }, "timing.frame_interval"},
		{"negative count", func(c *Config) { c.Timing.EndCount = -1 }, "timing.end_count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goldenConfig()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := NewSession(Config{Channel: 0}, silence(1)); err == nil {
		t.Error("NewSession accepted channel 0")
	}
	for _, n := range []int{0, 159, 161, 320} {
		if _, err := NewSession(goldenConfig(), [][]byte{make([]byte, n)}); err == nil {
			t.Errorf("NewSession accepted a %d-byte frame for 20 ms", n)
		}
	}
}

func TestParseErrors(t *testing.T) {
	golden := readGolden(t, "transmit-first.hex")
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(golden)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"19 bytes", golden[:19], ErrShort},
		{"transmit header only", golden[:25], ErrShort},
		{"no audio", golden[:26], ErrNoAudio},
		{"op 0x11", mod(func(b []byte) []byte { b[0] = 0x11; return b }), ErrOp},
		{"channel 0", mod(func(b []byte) []byte { b[1] = 0; return b }), ErrChannel},
		{"channel 51", mod(func(b []byte) []byte { b[1] = 51; return b }), ErrChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("Parse error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseLenient(t *testing.T) {
	b := readGolden(t, "alert.hex")
	b[6] = 8 // a sender that writes the string length
	p, err := Parse(b)
	if err != nil || p.CallerID != "parkpage" {
		t.Fatalf("Parse = %q, %v", p.CallerID, err)
	}
	b[6] = 4 // shorter than the string: the length wins
	if p, _ = Parse(b); p.CallerID != "park" {
		t.Fatalf("caller ID %q, want park", p.CallerID)
	}
	// Frame splitting per codec: 30 ms G.722 single frame; 20 ms G.726-QI pair.
	tests := []struct {
		codec       Codec
		n           int
		single      bool
		description string
	}{
		{CodecG722, 240, true, "30 ms G.722"},
		{CodecG722, 480, false, "2 x 30 ms G.722"},
		{CodecG711U, 320, false, "2 x 20 ms G.711"},
		{CodecG726QI, 60, true, "20 ms G.726-QI"},
		{CodecG726QI, 120, false, "2 x 20 ms G.726-QI"},
		{Codec(0x42), 161, true, "odd length"},
	}
	for _, tt := range tests {
		pkt := AppendPacket(nil, &Packet{Header: Header{Op: OpTransmit, Channel: 1}, Codec: tt.codec, Current: make([]byte, tt.n)})
		p, err := Parse(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Redundant == nil; got != tt.single || len(p.Current)+len(p.Redundant) != tt.n {
			t.Errorf("%s: redundant %d current %d", tt.description, len(p.Redundant), len(p.Current))
		}
	}
}

// FuzzParse checks Parse never panics and that whatever it accepts survives
// an encode/parse round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"alert.hex", "transmit-first.hex", "transmit-second.hex", "end.hex"} {
		f.Add(readGolden(f, name))
	}
	f.Add([]byte{0x10, 50, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if len(p.CallerID) > CallerIDLen || strings.IndexByte(p.CallerID, 0) >= 0 {
			t.Fatalf("caller ID %q", p.CallerID)
		}
		if p.Op == OpTransmit && len(p.Current) == 0 {
			t.Fatal("transmit without current frame")
		}
		again, err := Parse(AppendPacket(nil, &p))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !packetEqual(&again, &p) {
			t.Fatalf("round trip changed the packet:\n%+v\n%+v", p, again)
		}
	})
}
