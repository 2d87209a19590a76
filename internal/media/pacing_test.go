package media

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"
)

// BenchmarkHoldMusicWakeup plays hold music to N legs (PCMU and G.722,
// half each) through the engine's pacer and reports the heap allocations
// per pacer wake-up, counted over the whole process while nothing but the
// legs runs: the per-frame path (music produced once per codec, a header
// per leg, sendmmsg) must allocate nothing. One op is one second of music.
func BenchmarkHoldMusicWakeup(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("legs=%d", n), func(b *testing.B) { benchHoldMusic(b, n) })
	}
}

func benchHoldMusic(b *testing.B, n int) {
	base := 24000 + (os.Getpid()%100)*200
	e, err := NewEngine(Config{IP: netip.MustParseAddr("127.0.0.1"), PortMin: base, PortMax: base + 2*n + 1},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// One socket takes every leg's packets, unread: the kernel drops what
	// overflows, and no reader allocates.
	sinkConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sinkConn.Close()
	port := sinkConn.LocalAddr().(*net.UDPAddr).Port
	for i := range n {
		l, err := e.NewLeg(LegOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		format := "0"
		if i%2 == 1 {
			format = "9"
		}
		offer := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\na=sendrecv\r\n", port, format)
		if _, err := l.Answer([]byte(offer)); err != nil {
			b.Fatal(err)
		}
		l.PlayMusic()
	}
	waitSent := func(min uint64) {
		for e.pacer.Counters().Packets < min {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitSent(uint64(10 * n)) // warm up: buffers and encoders grown

	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0 := e.pacer.Counters()
	b.ResetTimer()
	for range b.N {
		time.Sleep(time.Second)
	}
	b.StopTimer()
	c1 := e.pacer.Counters()
	runtime.ReadMemStats(&m1)
	wakeups := c1.Wakeups - c0.Wakeups
	if wakeups == 0 {
		b.Fatal("no wake-ups")
	}
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(wakeups), "allocs/wakeup")
	b.ReportMetric(float64(c1.Packets-c0.Packets)/float64(wakeups), "packets/wakeup")
	b.ReportMetric(float64(c1.LateWakeups-c0.LateWakeups), "late-wakeups")
}

// TestMusicOverIPv6 plays hold music on a leg bound to ::1: the pacer
// sends through the leg's own socket whatever its family.
func TestMusicOverIPv6(t *testing.T) {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatalf("no IPv6 loopback (the pacer must send over IPv6 too; enable ::1 on lo): %v", err)
	}
	defer c.Close()
	base := 26000 + (os.Getpid()%100)*20
	e, err := NewEngine(Config{IP: netip.IPv6Loopback(), PortMin: base, PortMax: base + 9}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	l, err := e.NewLeg(LegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	offer := fmt.Sprintf("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=sendrecv\r\n", c.LocalAddr().(*net.UDPAddr).Port)
	if _, err := l.Answer([]byte(offer)); err != nil {
		t.Fatal(err)
	}
	l.PlayMusic()
	buf := make([]byte, 1500)
	for range 3 {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no RTP over IPv6: %v", err)
		}
		if n != 12+160 {
			t.Fatalf("packet of %d bytes, want 172", n)
		}
	}
}
