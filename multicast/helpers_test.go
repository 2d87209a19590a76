package multicast

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

// listener is a real multicast receiver: a socket bound to group:0 and
// joined to the group on lo.
type listener struct {
	*mcasttest.Conn
	pc   *ipv4.PacketConn
	port int
	buf  []byte
}

func listen(t testing.TB, group string) *listener {
	t.Helper()
	c := mcasttest.Listen(t, group, 0)
	return &listener{Conn: c, pc: c.PC, port: c.Port(), buf: make([]byte, 2048)}
}

// next returns the next datagram, failing the test if none arrives in time.
func (l *listener) next(t testing.TB, timeout time.Duration) []byte {
	t.Helper()
	return l.Next(t, timeout)
}

func (l *listener) read(timeout time.Duration) ([]byte, error) { return l.Read(timeout) }

// expectSilence fails if a datagram arrives within d.
func (l *listener) expectSilence(t testing.TB, d time.Duration) {
	t.Helper()
	b, err := l.read(d)
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("unexpected packet of %d bytes", len(b))
	case !errors.As(err, &ne) || !ne.Timeout():
		t.Fatalf("read: %v", err)
	}
}

// loSender opens a Sender on lo with loopback on, as every test must.
func loSender(t testing.TB, group string, port int) *Sender {
	t.Helper()
	s, err := NewSender(SenderConfig{Group: group, Port: port, Interface: "lo", Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startPacer runs a Pacer until the test ends.
func startPacer(t testing.TB, log *slog.Logger, opts ...pacer.Option) *Pacer {
	t.Helper()
	if log == nil {
		log = logtest.Stderr(slog.LevelWarn)
	}
	p := NewPacer(log, opts...)
	runtest.Start(t, "pacer", p.Run)
	return p
}

// sweep is a 16 kHz log sweep 200–3400 Hz (inside G.711's band), n samples.
func sweep(n int) []int16 {
	out := make([]int16, n)
	dur := float64(n) / 16000
	k := math.Log(3400.0 / 200.0)
	for i := range out {
		t := float64(i) / 16000
		out[i] = int16(12000 * math.Sin(2*math.Pi*200*dur/k*(math.Exp(t/dur*k)-1)))
	}
	return out
}

// bestCorrelation is the highest normalised cross-correlation of got against
// want over lags 0..maxLag (codec delay), ignoring the first skip samples
// (filter and codec start-up).
func bestCorrelation(want, got []int16, maxLag, skip int) float64 {
	best := -1.0
	for lag := 0; lag <= maxLag; lag++ {
		var sxy, sxx, syy float64
		for i := skip; i+lag < len(got) && i < len(want); i++ {
			x, y := float64(want[i]), float64(got[i+lag])
			sxy += x * y
			sxx += x * x
			syy += y * y
		}
		if sxx > 0 && syy > 0 {
			best = max(best, sxy/math.Sqrt(sxx*syy))
		}
	}
	return best
}

// tsListener receives with kernel receive timestamps (SO_TIMESTAMPNS), for
// the pacing benchmarks: the stamp is taken when the packet reaches the
// socket, so a slow reader does not distort the gaps.
type tsListener struct {
	*listener
	raw syscall.RawConn
	oob []byte
}

func listenTS(t testing.TB, group string) *tsListener {
	t.Helper()
	l := listen(t, group)
	raw, err := l.pc.PacketConn.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_TIMESTAMPNS: %v %v", err, serr)
	}
	return &tsListener{listener: l, raw: raw, oob: make([]byte, 128)}
}

// readTS returns the next datagram and its kernel receive time (ns, realtime clock).
func (l *tsListener) readTS(timeout time.Duration) ([]byte, int64, error) {
	if err := l.pc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, 0, err
	}
	var n, oobn int
	var rerr error
	err := l.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), l.buf, l.oob, 0)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, 0, err
	}
	msgs, err := unix.ParseSocketControlMessage(l.oob[:oobn])
	if err != nil {
		return nil, 0, err
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS {
			var ts unix.Timespec // the kernel's struct timespec, native layout
			if err := binary.Read(bytes.NewReader(m.Data), binary.NativeEndian, &ts); err != nil {
				return nil, 0, fmt.Errorf("SCM_TIMESTAMPNS: %w", err)
			}
			return l.buf[:n], ts.Nano(), nil
		}
	}
	return nil, 0, errors.New("no SCM_TIMESTAMPNS control message")
}
