package multicast

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"
	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/internal/pacer"
)

// BenchmarkPacing measures the inter-packet gap of 20 ms PCMU streams as a
// receiver on lo sees it (kernel receive timestamps, SO_TIMESTAMPNS), for
// 1, 10 and 50 simultaneous streams, with the CPU idle, loaded by busy
// processes, by as many busy goroutines in this process as there are CPUs,
// or by one fewer (goroutines-1: a P stays free for the pacer), with and
// without SCHED_FIFO. One op is pacingFrames 20 ms frames (3 s) of every
// stream, so `make bench` (-benchtime 1x) measures 150 packets per stream.
// Target: gap p99 within 0.5 ms of 20 ms.
func BenchmarkPacing(b *testing.B) {
	for _, load := range []string{"idle", "procs", "goroutines", "goroutines-1"} {
		for _, fifo := range []bool{true, false} {
			for _, n := range []int{1, 10, 50} {
				name := fmt.Sprintf("load=%s/fifo=%v/streams=%d", load, fifo, n)
				b.Run(name, func(b *testing.B) { benchPacing(b, n, load, fifo) })
			}
		}
	}
}

func benchPacing(b *testing.B, streams int, load string, fifo bool) {
	const group = "239.77.8.1"
	prio := 0
	if fifo {
		prio = pacer.DefaultPriority
	}
	l := listenTS(b, group)
	forceRcvBuf(b, l, 64<<20)
	first := loSender(b, group, l.port)
	p := startPacer(b, nil, benchPacerOptions(b, prio)...)
	tid := waitTID(b, p)
	stopLoad := startLoad(b, load)
	defer stopLoad()
	time.Sleep(100 * time.Millisecond) // let the load settle

	frames := pcmuFrames(pacingFrames * b.N)
	var results []<-chan Result
	b.ResetTimer()
	cpu0, wall0 := threadCPU(b, tid), time.Now()
	for i := range streams {
		s := first
		if i > 0 {
			var err error
			if s, err = first.Share(group, l.port); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
		}
		results = append(results, p.Play(context.Background(), s, pcmuStream(b, frames)))
	}
	stamps := map[uint32][]int64{}
	for range streams * len(frames) {
		pkt, ts, err := l.readTS(2 * time.Second)
		if err != nil {
			b.Fatalf("received %d of %d packets: %v", countStamps(stamps), streams*len(frames), err)
		}
		var h pionrtp.Header
		if _, err := h.Unmarshal(pkt); err != nil {
			b.Fatal(err)
		}
		stamps[h.SSRC] = append(stamps[h.SSRC], ts)
	}
	late := 0
	for _, r := range results {
		res := <-r
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		late += res.Late
	}
	cpu, wall := threadCPU(b, tid)-cpu0, time.Since(wall0)
	b.StopTimer()

	var gaps []float64
	for _, ts := range stamps {
		for i := 1; i < len(ts); i++ {
			gaps = append(gaps, float64(ts[i]-ts[i-1])/1e6)
		}
	}
	slices.Sort(gaps)
	b.ReportMetric(percentile(gaps, 0.50), "gap-p50-ms")
	b.ReportMetric(percentile(gaps, 0.99), "gap-p99-ms")
	b.ReportMetric(gaps[len(gaps)-1], "gap-max-ms")
	b.ReportMetric(gaps[0], "gap-min-ms")
	b.ReportMetric(float64(late), "late-pkts")
	b.ReportMetric(float64(cpu.Microseconds())/wall.Seconds()/float64(streams), "cpu-us/stream-s")
	rt := 0.0
	if p.Realtime() {
		rt = 1
	}
	b.ReportMetric(rt, "fifo")
}

// pacingFrames is the length of one BenchmarkPacing op: 3 s of 20 ms frames.
const pacingFrames = 150

// percentile returns the q quantile of sorted values (nearest rank).
func percentile(sorted []float64, q float64) float64 {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// benchPacerOptions sets the priority, and the spin and start grid from
// PACER_MAX_SPIN and PACER_START_GRID (durations) for comparing settings by
// hand.
func benchPacerOptions(b *testing.B, prio int) []pacer.Option {
	opts := []pacer.Option{pacer.WithPriority(prio)}
	for env, opt := range map[string]func(time.Duration) pacer.Option{
		"PACER_MAX_SPIN": pacer.WithMaxSpin, "PACER_START_GRID": pacer.WithStartGrid,
	} {
		if v := os.Getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				b.Fatalf("%s: %v", env, err)
			}
			opts = append(opts, opt(d))
		}
	}
	return opts
}

func countStamps(m map[uint32][]int64) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// forceRcvBuf enlarges the receive buffer past rmem_max where permitted, so
// a starved reader loses nothing.
func forceRcvBuf(b *testing.B, l *tsListener, size int) {
	_ = l.raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	})
}

func waitTID(b *testing.B, p *Pacer) int {
	for range 1000 {
		if tid := p.ThreadID(); tid != 0 {
			return tid
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatal("pacer thread did not start")
	return 0
}

// threadCPU is the CPU time thread tid has used (schedstat's first field).
func threadCPU(b *testing.B, tid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		b.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.Fields(string(raw))[0], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(ns)
}

// startLoad keeps every CPU busy: with shell busy loops (procs) or with
// spinning goroutines in this process (goroutines), which also compete for
// the Go scheduler's Ps.
func startLoad(b *testing.B, kind string) (stop func()) {
	n := runtime.NumCPU()
	switch kind {
	case "procs":
		var cmds []*exec.Cmd
		for range n {
			c := exec.Command("sh", "-c", "while :; do :; done")
			if err := c.Start(); err != nil {
				b.Fatal(err)
			}
			cmds = append(cmds, c)
		}
		return func() {
			for _, c := range cmds {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
		}
	case "goroutines", "goroutines-1":
		if kind == "goroutines-1" {
			n--
		}
		var done atomic.Bool
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				x := 0
				for !done.Load() {
					for i := range 1000 {
						x += i
					}
				}
				_ = x
			})
		}
		return func() { done.Store(true); wg.Wait() }
	}
	return func() {}
}
