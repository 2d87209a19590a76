package multicast

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/internal/codec"
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

// TestPacerBatchesStreams runs many streams on one shared socket, all
// started together so their packets go out in the same sendmmsg batches.
func TestPacerBatchesStreams(t *testing.T) {
	t.Parallel()
	const group, streams, frames = "239.77.5.1", 20, 10
	p := startPacer(t, nil, WithStartGrid(20*time.Millisecond))
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

// lateSource is due long before it is played: every packet is late.
type lateSource struct{ n int }

func (s *lateSource) Due() (time.Duration, bool) { return -time.Second, s.n > 0 }
func (s *lateSource) Append(dst []byte) []byte   { s.n--; return append(dst, "late"...) }
func (s *lateSource) Stop()                      {}

func TestPacerCountsLatePackets(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil, WithStartGrid(0))
	l := listen(t, "239.77.5.2")
	res := <-p.Play(context.Background(), loSender(t, "239.77.5.2", l.port), &lateSource{n: 3})
	if res.Err != nil || res.Packets != 3 || res.Late != 3 || res.MaxLate < time.Second || res.Bytes != 12 {
		t.Fatalf("result %+v", res)
	}
	for range 3 {
		if b := l.next(t, recvTimeout); string(b) != "late" {
			t.Fatalf("got %q", b)
		}
	}
}

func TestPacerSendError(t *testing.T) {
	t.Parallel()
	p := startPacer(t, nil)
	s := loSender(t, "239.77.5.3", 5004)
	s.Close()
	res := <-p.Play(context.Background(), s, pcmuStream(t, pcmuFrames(5)))
	if res.Err == nil || res.Packets != 0 {
		t.Fatalf("playing to a closed socket: %+v", res)
	}
}

// badAddrSink shares a good Sender's socket but names an IPv6 destination,
// which the kernel refuses on an IPv4 socket inside the sendmmsg batch.
type badAddrSink struct{ s *Sender }

func (b badAddrSink) Conn() (*ipv4.PacketConn, net.Addr) {
	pc, _ := b.s.Conn()
	return pc, &net.UDPAddr{IP: net.IPv6loopback, Port: 9}
}

// TestPacerBatchError checks that a message the kernel refuses fails only its
// own stream while the rest of the batch still goes out.
func TestPacerBatchError(t *testing.T) {
	t.Parallel()
	const group = "239.77.5.5"
	p := startPacer(t, nil, WithStartGrid(20*time.Millisecond))
	l := listen(t, group)
	good := loSender(t, group, l.port)
	bad := p.Play(context.Background(), badAddrSink{good}, pcmuStream(t, pcmuFrames(5)))
	ok := p.Play(context.Background(), good, pcmuStream(t, pcmuFrames(5)))
	if res := <-bad; res.Err == nil || res.Packets != 0 {
		t.Fatalf("stream to an IPv6 address on an IPv4 socket: %+v", res)
	}
	if res := <-ok; res.Err != nil || res.Packets != 5 {
		t.Fatalf("stream sharing the batch: %+v", res)
	}
	checkRTP(t, receiveRTP(t, l, 5), 0, 160, pcmuFrames(5))
}

func TestPacerShutdown(t *testing.T) {
	t.Parallel()
	p := NewPacer(nil)
	s := loSender(t, "239.77.5.4", 5004)
	// Played before Run: waits for it.
	early := p.Play(context.Background(), s, pcmuStream(t, pcmuFrames(1000)))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	time.Sleep(50 * time.Millisecond) // let a few packets go (not a timing assertion)
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	res := <-early
	if !errors.Is(res.Err, ErrPacerClosed) || res.Packets == 0 {
		t.Fatalf("stream at shutdown: %+v", res)
	}
	if res := <-p.Play(context.Background(), s, pcmuStream(t, pcmuFrames(1))); !errors.Is(res.Err, ErrPacerClosed) {
		t.Fatalf("Play after shutdown: %+v", res)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
	if res := <-p.Play(context.Background(), nil, nil); res.Err == nil {
		t.Fatal("nil sink and source accepted")
	}
}

// logCapture is a slog handler that keeps records.
type logCapture struct {
	mu   sync.Mutex
	recs []string
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Level.String()+" "+r.Message)
	return nil
}
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCapture) WithGroup(string) slog.Handler      { return c }

func (c *logCapture) count(substr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.recs {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

// threadPolicy asks the kernel for the scheduling policy of thread tid.
func threadPolicy(t *testing.T, tid int) uint32 {
	t.Helper()
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		t.Fatalf("sched_getattr(%d): %v", tid, err)
	}
	return attr.Policy
}

// TestPacerPriority checks both outcomes of asking for SCHED_FIFO: refused
// (priority 100 is invalid everywhere, so the kernel always says no) must be
// logged once and playing must carry on; the default request is granted or
// not depending on privileges, and Realtime must agree with the kernel.
func TestPacerPriority(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prio    int
		granted bool // must be granted (false: must not, or either for the default)
		any     bool
	}{
		{"refused", 100, false, false},
		{"disabled", 0, false, false},
		{"default", DefaultPriority, false, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logCapture{}
			p := startPacer(t, slog.New(logs), WithPriority(tt.prio))
			group := []string{"239.77.6.1", "239.77.6.2", "239.77.6.3"}[i]
			l := listen(t, group)
			s := loSender(t, group, l.port)
			res := <-p.Play(context.Background(), s, pcmuStream(t, pcmuFrames(3)))
			if res.Err != nil || res.Packets != 3 {
				t.Fatalf("result %+v", res)
			}
			res = <-p.Play(context.Background(), s, pcmuStream(t, pcmuFrames(2)))
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			for range 5 {
				l.next(t, recvTimeout)
			}
			policy := threadPolicy(t, int(p.tid.Load()))
			if p.Realtime() != (policy == unix.SCHED_FIFO) {
				t.Fatalf("Realtime() = %v but the thread's policy is %d", p.Realtime(), policy)
			}
			if !tt.any && p.Realtime() != tt.granted {
				t.Fatalf("Realtime() = %v, want %v", p.Realtime(), tt.granted)
			}
			refusals := logs.count("not granted")
			switch {
			case tt.prio > 0 && !p.Realtime() && refusals != 1:
				t.Fatalf("refusal logged %d times, want once: %q", refusals, logs.recs)
			case (tt.prio == 0 || p.Realtime()) && refusals != 0:
				t.Fatalf("refusal logged: %q", logs.recs)
			}
			t.Logf("priority %d: realtime %v, logs %q", tt.prio, p.Realtime(), logs.recs)
		})
	}
}
