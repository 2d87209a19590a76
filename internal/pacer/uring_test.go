package pacer

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// ringOrFail fails a test of the io_uring path where the kernel does not
// offer io_uring: the Pacer then falls back to sendmmsg in production, but
// a test machine must prove the path the appliance uses.
func ringOrFail(t *testing.T) {
	t.Helper()
	r, err := newRing()
	if err != nil {
		t.Fatalf("io_uring unavailable here (kernel.io_uring_disabled, or a seccomp filter?): %v", err)
	}
	r.close()
}

// TestSendPaths plays streams on sockets of their own (call legs), on
// IPv4 and IPv6, to an address and on a connected socket, through io_uring
// and through sendmmsg: every packet arrives, in order, from the stream's
// own socket, and a refused packet fails only its stream.
func TestSendPaths(t *testing.T) {
	for _, ring := range []bool{true, false} {
		t.Run(map[bool]string{true: "io_uring", false: "sendmmsg"}[ring], func(t *testing.T) {
			if ring {
				ringOrFail(t)
			}
			t.Parallel()
			const legs, frames = 20, 5
			p := startPacer(t, nil, WithStartGrid(Frame), WithIOUring(ring))
			r := newReceiver(t)
			var (
				results []<-chan Result
				from    []int // each leg's source port
			)
			for i := range legs {
				pc := newConn(t)
				from = append(from, pc.PacketConn.LocalAddr().(*net.UDPAddr).Port)
				results = append(results, p.Play(context.Background(), sink{pc, r.addr()}, &seqSource{id: i, n: frames, interval: Frame}))
			}
			// A connected socket: no destination per packet.
			cc, err := net.DialUDP("udp4", nil, r.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			from = append(from, cc.LocalAddr().(*net.UDPAddr).Port)
			results = append(results, p.Play(context.Background(), sink{ipv4.NewPacketConn(cc), nil}, &seqSource{id: legs, n: frames, interval: Frame}))
			// An IPv6 destination on an IPv4 socket: refused, its stream alone fails.
			bad := p.Play(context.Background(), sink{newConn(t), &net.UDPAddr{IP: net.IPv6loopback, Port: 9}}, &seqSource{id: 99, n: frames, interval: Frame})

			next := make([]int, legs+1)
			buf := make([]byte, 64)
			for range (legs + 1) * frames {
				if err := r.c.SetReadDeadline(timeout()); err != nil {
					t.Fatal(err)
				}
				n, src, err := r.c.ReadFromUDP(buf)
				if err != nil {
					t.Fatal(err)
				}
				id, seq := parse(t, buf[:n])
				if id > legs || seq != next[id] {
					t.Fatalf("leg %d: packet %d, want %d", id, seq, next[id])
				}
				if src.Port != from[id] {
					t.Fatalf("leg %d sent from port %d, want its own %d", id, src.Port, from[id])
				}
				next[id]++
			}
			for i, c := range results {
				if res := result(t, c); res.Err != nil || res.Packets != frames {
					t.Fatalf("leg %d: %+v", i, res)
				}
			}
			if res := result(t, bad); res.Err == nil || !errors.Is(res.Err, syscall.EAFNOSUPPORT) && !errors.Is(res.Err, syscall.EINVAL) {
				t.Fatalf("IPv6 destination on an IPv4 socket: %+v", res)
			}
			if p.IOUring() != ring {
				t.Fatalf("IOUring() = %v, want %v", p.IOUring(), ring)
			}
		})
	}
	t.Run("io_uring/ipv6", func(t *testing.T) {
		ringOrFail(t)
		rc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Fatalf("no IPv6 loopback (enable ::1 on lo): %v", err)
		}
		defer rc.Close()
		sc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		p := startPacer(t, nil)
		res := result(t, p.Play(context.Background(), sink{ipv4.NewPacketConn(sc), rc.LocalAddr()}, &seqSource{id: 6, n: 3, interval: Frame}))
		if res.Err != nil || res.Packets != 3 {
			t.Fatalf("%+v", res)
		}
		buf := make([]byte, 64)
		for i := range 3 {
			_ = rc.SetReadDeadline(timeout())
			n, err := rc.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if id, seq := parse(t, buf[:n]); id != 6 || seq != i {
				t.Fatalf("got %d:%d, want 6:%d", id, seq, i)
			}
		}
	})
}

// TestRingLetsGoOfSocket: the ring holds a reference to each socket it
// sends on; once the stream is over it must drop it, or the port stays
// bound after its owner closed the socket (a call leg's RTP port could
// not be used again).
func TestRingLetsGoOfSocket(t *testing.T) {
	ringOrFail(t)
	t.Parallel()
	p := startPacer(t, nil)
	r := newReceiver(t)
	for range 3 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addr := c.LocalAddr().(*net.UDPAddr)
		res := result(t, p.Play(context.Background(), sink{ipv4.NewPacketConn(c), r.addr()}, &seqSource{n: 2, interval: Frame}))
		if res.Err != nil || res.Packets != 2 {
			t.Fatalf("%+v", res)
		}
		if !p.IOUring() {
			t.Fatal("not sending through io_uring")
		}
		c.Close()
		again, err := net.ListenUDP("udp4", addr)
		if err != nil {
			t.Fatalf("port %d still bound after the stream ended and its socket closed: %v", addr.Port, err)
		}
		again.Close()
	}
}

func timeout() time.Time { return time.Now().Add(recvTimeout) }

// Under a low open-file limit (gokrazy's 4096 hard limit, before parkpage
// raises it) the ring still starts, with a smaller socket table: the
// kernel refuses a table larger than the limit.
func TestRingUnderLowFileLimit(t *testing.T) {
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.Cur < 200 {
		t.Fatalf("open-file limit %d: too low to test", saved.Cur)
	}
	low := syscall.Rlimit{Cur: 200, Max: saved.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved) })
	r, err := newRing()
	if err != nil {
		t.Fatalf("ring under a 200-file limit: %v", err)
	}
	defer r.close()
	if n := len(r.free); n != 200 {
		t.Errorf("socket table of %d, want the limit, 200", n)
	}
}
