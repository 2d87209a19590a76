package multicast

import (
	"bytes"
	"context"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/multicast/rtp"
)

func pcmuFrames(n int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte(i)}, 160)
	}
	return frames
}

func pcmuStream(t testing.TB, frames [][]byte) *rtp.Stream {
	t.Helper()
	info, _ := codec.Lookup("pcmu")
	s, err := rtp.NewStream(rtp.NewConfig(info), frames)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSharedSendersBatch runs many streams on Senders sharing one socket,
// all started together so the Pacer sends their packets in the same
// sendmmsg batches. (The Pacer's own tests are in internal/pacer.)
func TestSharedSendersBatch(t *testing.T) {
	t.Parallel()
	const group, streams, frames = "239.77.5.1", 20, 10
	p := startPacer(t, nil, pacer.WithStartGrid(20*time.Millisecond))
	l := listen(t, group)
	first := loSender(t, group, l.port)
	var results []<-chan Result
	for i := range streams {
		s := first
		if i > 0 {
			var err error
			if s, err = first.Share(group, l.port); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
		}
		results = append(results, p.Play(context.Background(), s, pcmuStream(t, pcmuFrames(frames))))
	}
	bySSRC := map[uint32][]pionrtp.Packet{}
	for range streams * frames {
		var pkt pionrtp.Packet
		if err := pkt.Unmarshal(l.next(t, recvTimeout)); err != nil {
			t.Fatal(err)
		}
		bySSRC[pkt.SSRC] = append(bySSRC[pkt.SSRC], pkt)
	}
	if len(bySSRC) != streams {
		t.Fatalf("%d streams received, want %d", len(bySSRC), streams)
	}
	for _, pkts := range bySSRC {
		checkRTP(t, pkts, 0, 160, pcmuFrames(frames))
	}
	for _, r := range results {
		if res := <-r; res.Err != nil || res.Packets != frames {
			t.Fatalf("result %+v", res)
		}
	}
}
