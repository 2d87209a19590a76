package pacer

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

// recvTimeout bounds every wait for a packet: generous, since the machine
// may be busy; a healthy run never gets near it.
const recvTimeout = 5 * time.Second

// receiver is a UDP socket on 127.0.0.1 standing in for a phone or an
// amplifier.
type receiver struct {
	c   *net.UDPConn
	buf []byte
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadBuffer(4 << 20)
	return &receiver{c: c, buf: make([]byte, 2048)}
}

func (r *receiver) addr() *net.UDPAddr { return r.c.LocalAddr().(*net.UDPAddr) }

// next returns the next datagram, failing the test if none arrives in time.
func (r *receiver) next(t testing.TB) []byte {
	t.Helper()
	if err := r.c.SetReadDeadline(time.Now().Add(recvTimeout)); err != nil {
		t.Fatal(err)
	}
	n, err := r.c.Read(r.buf)
	if err != nil {
		t.Fatalf("receiver %v: %v", r.addr(), err)
	}
	return append([]byte(nil), r.buf[:n]...)
}

// sink sends on one socket to one address.
type sink struct {
	pc   *ipv4.PacketConn
	addr net.Addr
}

func (s sink) Conn() (*ipv4.PacketConn, net.Addr) { return s.pc, s.addr }

// newConn opens a sending socket on 127.0.0.1.
func newConn(t testing.TB) *ipv4.PacketConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ipv4.NewPacketConn(c)
}

// seqSource sends n packets (n < 0: until stopped) every interval, each
// "id:seq". It is a stand-in for an RTP or Polycom stream.
type seqSource struct {
	id       int
	n        int
	interval time.Duration
	seq      int
	stopped  bool
}

func (s *seqSource) Due() (time.Duration, bool) {
	if s.stopped || (s.n >= 0 && s.seq >= s.n) {
		return 0, false
	}
	return time.Duration(s.seq) * s.interval, true
}

func (s *seqSource) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.id))
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.seq))
	s.seq++
	return dst
}

func (s *seqSource) Stop() { s.stopped = true }

// parse splits a seqSource packet.
func parse(t testing.TB, b []byte) (id, seq int) {
	t.Helper()
	if len(b) != 8 {
		t.Fatalf("packet of %d bytes, want 8", len(b))
	}
	return int(binary.BigEndian.Uint32(b)), int(binary.BigEndian.Uint32(b[4:]))
}

// startPacer runs a Pacer until the test ends.
func startPacer(t testing.TB, log *slog.Logger, opts ...Option) *Pacer {
	t.Helper()
	if log == nil {
		log = logtest.Stderr(slog.LevelWarn)
	}
	p := New(log, opts...)
	runtest.Start(t, "pacer", p.Run)
	return p
}

// waitThread waits for the loop thread to start and returns its id.
func waitThread(t testing.TB, p *Pacer) int {
	t.Helper()
	deadline := time.Now().Add(recvTimeout)
	for time.Now().Before(deadline) {
		if tid := p.ThreadID(); tid != 0 {
			return tid
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("pacer thread did not start")
	return 0
}

// switches is how often thread tid has gone to sleep (voluntary context
// switches): the loop sleeps once per wake-up, in its timerfd read.
func switches(t testing.TB, tid int) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
			var n int
			if _, err := fmt.Sscan(strings.TrimSpace(v), &n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no voluntary_ctxt_switches in /proc status")
	return 0
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
	rec := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { rec += " " + a.String(); return true })
	c.recs = append(c.recs, rec)
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

// result waits for a Play's Result.
func result(t testing.TB, c <-chan Result) Result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(recvTimeout):
		t.Fatal("no result")
		return Result{}
	}
}

// threadState is the state letter of thread tid ('S': asleep, 'R': running).
func threadState(t testing.TB, tid int) byte {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ...: comm may hold spaces, so look after the last ')'.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 || i+2 >= len(raw) {
		t.Fatalf("odd stat line %q", raw)
	}
	return raw[i+2]
}
