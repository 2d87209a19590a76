package pacer

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// aheadSource is a seqSource the Pacer may queue ahead; after Stop it
// sends closing packets with id+1000, continuing the sequence numbers.
type aheadSource struct {
	seqSource
	closing int // closing packets left after Stop
	rewound int
}

func (s *aheadSource) Due() (time.Duration, bool) {
	if s.stopped {
		return time.Duration(s.seq) * s.interval, s.closing > 0
	}
	return s.seqSource.Due()
}

func (s *aheadSource) Append(dst []byte) []byte {
	if s.stopped {
		s.closing--
		dst = binary.BigEndian.AppendUint32(dst, uint32(s.id+1000))
		dst = binary.BigEndian.AppendUint32(dst, uint32(s.seq))
		s.seq++
		return dst
	}
	return s.seqSource.Append(dst)
}

func (s *aheadSource) Rewind(n int) { s.seq -= n; s.rewound += n }

// stallSource blocks the loop thread in its first Append, as a GC phase
// or a wait for a P would.
type stallSource struct {
	stall time.Duration
	n     int
}

func (s *stallSource) Due() (time.Duration, bool) { return 100 * time.Millisecond, s.n == 0 }
func (s *stallSource) Append(dst []byte) []byte {
	s.n++
	time.Sleep(s.stall)
	return append(dst, 0, 0, 0, 99, 0, 0, 0, 0)
}
func (s *stallSource) Stop() {}

// stampReceiver reads packets with their kernel receive times.
func stampReceiver(t *testing.T) (*net.UDPConn, func() (id, seq int, at int64)) {
	t.Helper()
	r := newReceiver(t)
	raw, _ := r.c.SyscallConn()
	_ = raw.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
	pc := ipv4.NewPacketConn(r.c)
	msgs := []ipv4.Message{{Buffers: [][]byte{make([]byte, 64)}, OOB: make([]byte, 128)}}
	return r.c, func() (int, int, int64) {
		t.Helper()
		_ = r.c.SetReadDeadline(timeout())
		msgs[0].OOB = msgs[0].OOB[:cap(msgs[0].OOB)]
		if _, err := pc.ReadBatch(msgs, 0); err != nil {
			t.Fatalf("receive: %v", err)
		}
		id, seq := parse(t, msgs[0].Buffers[0][:msgs[0].N])
		return id, seq, rxTime(msgs[0].OOB[:msgs[0].NN])
	}
}

// TestAheadSurvivesStall stalls the loop thread for 500 ms in the middle
// of a 20 ms stream. Queued ahead in the kernel, the stream's packets keep
// their cadence through the stall; sent from the loop (look-ahead off),
// the stall shows as a gap of its length, which proves the stall works.
func TestAheadSurvivesStall(t *testing.T) {
	ringOrFail(t)
	const stall, frames = 500 * time.Millisecond, 50
	for _, tt := range []struct {
		name      string
		lookahead time.Duration
		gapOK     func(time.Duration) bool
		want      string
	}{
		{"ahead", 800 * time.Millisecond, func(g time.Duration) bool { return g < 250*time.Millisecond }, "< 250ms"},
		{"off", 0, func(g time.Duration) bool { return g >= stall*9/10 }, ">= the stall"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startPacer(t, nil, WithLookahead(tt.lookahead))
			rc, recv := stampReceiver(t)
			to := sink{newConn(t), rc.LocalAddr()}
			res := p.Play(context.Background(), to, &aheadSource{seqSource: seqSource{n: frames, interval: Frame}})
			// Let the first packets go out, then stall the loop.
			_, _, last := recv()
			stalled := p.Play(context.Background(), to, &stallSource{stall: stall})
			var maxGap time.Duration
			for want := 1; want < frames; {
				id, seq, at := recv()
				if id == 99 {
					continue // the staller's packet
				}
				if seq != want {
					t.Fatalf("packet %d, want %d", seq, want)
				}
				maxGap = max(maxGap, time.Duration(at-last))
				last = at
				want++
			}
			if r := result(t, res); r.Err != nil || r.Packets != frames {
				t.Fatalf("result %+v", r)
			}
			result(t, stalled)
			if !tt.gapOK(maxGap) {
				t.Fatalf("look-ahead %v, loop stalled %v: largest gap %v, want %s", tt.lookahead, stall, maxGap, tt.want)
			}
			if c := p.Counters(); (tt.lookahead > 0) != (c.Ahead > 0) {
				t.Fatalf("look-ahead %v: %d packets sent by the kernel", tt.lookahead, c.Ahead)
			}
			t.Logf("look-ahead %v: largest gap %v across a %v stall", tt.lookahead, maxGap, stall)
		})
	}
}

