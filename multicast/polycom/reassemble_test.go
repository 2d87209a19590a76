package polycom

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// page renders a whole session's packets (parsed) for channel 26.
func page(t *testing.T, serial uint32, first uint32, frames [][]byte) []Packet {
	t.Helper()
	cfg := goldenConfig()
	cfg.HostSerial, cfg.FirstSampleCount = serial, first
	s, err := NewSession(cfg, frames)
	if err != nil {
		t.Fatal(err)
	}
	var out []Packet
	for {
		if _, ok := s.Due(); !ok {
			return out
		}
		p, err := Parse(s.Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

// summary renders events compactly: S(serial) F<idx>[r] L<n> E<reason>.
func summary(evs []Event, first uint32) string {
	var parts []string
	for _, e := range evs {
		switch e.Kind {
		case EventStart:
			parts = append(parts, fmt.Sprintf("S%d", e.HostSerial))
		case EventFrame:
			s := fmt.Sprintf("F%d", (e.SampleCount-first)/160)
			if e.Recovered {
				s += "r"
			}
			parts = append(parts, s)
		case EventLost:
			parts = append(parts, fmt.Sprintf("L%d", e.Lost))
		case EventEnd:
			parts = append(parts, fmt.Sprintf("E%d", e.Reason))
		}
	}
	return strings.Join(parts, " ")
}

func TestReassembler(t *testing.T) {
	const first = 0xfffffe00 // sample count wraps during the page
	frames := numbered(6)
	full := page(t, 5, first, frames)
	transmit := func(k int) int { return 31 + k } // index of Transmit k in full
	drop := func(idx ...int) []Packet {
		var out []Packet
	next:
		for i, p := range full {
			for _, d := range idx {
				if i == d {
					continue next
				}
			}
			out = append(out, p)
		}
		return out
	}
	tests := []struct {
		name string
		pkts []Packet
		r    Reassembler
		want string
	}{
		{"clean", full, Reassembler{}, "S5 F0 F1 F2 F3 F4 F5 E1"},
		{"one lost, recovered", drop(transmit(2)), Reassembler{}, "S5 F0 F1 F2r F3 F4 F5 E1"},
		{"two lost", drop(transmit(2), transmit(3)), Reassembler{}, "S5 F0 F1 L1 F3r F4 F5 E1"},
		{"first lost", drop(transmit(0)), Reassembler{}, "S5 F1 F2 F3 F4 F5 E1"},
		{"duplicate and reordered", append(full[:transmit(3)+1:transmit(3)+1], append([]Packet{full[transmit(3)], full[transmit(1)]}, full[transmit(4):]...)...), Reassembler{}, "S5 F0 F1 F2 F3 F4 F5 E1"},
		{"alerts missed", full[31:], Reassembler{}, ""},
		{"alerts missed, accepted", full[31:], Reassembler{AcceptWithoutAlert: true}, "S5 F0 F1 F2 F3 F4 F5 E1"},
		{"three ends required", full, Reassembler{EndsRequired: 3}, "S5 F0 F1 F2 F3 F4 F5 E1"},
		{"no end", full[:37], Reassembler{}, "S5 F0 F1 F2 F3 F4 F5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			r.Channel = 26
			now := time.Unix(0, 0)
			var evs []Event
			for i := range tt.pkts {
				now = now.Add(20 * time.Millisecond)
				evs = r.Push(evs, now, &tt.pkts[i])
			}
			if got := summary(evs, first); got != tt.want {
				t.Fatalf("events %q, want %q", got, tt.want)
			}
			for _, e := range evs {
				if e.Kind == EventFrame && !bytes.Equal(e.Frame, frames[(e.SampleCount-first)/160]) {
					t.Fatalf("frame at %#x has the wrong audio", e.SampleCount)
				}
				if e.Kind == EventStart && e.CallerID != "parkpage" {
					t.Fatalf("caller ID %q", e.CallerID)
				}
			}
		})
	}
}

func TestReassemblerTimeoutAndCollision(t *testing.T) {
	a := page(t, 100, 0, numbered(3))
	b := page(t, 50, 0, numbered(3))
	c := page(t, 200, 0, numbered(3))
	r := Reassembler{Channel: 26, Timeout: 300 * time.Millisecond}
	now := time.Unix(0, 0)
	var evs []Event
	push := func(p Packet) {
		now = now.Add(20 * time.Millisecond)
		evs = r.Push(evs, now, &p)
	}
	push(a[0])  // alert: page of serial 100 starts
	push(a[31]) // F0
	push(c[0])  // higher serial: ignored
	push(c[31])
	push(b[0]) // lower serial takes over
	push(b[31])
	seen := now
	push(a[32]) // the loser is ignored now
	push(a[34]) // ...even its End
	if got, want := summary(evs, 0), "S100 F0 E3 S50 F0"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if s, ok := r.Active(); !ok || s != 50 {
		t.Fatalf("active %d %v", s, ok)
	}
	evs = r.Tick(evs[:0], seen.Add(299*time.Millisecond))
	if len(evs) != 0 {
		t.Fatalf("timed out early: %v", summary(evs, 0))
	}
	evs = r.Tick(evs, seen.Add(301*time.Millisecond))
	if got := summary(evs, 0); got != "E2" {
		t.Fatalf("after silence %q, want E2", got)
	}
	if _, ok := r.Active(); ok {
		t.Fatal("still active after timeout")
	}
	other := a[0]
	other.Channel = 27
	evs = r.Push(evs[:0], now, &other)
	if len(evs) != 0 || r.Stats.Ignored == 0 {
		t.Fatalf("other channel not ignored: %v", summary(evs, 0))
	}
}

func TestReassemblerStats(t *testing.T) {
	full := page(t, 1, 0, numbered(8))
	var pkts []Packet
	for i, p := range full {
		if i == 33 || i == 35 || i == 36 { // transmit 2 (recovered), 4 and 5 (one lost, one recovered)
			continue
		}
		pkts = append(pkts, p)
	}
	r := Reassembler{Channel: 26}
	var evs []Event
	for i := range pkts {
		evs = r.Push(evs[:0], time.Unix(0, int64(i)), &pkts[i])
	}
	want := ReassemblerStats{Alerts: 31, Transmits: 5, Ends: 12, Frames: 7, Recovered: 2, Lost: 1}
	if r.Stats != want {
		t.Fatalf("stats %+v, want %+v", r.Stats, want)
	}
}

// FuzzReassembler feeds arbitrary packet streams (each packet prefixed by its
// length byte) and checks the invariants: events pair Start/End, and frames of
// one page come in strictly increasing sample-count order.
func FuzzReassembler(f *testing.F) {
	var seed []byte
	for _, name := range []string{"alert.hex", "transmit-first.hex", "transmit-second.hex", "end.hex"} {
		b := readGolden(f, name)
		if len(b) > 255 {
			b = append(b[:26:26], b[len(b)-160:]...) // shrink to a single-frame transmit
		}
		seed = append(append(seed, byte(len(b))), b...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := Reassembler{Channel: 26, AcceptWithoutAlert: len(stream)%2 == 0}
		now := time.Unix(0, 0)
		var evs []Event
		active, haveLast := false, false
		var last uint32
		for len(stream) > 0 {
			n := min(int(stream[0]), len(stream)-1)
			b := stream[1 : 1+n]
			stream = stream[1+n:]
			now = now.Add(time.Duration(n) * time.Millisecond)
			p, err := Parse(b)
			if err != nil {
				continue
			}
			for _, e := range r.Push(evs[:0], now, &p) {
				switch e.Kind {
				case EventStart:
					if active {
						t.Fatal("start inside a page")
					}
					active, haveLast = true, false
				case EventEnd:
					if !active {
						t.Fatal("end outside a page")
					}
					active = false
				case EventFrame, EventLost:
					if !active {
						t.Fatal("audio outside a page")
					}
					if haveLast && int32(e.SampleCount-last) <= 0 {
						t.Fatalf("sample count %#x after %#x", e.SampleCount, last)
					}
					if e.Kind == EventFrame {
						last, haveLast = e.SampleCount, true
					}
				}
			}
		}
	})
}
