package rtp

import (
	"bytes"
	"errors"
	"testing"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/codec"
)

func TestParse(t *testing.T) {
	good := readGolden(t, "pcmu.hex")[0]
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"golden", good, nil},
		{"empty", nil, ErrMalformed},
		{"short header", good[:11], ErrMalformed},
		{"no payload", good[:12], ErrNoPayload},
		{"version 1", append([]byte{0x40}, good[1:]...), ErrVersion},
		{"csrc beyond end", append([]byte{0x8f}, good[1:]...), ErrMalformed},
		{"padding beyond end", append([]byte{0xa0}, append(good[1:len(good)-1:len(good)-1], 200)...), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, want %v", err, tt.want)
			}
			if err == nil && (!p.Marker || p.SSRC != 0x01020304 || p.SequenceNumber != 0xfffe || !bytes.Equal(p.Payload, []byte{0xff, 0xff, 0xff, 0xff})) {
				t.Fatalf("Parse = %+v", p)
			}
		})
	}
}

// packets encodes a stream and parses it back: decode(encode(x)).
func packets(t testing.TB, cfg Config, n int) []pionrtp.Packet {
	t.Helper()
	frames := repeat(n, 160, 0x55)
	for i := range frames {
		frames[i][0] = byte(i)
	}
	s, err := NewStream(cfg, frames)
	if err != nil {
		t.Fatal(err)
	}
	var out []pionrtp.Packet
	for i := range n {
		p, err := Parse(s.Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Payload, frames[i]) {
			t.Fatalf("packet %d: payload differs", i)
		}
		out = append(out, p)
	}
	return out
}

func TestFollower(t *testing.T) {
	info, _ := codec.Lookup(string(codec.PCMU))
	cfg := Config{PayloadType: info.PayloadType, TimestampStep: 160, SSRC: 7, FirstSequence: 0xfffd, FirstTimestamp: 0xffffff00}
	pkts := packets(t, cfg, 8) // sequence wraps after packet 2
	other := cfg
	other.SSRC, other.FirstSequence = 8, 100
	next := packets(t, other, 2)
	bad := pkts[7]
	bad.Timestamp += 5
	bad.SequenceNumber++
	pcma := pkts[1]
	pcma.PayloadType = 8

	tests := []struct {
		name  string
		order []pionrtp.Packet
		kinds string // one letter per event: S start, F frame, L lost
		want  FollowerStats
	}{
		{"clean", pkts, "SFFFFFFFF", FollowerStats{Packets: 8, Streams: 1, Frames: 8, Markers: 1}},
		{"loss across the wrap", []pionrtp.Packet{pkts[0], pkts[1], pkts[4], pkts[5]}, "SFFLFF",
			FollowerStats{Packets: 4, Streams: 1, Frames: 4, Lost: 2, Markers: 1}},
		{"late and duplicate", []pionrtp.Packet{pkts[0], pkts[2], pkts[1], pkts[2], pkts[3]}, "SFLFF",
			FollowerStats{Packets: 5, Streams: 1, Frames: 3, Lost: 1, Duplicates: 2, Markers: 1}},
		{"new ssrc", []pionrtp.Packet{pkts[0], pkts[1], next[0], next[1]}, "SFFSFF",
			FollowerStats{Packets: 4, Streams: 2, Frames: 4, Markers: 2}},
		{"timestamp jump", []pionrtp.Packet{pkts[5], pkts[6], bad}, "SFFLF",
			FollowerStats{Packets: 3, Streams: 1, Frames: 3, Lost: 1, TimestampJumps: 1}},
		{"other payload type", []pionrtp.Packet{pkts[0], pcma, pkts[2]}, "SFLF",
			FollowerStats{Packets: 3, Streams: 1, Frames: 2, Lost: 1, Ignored: 1, Markers: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Follower{PayloadType: 0, TimestampStep: 160}
			var kinds []byte
			for i := range tt.order {
				for _, e := range f.Push(nil, &tt.order[i]) {
					kinds = append(kinds, "?SFL"[e.Kind])
				}
			}
			if string(kinds) != tt.kinds || f.Stats != tt.want {
				t.Fatalf("events %s stats %+v; want %s %+v", kinds, f.Stats, tt.kinds, tt.want)
			}
		})
	}
}

// FuzzParse checks Parse never panics and that what it accepts survives
// pion's marshal and a second parse unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"pcmu.hex", "pcma.hex", "g722.hex", "opus.hex"} {
		for _, b := range readGolden(f, name) {
			f.Add(b)
		}
	}
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed packet: %v", err)
		}
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if q.SSRC != p.SSRC || q.SequenceNumber != p.SequenceNumber || q.Timestamp != p.Timestamp ||
			q.Marker != p.Marker || q.PayloadType != p.PayloadType || !bytes.Equal(q.Payload, p.Payload) {
			t.Fatalf("reparse differs: %v vs %v", q.Header, p.Header)
		}
	})
}

// FuzzFollower feeds a stream of length-prefixed packets and checks the
// invariants: every frame's sequence number is one after the previous
// frame's (plus reported loss) within a stream, and the stats add up.
func FuzzFollower(f *testing.F) {
	var seed []byte
	for _, b := range readGolden(f, "pcmu.hex") {
		seed = append(append(seed, byte(len(b))), b...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, stream []byte) {
		fl := Follower{PayloadType: -1, TimestampStep: 160}
		if len(stream)%2 == 1 {
			fl.PayloadType = 0
		}
		var next uint16
		have := false
		frames := 0
		for len(stream) > 0 {
			n := min(int(stream[0]), len(stream)-1)
			b := stream[1 : 1+n]
			stream = stream[1+n:]
			p, err := Parse(b)
			if err != nil {
				continue
			}
			for _, e := range fl.Push(nil, &p) {
				switch e.Kind {
				case EventStart:
					have = false
				case EventLost:
					if !have || e.Sequence != next || e.Lost < 1 || e.Lost >= maxSeqGap {
						t.Fatalf("lost %+v, expected sequence %d", e, next)
					}
					next += uint16(e.Lost)
				case EventFrame:
					if have && e.Sequence != next {
						t.Fatalf("frame %d, expected %d", e.Sequence, next)
					}
					have, next = true, e.Sequence+1
					frames++
				}
			}
		}
		if st := fl.Stats; st.Frames != frames || st.Frames+st.Duplicates+st.Ignored != st.Packets {
			t.Fatalf("stats %+v, %d frames seen", st, frames)
		}
	})
}