// TestAheadCancel cancels a stream with a second queued in the kernel: it
// stops at once (far fewer packets than were queued), the packets that
// never left are rewound, and the closing packets continue the sequence
// right after the last packet sent.
func TestAheadCancel(t *testing.T) {
	ringOrFail(t)
	t.Parallel()
	const lookahead = time.Second
	p := startPacer(t, nil, WithLookahead(lookahead))
	rc, recv := stampReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	src := &aheadSource{seqSource: seqSource{id: 1, n: -1, interval: Frame}, closing: 3}
	c := p.Play(ctx, sink{newConn(t), rc.LocalAddr()}, src)
	for want := 0; want < 5; want++ {
		if _, seq, _ := recv(); seq != want {
			t.Fatalf("packet %d, want %d", seq, want)
		}
	}
	cancel()
	res := result(t, c)
	if !errors.Is(res.Err, context.Canceled) || !res.Stopped {
		t.Fatalf("result %+v", res)
	}
	// Every packet counted as sent arrives in order, then the closing ones.
	data := 5
	for ; data < res.Packets-3; data++ {
		if id, seq, _ := recv(); id != 1 || seq != data {
			t.Fatalf("got %d:%d, want 1:%d", id, seq, data)
		}
	}
	for k := range 3 {
		if id, seq, _ := recv(); id != 1001 || seq != data+k {
			t.Fatalf("closing packet %d: got %d:%d, want 1001:%d", k, id, seq, data+k)
		}
	}
	if src.rewound == 0 {
		t.Fatal("nothing was rewound: the cancel found nothing queued ahead")
	}
	// A second of packets was queued; the stop took effect long before.
	if data > 5+int(lookahead/Frame)/2 {
		t.Fatalf("%d packets went out before the stop took effect (look-ahead %d)", data, lookahead/Frame)
	}
	_ = rc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := rc.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a packet (%d bytes) after the closing ones", n)
	}
	t.Logf("%d data packets sent, %d rewound, then 3 closing", data, src.rewound)
}

// TestSendingModeLogged checks that the loop says once how it sends, and
// why when it cannot do better: the kernel timing rendered streams
// (io_uring-timed), io_uring at due times, or sendmmsg.
func TestSendingModeLogged(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []Option
		want string
	}{
		{"default", nil, "mode=io_uring-timed"},
		{"look-ahead off", []Option{WithLookahead(0)}, "mode=io_uring"},
		{"io_uring off", []Option{WithIOUring(false)}, "mode=sendmmsg"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logCapture{}
			p := startPacer(t, slog.New(logs), tt.opts...)
			r := newReceiver(t)
			if res := result(t, p.Play(context.Background(), sink{newConn(t), r.addr()}, &seqSource{n: 1, interval: Frame})); res.Err != nil {
				t.Fatal(res.Err)
			}
			if n := logs.countAttr(tt.want); n != 1 {
				t.Fatalf("%q logged %d times, want once: %q", tt.want, n, logs.recs)
			}
		})
	}
}

// countAttr counts the records carrying attr ("key=value").
func (c *logCapture) countAttr(attr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.recs {
		if strings.HasSuffix(r, " "+attr) || strings.Contains(r, " "+attr+" ") {
			n++
		}
	}
	return n
}
