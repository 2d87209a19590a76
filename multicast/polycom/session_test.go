package polycom

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

type sent struct {
	due time.Duration
	p   Packet
}

// drain runs s to the end, calling Stop before packet stopBefore (-1: never).
func drain(t *testing.T, s *Session, stopBefore int) []sent {
	t.Helper()
	var out []sent
	for i := 0; ; i++ {
		if i == stopBefore {
			s.Stop()
		}
		due, ok := s.Due()
		if !ok {
			break
		}
		if i > 1000 {
			t.Fatal("session does not end")
		}
		b := s.Append(nil)
		p, err := Parse(b)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		out = append(out, sent{due, p})
	}
	if got := s.Append([]byte("x")); string(got) != "x" {
		t.Fatal("Append after the end wrote a packet")
	}
	return out
}

func numbered(n int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte(i)}, 160)
	}
	return frames
}

func TestSessionSequence(t *testing.T) {
	const ms = time.Millisecond
	cfg := Config{Channel: 49, HostSerial: 7, Codec: CodecG722, FirstSampleCount: 0xffffff00} // wraps mid-page
	frames := numbered(5)
	s, err := NewSession(cfg, frames)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 31+5+12 || s.FrameTicks() != 160 {
		t.Fatalf("Len %d FrameTicks %d", s.Len(), s.FrameTicks())
	}
	out := drain(t, s, -1)
	if len(out) != 48 {
		t.Fatalf("%d packets, want 48", len(out))
	}
	for i, o := range out {
		var wantOp Op
		var wantDue time.Duration
		switch {
		case i < 31:
			wantOp, wantDue = OpAlert, time.Duration(i)*30*ms
		case i < 36:
			wantOp, wantDue = OpTransmit, 930*ms+time.Duration(i-31)*20*ms
		default:
			wantOp, wantDue = OpEnd, 1010*ms+50*ms+time.Duration(i-36)*30*ms
		}
		if o.p.Op != wantOp || o.due != wantDue {
			t.Fatalf("packet %d: %s due %v, want %s due %v", i, o.p.Op, o.due, wantOp, wantDue)
		}
		if o.p.Channel != 49 || o.p.HostSerial != 7 || o.p.CallerID != "Park" {
			t.Fatalf("packet %d header %+v", i, o.p.Header)
		}
		if wantOp != OpTransmit {
			continue
		}
		k := i - 31
		if o.p.Codec != CodecG722 || o.p.Flags != 0 {
			t.Errorf("transmit %d codec %s flags %d", k, o.p.Codec, o.p.Flags)
		}
		if want := cfg.FirstSampleCount + uint32(k)*160; o.p.SampleCount != want {
			t.Errorf("transmit %d sample count %#x, want %#x", k, o.p.SampleCount, want)
		}
		if !bytes.Equal(o.p.Current, frames[k]) {
			t.Errorf("transmit %d carries the wrong frame", k)
		}
		switch {
		case k == 0 && o.p.Redundant != nil:
			t.Errorf("first transmit has a redundant frame")
		case k > 0 && !bytes.Equal(o.p.Redundant, frames[k-1]):
			t.Errorf("transmit %d redundant frame is not frame %d", k, k-1)
		}
	}
}

func TestSessionCustomTiming(t *testing.T) {
	cfg := Config{Channel: 1, Timing: Timing{AlertCount: 2, AlertInterval: 5 * time.Millisecond, FrameInterval: 30 * time.Millisecond,
		EndDelay: 7 * time.Millisecond, EndCount: 3, EndInterval: 4 * time.Millisecond}}
	frames := [][]byte{make([]byte, 240), make([]byte, 240)}
	s, err := NewSession(cfg, frames)
	if err != nil {
		t.Fatal(err)
	}
	out := drain(t, s, -1)
	var dues []time.Duration
	var counts []uint32
	for _, o := range out {
		dues = append(dues, o.due/time.Millisecond)
		if o.p.Op == OpTransmit {
			counts = append(counts, o.p.SampleCount)
		}
	}
	want := []time.Duration{0, 5, 10, 40, 47, 51, 55}
	if len(dues) != len(want) {
		t.Fatalf("dues %v, want %v", dues, want)
	}
	for i := range want {
		if dues[i] != want[i] {
			t.Fatalf("dues %v, want %v", dues, want)
		}
	}
	if counts[1]-counts[0] != 240 {
		t.Errorf("30 ms frames step %d, want 240", counts[1]-counts[0])
	}
}

