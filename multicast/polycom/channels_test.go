package polycom

import (
	"bytes"
	"testing"
)

func TestPagingChannel(t *testing.T) {
	tests := []struct{ group, channel int }{
		{1, 26}, {2, 27}, {PriorityPagingGroup, PagingPriorityChannel}, {EmergencyPagingGroup, PagingEmergencyChannel},
		{0, 0}, {26, 0}, {-1, 0},
	}
	for _, tt := range tests {
		ch, err := PagingChannel(tt.group)
		if ch != tt.channel || (err != nil) != (tt.channel == 0) {
			t.Errorf("PagingChannel(%d) = %d, %v; want %d", tt.group, ch, err, tt.channel)
		}
	}
}

// TestEveryChannel sends a one-frame page on each channel 1–50 and checks
// the channel byte of every packet, and that 0 and 51 are refused.
func TestEveryChannel(t *testing.T) {
	for ch := 0; ch <= 51; ch++ {
		cfg := goldenConfig()
		cfg.Channel = ch
		s, err := NewSession(cfg, silence(1))
		if ch < MinChannel || ch > MaxChannel {
			if err == nil {
				t.Errorf("channel %d accepted", ch)
			}
			continue
		}
		if err != nil {
			t.Fatalf("channel %d: %v", ch, err)
		}
		for {
			if _, ok := s.Due(); !ok {
				break
			}
			b := s.Append(nil)
			p, err := Parse(b)
			if err != nil || int(p.Channel) != ch || b[1] != byte(ch) {
				t.Fatalf("channel %d: packet %x parsed as %+v, %v", ch, b, p.Header, err)
			}
		}
	}
	// The emergency channel's Alert is the golden Alert with byte 1 = 0x32.
	want := readGolden(t, "alert.hex")
	want[1] = 0x32
	cfg := goldenConfig()
	cfg.Channel = PagingEmergencyChannel
	s, _ := NewSession(cfg, silence(1))
	if got := s.Append(nil); !bytes.Equal(got, want) {
		t.Errorf("emergency Alert %x, want %x", got, want)
	}
}
