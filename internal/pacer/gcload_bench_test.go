package pacer

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// refSenderEnv makes the test binary a reference sender (TestMain): one
// stream, a packet every 20 ms to the given address, from a real-time
// thread in a process that does nothing else. Its gaps are the host's
// stalls (the hypervisor, other processes); a gap of ours beyond them is
// our own runtime's.
const refSenderEnv = "PACER_REFERENCE_SENDER"

const refSSRC = 0xFEFEFEFE

func TestMain(m *testing.M) {
	if addr := os.Getenv(refSenderEnv); addr != "" {
		os.Exit(referenceSender(addr))
	}
	os.Exit(m.Run())
}

func referenceSender(addr string) int {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: DefaultPriority}
	_ = unix.SchedSetAttr(0, &attr, 0) // best effort, as the Pacer's own
	c, err := net.Dial("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	binary.BigEndian.PutUint32(pkt[8:], refSSRC)
	next := Now()
	for seq := uint16(0); ; seq++ {
		next += int64(Frame)
		ts := unix.NsecToTimespec(next)
		for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
		}
		binary.BigEndian.PutUint16(pkt[2:], seq)
		if _, err := c.Write(pkt); err != nil {
			return 0 // the benchmark has gone
		}
	}
}

// BenchmarkGCLoad plays 50 streams of 20 ms packets through a real-time
// Pacer for 10 s while, in the same process, nothing else runs (load=none)
// or one goroutine per CPU allocates as fast as it can into a 64 MB live
// heap (load=gc: the collector runs continuously, with its stop-the-world
// phases, mark workers and assists, and the goroutines hold every P). A
// reference sender in its own real-time process sends one more stream to
// the same receiver: its gaps are the host's stalls, which no sender in a
// process avoids; gap-max-own is the largest of our gaps that does not
// overlap a reference gap over 21 ms. Gaps are measured from kernel
// receive timestamps.
// Target with load=gc on an otherwise quiet machine: p99 ≤ 20.5 ms, max ≤
// 25 ms.
//
// Three ways of sending alternate, PACER_BENCH_RUNS times each (default
// 5), and the medians are reported with the ratio to the same run's
// baseline: "ahead" is the streams queued in the kernel ahead of their
// due time (Ahead sources, the default look-ahead: the path pages take);
// "io_uring" and "sendmmsg" (the baseline, the path before issue 15) send
// each packet from the loop at its due time (look-ahead off, as live
// streams and call legs still are).
func BenchmarkGCLoad(b *testing.B) {
	runs := 5
	if n, err := strconv.Atoi(os.Getenv("PACER_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	sends := []string{"ahead", "io_uring", "sendmmsg"}
	for _, load := range []string{"none", "gc"} {
		b.Run("load="+load, func(b *testing.B) {
			res := map[string][]gcLoadResult{}
			for range b.N {
				for range runs {
					for _, send := range sends {
						res[send] = append(res[send], benchGCLoad(b, load == "gc", send))
					}
				}
			}
			med := func(send string, f func(gcLoadResult) float64) float64 {
				v := make([]float64, 0, len(res[send]))
				for _, r := range res[send] {
					v = append(v, f(r))
				}
				slices.Sort(v)
				return v[len(v)/2]
			}
			p99 := func(r gcLoadResult) float64 { return r.p99 }
			mx := func(r gcLoadResult) float64 { return r.max }
			for _, send := range sends {
				b.ReportMetric(med(send, p99), send+"-gap-p99-ms")
				b.ReportMetric(med(send, mx), send+"-gap-max-ms")
				b.ReportMetric(med(send, func(r gcLoadResult) float64 { return r.ownMax }), send+"-gap-max-own-ms")
			}
			b.ReportMetric(med("ahead", p99)/med("sendmmsg", p99), "ahead/sendmmsg-p99")
			b.ReportMetric(med("ahead", mx)/med("sendmmsg", mx), "ahead/sendmmsg-max")
			var all []gcLoadResult
			for _, send := range sends {
				all = append(all, res[send]...)
			}
			res["all"] = all
			b.ReportMetric(med("all", func(r gcLoadResult) float64 { return r.refP99 }), "ref-gap-p99-ms")
			b.ReportMetric(med("all", func(r gcLoadResult) float64 { return r.refMax }), "ref-gap-max-ms")
			b.ReportMetric(med("ahead", func(r gcLoadResult) float64 { return r.late }), "ahead-late-pkts")
			b.ReportMetric(med("ahead", func(r gcLoadResult) float64 { return r.gcs }), "gc-cycles")
			b.ReportMetric(med("ahead", func(r gcLoadResult) float64 { return r.fifo }), "fifo")
		})
	}
}

// gcLoadResult is one 10 s run's figures.
type gcLoadResult struct {
	p99, max, refP99, refMax float64 // gaps, ms
	ownMax                   float64 // largest gap not overlapping a host stall, ms
	late, gcs, fifo          float64
}

// benchGCLoad: each stream has a socket of its own, as call legs do.
func benchGCLoad(b *testing.B, gc bool, send string) gcLoadResult {
	const streams, frames = 50, 500
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	raw, _ := rx.SyscallConn()
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 32<<20)
		}
	})
	ref := exec.Command(os.Args[0], "-test.run=^$")
	ref.Env = append(os.Environ(), refSenderEnv+"="+rx.LocalAddr().String())
	if err := ref.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ref.Process.Kill(); _ = ref.Wait() }()

	opts := []Option{WithIOUring(send != "sendmmsg")}
	if send != "ahead" {
		opts = append(opts, WithLookahead(0))
	}
	p := New(nil, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	stop := func() {}
	var gcs0 uint32
	if gc {
		stop = allocLoad()
		time.Sleep(500 * time.Millisecond) // the heap reaches its working size
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcs0 = ms.NumGC

	var results []<-chan Result
	for i := range streams {
		pc := ipv4.NewPacketConn(mustListen(b))
		results = append(results, p.Play(ctx, sink{pc, rx.LocalAddr()}, &rtpSource{ssrc: uint32(i + 1), n: frames}))
	}
	stamps := map[uint32][]int64{}
	pcRx := ipv4.NewPacketConn(rx)
	msgs := make([]ipv4.Message, 64)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 256)}
		msgs[i].OOB = make([]byte, 64)
	}
	got := 0
	for got < streams*frames {
		_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := range msgs {
			msgs[i].OOB = msgs[i].OOB[:cap(msgs[i].OOB)]
		}
		n, err := pcRx.ReadBatch(msgs, 0)
		if err != nil {
			b.Fatalf("received %d of %d packets: %v", got, streams*frames, err)
		}
		for _, m := range msgs[:n] {
			if m.N < 12 {
				continue
			}
			ssrc := binary.BigEndian.Uint32(m.Buffers[0][8:12])
			stamps[ssrc] = append(stamps[ssrc], rxTime(m.OOB[:m.NN]))
			if ssrc != refSSRC {
				got++
			}
		}
	}
	runtime.ReadMemStats(&ms)
	stop()
	late := 0
	for _, r := range results {
		res := <-r
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		late += res.Late
	}
	// Host stalls: the reference's gaps over 21 ms. A gap of ours that
	// overlaps one is the host's as much as ours; own is the rest.
	var stalls [][2]int64
	ts := stamps[refSSRC]
	for i := 1; i < len(ts); i++ {
		if ts[i]-ts[i-1] > int64(21*time.Millisecond) {
			stalls = append(stalls, [2]int64{ts[i-1], ts[i]})
		}
	}
	var ours, refs, own []float64
	for ssrc, ts := range stamps {
		for i := 1; i < len(ts); i++ {
			g := float64(ts[i]-ts[i-1]) / 1e6
			if ssrc == refSSRC {
				refs = append(refs, g)
				continue
			}
			ours = append(ours, g)
			if !slices.ContainsFunc(stalls, func(st [2]int64) bool { return ts[i-1] < st[1] && st[0] < ts[i] }) {
				own = append(own, g)
			}
		}
	}
	slices.Sort(ours)
	slices.Sort(refs)
	slices.Sort(own)
	q := func(v []float64, p float64) float64 {
		if len(v) == 0 {
			return 0
		}
		return v[min(len(v)-1, int(p*float64(len(v))))]
	}
	r := gcLoadResult{p99: q(ours, 0.99), max: ours[len(ours)-1], ownMax: q(own, 1), refP99: q(refs, 0.99), refMax: q(refs, 1),
		late: float64(late), gcs: float64(ms.NumGC - gcs0)}
	if p.Realtime() {
		r.fifo = 1
	}
	b.Logf("load gc=%v send=%s: gap p99 %.2f max %.2f ms (%.2f outside host stalls); reference p99 %.2f max %.2f ms; %d late; %d GCs; %d kernel-timed",
		gc, send, r.p99, r.max, r.ownMax, r.refP99, r.refMax, late, ms.NumGC-gcs0, p.Counters().Ahead)
	return r
}

