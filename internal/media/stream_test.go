package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// A transcoding bridge's output timestamps follow the sender's timing: a
// stall on our side that delivers packets late and in a burst keeps them
// one frame apart, while a real pause in the sender's stream (its
// timestamps jump) still shows as a jump and a new talkspurt.
func TestTranscodedTimestampsFollowTheSender(t *testing.T) {
	const step = 160 // 20 ms at 8 kHz out
	type pkt struct {
		at      time.Duration // arrival
		seq     uint16
		ts      uint32 // sender's, 16 kHz clock of 320 per packet
		wantInc uint32 // output timestamp increment
		mark    bool
	}
	for _, tc := range []struct {
		name string
		pkts []pkt
	}{
		{"stall on our side", []pkt{
			{0, 1, 1000, 0, true},
			{20 * time.Millisecond, 2, 1320, step, false},
			{40 * time.Millisecond, 3, 1640, step, false},
			// 200 ms with nothing read, then the backlog at once.
			{240 * time.Millisecond, 4, 1960, step, false},
			{241 * time.Millisecond, 5, 2280, step, false},
			{242 * time.Millisecond, 6, 2600, step, false},
		}},
		{"sender paused", []pkt{
			{0, 1, 1000, 0, true},
			{20 * time.Millisecond, 2, 1320, step, false},
			// silence suppressed for 500 ms: timestamps jump, sequence does not
			{520 * time.Millisecond, 3, 1320 + 320*25, 500 * 8, true},
			{540 * time.Millisecond, 4, 1320 + 320*26, step, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d bridgeDir
			o := outStream{clock: 8000}
			base := time.Unix(1000, 0)
			var last uint32
			for i, p := range tc.pkts {
				cont := d.continues(&rtp.Header{SSRC: 7, SequenceNumber: p.seq, Timestamp: p.ts})
				_, ts, m := o.next(base.Add(p.at), step, cont)
				if i > 0 && ts-last != p.wantInc {
					t.Errorf("packet %d: timestamp +%d, want +%d", i, ts-last, p.wantInc)
				}
				if m != p.mark {
					t.Errorf("packet %d: marker %v, want %v", i, m, p.mark)
				}
				last = ts
			}
		})
	}
}