func TestSessionStop(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name       string
		stopBefore int
		wantOps    string        // A alert, T transmit, E end
		firstEnd   time.Duration // due of the first End
	}{
		{"before anything", 0, "", 0},
		{"during alerts", 3, "3A12E", 60*ms + 50*ms},
		{"after alerts", 31, "31A12E", 900*ms + 50*ms},
		{"mid audio", 33, "31A2T12E", 950*ms + 50*ms},
		{"during ends", 31 + 10 + 2, "31A10T12E", 1110*ms + 50*ms},
		{"never", -1, "31A10T12E", 1110*ms + 50*ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSession(goldenConfig(), silence(10))
			if err != nil {
				t.Fatal(err)
			}
			out := drain(t, s, tt.stopBefore)
			var ops []byte
			for _, o := range out {
				ops = append(ops, "ATE"[map[Op]int{OpAlert: 0, OpTransmit: 1, OpEnd: 2}[o.p.Op]])
			}
			if got, want := runLength(ops), tt.wantOps; got != want {
				t.Fatalf("ops %s, want %s", got, want)
			}
			for i, o := range out {
				if o.p.Op == OpEnd {
					if o.due != tt.firstEnd {
						t.Fatalf("first End due %v, want %v", o.due, tt.firstEnd)
					}
					for j := i + 1; j < len(out); j++ {
						if out[j].due-out[j-1].due != 30*ms {
							t.Fatalf("End %d gap %v", j-i, out[j].due-out[j-1].due)
						}
					}
					break
				}
			}
		})
	}
}

// runLength compresses "AAAT" to "3AT".
func runLength(ops []byte) string {
	var sb strings.Builder
	for i := 0; i < len(ops); {
		j := i
		for j < len(ops) && ops[j] == ops[i] {
			j++
		}
		if j-i > 1 {
			sb.WriteString(strconv.Itoa(j - i))
		}
		sb.WriteByte(ops[i])
		i = j
	}
	return sb.String()
}

func TestSessionNoFrames(t *testing.T) {
	s, err := NewSession(goldenConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := drain(t, s, -1)
	if len(out) != 43 || out[30].p.Op != OpAlert || out[31].p.Op != OpEnd || out[31].due != 950*time.Millisecond {
		t.Fatalf("%d packets; packet 31 %s at %v", len(out), out[31].p.Op, out[31].due)
	}
}

func TestSessionSharesFrames(t *testing.T) {
	frames := numbered(3)
	keep := make([][]byte, len(frames))
	for i := range frames {
		keep[i] = bytes.Clone(frames[i])
	}
	for range 2 {
		s, err := NewSession(goldenConfig(), frames)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, 4)
		for {
			if _, ok := s.Due(); !ok {
				break
			}
			buf = s.Append(buf[:0])
		}
	}
	for i := range frames {
		if !bytes.Equal(frames[i], keep[i]) {
			t.Fatalf("frame %d modified", i)
		}
	}
}

// TestSessionRewind takes back packets across phase boundaries (Transmits
// back into the Alerts) and checks that the session then yields exactly
// the packets and due times of one never rewound, and that a Stop after a
// Rewind starts the End burst after the last packet that was kept.
func TestSessionRewind(t *testing.T) {
	const ms = time.Millisecond
	for _, tt := range []struct {
		name           string
		appended, back int
	}{
		{"within audio", 36, 3},
		{"into alerts", 35, 6},
		{"everything", 10, 10},
		{"none", 33, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ref, _ := NewSession(goldenConfig(), numbered(10))
			s, _ := NewSession(goldenConfig(), numbered(10))
			for range tt.appended {
				s.Append(nil)
			}
			for range tt.appended - tt.back {
				ref.Append(nil)
			}
			s.Rewind(tt.back)
			if got, want := drain(t, s, -1), drain(t, ref, -1); !sameSent(got, want) {
				t.Fatalf("after rewinding %d of %d: %d packets, want %d (or contents differ)", tt.back, tt.appended, len(got), len(want))
			}
		})
	}
	// Stop after a Rewind: 33 appended (31 A, 2 T), 2 taken back, so
	// the End burst follows the last Alert (due 900 ms) by EndDelay.
	s, _ := NewSession(goldenConfig(), numbered(10))
	for range 33 {
		s.Append(nil)
	}
	s.Rewind(2)
	s.Stop()
	if due, ok := s.Due(); !ok || due != 900*ms+50*ms {
		t.Fatalf("first End due %v (%v), want 950ms", due, ok)
	}
	if p, err := Parse(s.Append(nil)); err != nil || p.Op != OpEnd {
		t.Fatalf("after Rewind and Stop: %+v, %v", p, err)
	}
}

func sameSent(a, b []sent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].due != b[i].due || a[i].p.Op != b[i].p.Op || a[i].p.SampleCount != b[i].p.SampleCount || !bytes.Equal(a[i].p.Current, b[i].p.Current) || !bytes.Equal(a[i].p.Redundant, b[i].p.Redundant) {
			return false
		}
	}
	return true
}