func mustListen(b *testing.B) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// allocLoad runs one goroutine per CPU that allocates 1–64 KB blocks into
// a ring of 2,048 (about 64 MB live), until stop.
func allocLoad() (stop func()) {
	var quit atomic.Bool
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			ring := make([][]byte, 2048)
			r := rand.New(rand.NewPCG(1, 2))
			for i := 0; !quit.Load(); i++ {
				blk := make([]byte, 1024+r.IntN(63*1024))
				blk[0] = byte(i)
				ring[i%len(ring)] = blk
			}
		})
	}
	return func() { quit.Store(true); wg.Wait() }
}

// rtpSource is n 20 ms RTP packets of one SSRC.
type rtpSource struct {
	ssrc uint32
	n    int
	seq  int
}

func (s *rtpSource) Due() (time.Duration, bool) { return time.Duration(s.seq) * Frame, s.seq < s.n }
func (s *rtpSource) Append(dst []byte) []byte {
	var h [12]byte
	h[0] = 0x80
	binary.BigEndian.PutUint16(h[2:], uint16(s.seq))
	binary.BigEndian.PutUint32(h[8:], s.ssrc)
	s.seq++
	dst = append(dst, h[:]...)
	return append(dst, make([]byte, 160)...)
}
func (s *rtpSource) Stop()        { s.n = s.seq }
func (s *rtpSource) Rewind(n int) { s.seq -= n }

func rxTime(oob []byte) int64 {
	cms, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, cm := range cms {
			if cm.Header.Level == unix.SOL_SOCKET && cm.Header.Type == unix.SO_TIMESTAMPNS && len(cm.Data) >= 16 {
				return int64(binary.NativeEndian.Uint64(cm.Data[0:8]))*1e9 + int64(binary.NativeEndian.Uint64(cm.Data[8:16]))
			}
		}
	}
	return time.Now().UnixNano()
}
