package parksip

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// benchServerEnv makes the test binary run a bare park server instead of
// the tests (the load benchmark starts it as a child process so its CPU
// and memory can be measured apart from the load generators).
const benchServerEnv = "PARKSIP_BENCH_SERVER_CONFIG"

// benchBaselineEnv makes the bench server send and receive RTP as before
// issue 15 (BenchmarkParkLoadVsBaseline).
const benchBaselineEnv = "PARKSIP_BENCH_BASELINE"

func TestMain(m *testing.M) {
	if path := os.Getenv(benchServerEnv); path != "" {
		os.Exit(runBenchServer(path))
	}
	os.Exit(m.Run())
}

func runBenchServer(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, _, err := config.Parse(path, data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack, err := sipstack.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts := Options{Stack: stack, Bus: events.New(), Logger: log, NormalPriority: os.Getenv("PARK_BENCH_NORMAL_PRIORITY") != ""}
	if os.Getenv(benchBaselineEnv) != "" {
		// The baseline: the sending and receiving of the parent commit of
		// issue 15's work (one sendmmsg per leg per frame, a wake-up per
		// received packet), for a ratio measured in the same run.
		if err := stack.Listen(); err != nil { // the media config needs its address
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		mc := MediaConfig(cfg, stack)
		mc.Realtime = !opts.NormalPriority
		mc.ReadEveryPacket = true
		mc.PacerOptions = []pacer.Option{pacer.WithIOUring(false)}
		e, err := media.NewEngine(mc, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		opts.Media = e
		go func() { _ = e.Run(context.Background()) }()
	}
	srv, err := New(cfg, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// PARK_BENCH_CPUPROFILE=file writes the server's CPU profile (go tool pprof).
	if f := os.Getenv("PARK_BENCH_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); out.Close() }()
	}
	fmt.Printf("ready %d\n", stack.Addr("udp").Port())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = stack.Run(ctx) }()
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	wg.Wait()
	return 0
}

// BenchmarkParkLoad parks N calls (sipp, one blind transfer each) in a
// park server running as its own process and measures, over a steady
// window, the server's CPU and RSS and the hold-music packet gaps seen by
// a receiver using kernel receive timestamps (so the receiver's own
// scheduling does not count). The receiver echoes every packet back, so
// the server also receives RTP from each parked caller as it would from
// real phones. Target: 1,000 calls on 2 cores with no gap over 40 ms.
// PARK_BENCH_SECONDS sets the window (default 10 s for 100 calls, 15 s
// for 1,000); PARK_BENCH_NORMAL_PRIORITY=1 keeps the pacer from asking for
// SCHED_FIFO (as where the service is not granted it).
func BenchmarkParkLoad(b *testing.B) {
	if _, err := exec.LookPath("sipp"); err != nil {
		b.Fatalf("sipp is not installed (apt-get install sip-tester): %v", err)
	}
	for _, n := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				runParkLoad(b, n)
			}
		})
	}
}

func runParkLoad(b *testing.B, n int) { runParkLoadFlood(b, n, 0) }

// runParkLoadFlood is runParkLoad with, during the window, a flood of
// INVITEs from floodSources untrusted addresses (flood_bench_test.go).
func runParkLoadFlood(b *testing.B, n, floodSources int) {
	runParkLoadCase(b, n, floodSources, false, true)
}

// loadResult is one load run's figures.
type loadResult struct {
	cpu, rssMiB, p99ms, maxms float64
}

// BenchmarkParkLoadVsBaseline parks 500 calls five times with today's
// sending and receiving and five times with the baseline's (one sendmmsg
// per leg per frame, a goroutine wake-up per received packet: the code
// before issue 15), alternating, and reports the medians and the ratio of
// the server's CPU to the baseline's in the same run: the machine is
// shared and noisy, so only a same-run ratio means much. Goal: ≤ 28 % of a
// core at 500 (a fifth of Asterisk 22's 142 %).
func BenchmarkParkLoadVsBaseline(b *testing.B) {
	if _, err := exec.LookPath("sipp"); err != nil {
		b.Fatalf("sipp is not installed (apt-get install sip-tester): %v", err)
	}
	const n, runs = 500, 5
	var now, base []loadResult
	for range b.N {
		for range runs {
			base = append(base, runParkLoadCase(b, n, 0, true, false))
			now = append(now, runParkLoadCase(b, n, 0, false, false))
		}
	}
	med := func(rs []loadResult, f func(loadResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	cpu := func(r loadResult) float64 { return r.cpu }
	b.ReportMetric(med(now, cpu), "server-cpu-%")
	b.ReportMetric(med(base, cpu), "baseline-cpu-%")
	b.ReportMetric(med(now, cpu)/med(base, cpu), "cpu-ratio")
	b.ReportMetric(med(now, func(r loadResult) float64 { return r.rssMiB }), "server-rss-MiB")
	b.ReportMetric(med(base, func(r loadResult) float64 { return r.rssMiB }), "baseline-rss-MiB")
	b.ReportMetric(med(now, func(r loadResult) float64 { return r.p99ms }), "gap-p99-ms")
	b.ReportMetric(med(base, func(r loadResult) float64 { return r.p99ms }), "baseline-gap-p99-ms")
	b.ReportMetric(med(now, func(r loadResult) float64 { return r.maxms }), "gap-max-ms")
	b.ReportMetric(med(base, func(r loadResult) float64 { return r.maxms }), "baseline-gap-max-ms")
}

// runParkLoadCase runs one load window: baseline selects the pre-issue-15
// media paths; report adds the figures to b's metrics.
func runParkLoadCase(b *testing.B, n, floodSources int, baseline, report bool) loadResult {
	dir := b.TempDir()
	window := 10 * time.Second
	if n >= 1000 {
		window = 15 * time.Second
	}
	if s, err := strconv.Atoi(os.Getenv("PARK_BENCH_SECONDS")); err == nil && s > 0 {
		window = time.Duration(s) * time.Second
	}

	// Lots of at most 100 slots (config's limit), enough for n calls.
	var lots, slots strings.Builder
	for l := 0; l*100 < n; l++ {
		first := 10000 + l*100
		fmt.Fprintf(&lots, "    - {extension: \"%d\", slots: %d-%d, timeout: 1h}\n", 8000+l, first, first+99)
		for s := first; s < first+100 && s-10000 < n; s++ {
			fmt.Fprintf(&slots, "%d\n", s)
		}
	}
	rtpFirst := 20000
	cfgPath := filepath.Join(dir, "park.yaml")
	yaml := fmt.Sprintf(`state_dir: %s
sip:
  listen:
    - {transport: udp, address: "127.0.0.1:0"}
  trusted: [127.0.0.1/32]
  rtp_ports: %d-%d
park:
  rtp_timeout: 60s
  lots:
%s`, dir, rtpFirst, rtpFirst+2*n+400, lots.String())
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	csv := filepath.Join(dir, "slots.csv")
	if err := os.WriteFile(csv, []byte("SEQUENTIAL\n"+slots.String()), 0o644); err != nil {
		b.Fatal(err)
	}

	// The server.
	srv := exec.Command(os.Args[0], "-test.run=^$")
	srv.Env = append(os.Environ(), benchServerEnv+"="+cfgPath)
	if baseline {
		srv.Env = append(srv.Env, benchBaselineEnv+"=1")
	}
	var srvErr bytes.Buffer
	srv.Stderr = &srvErr
	out, err := srv.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	var sipPort int
	if _, serr := fmt.Sscanf(line, "ready %d", &sipPort); err != nil || serr != nil {
		b.Fatalf("server did not start: %q %v\n%s", line, err, srvErr.String())
	}

	rx := newLoadReceiver(b)
	defer rx.close()

	// The parked callers.
	rate := 200
	ramp := time.Duration(n/rate+1) * time.Second
	hold := ramp + 3*time.Second + window + 3*time.Second
	sipp := exec.Command("sipp", fmt.Sprintf("127.0.0.1:%d", sipPort), "-sf", scenarioPath("park_load.xml"),
		"-inf", csv, "-m", fmt.Sprint(n), "-l", fmt.Sprint(n), "-r", fmt.Sprint(rate), "-rp", "1000",
		"-i", "127.0.0.1", "-p", fmt.Sprint(proctest.FreePort(b, "udp")), "-mp", fmt.Sprint(proctest.FreePort(b, "udp")),
		"-key", "mport", fmt.Sprint(rx.port), "-set", "hold", fmt.Sprint(hold.Milliseconds()),
		"-nostdin", "-timeout", fmt.Sprintf("%ds", int((hold+ramp+30*time.Second).Seconds())), "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "sipp-err.log"))
	sipp.Dir = dir
	var sippOut bytes.Buffer
	sipp.Stdout, sipp.Stderr = &sippOut, &sippOut
	if err := sipp.Start(); err != nil {
		b.Fatal(err)
	}
	sippDone := make(chan struct{})
	var sippErr error
	go func() { sippErr = sipp.Wait(); close(sippDone) }()
	defer func() {
		select {
		case <-sippDone:
		default:
			_ = sipp.Process.Kill()
			<-sippDone
		}
	}()

	deadline := time.Now().Add(ramp + 20*time.Second)
	for rx.streams() < n {
		if time.Now().After(deadline) {
			errLog, _ := os.ReadFile(filepath.Join(dir, "sipp-err.log"))
			b.Fatalf("only %d of %d parked calls get music\nserver: %s\nsipp errors: %s", rx.streams(), n, proctest.Tail(srvErr.String(), 20), proctest.Tail(string(errLog), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // settle

	b.ResetTimer()
	cpu0, sippCPU0 := procCPU(srv.Process.Pid), procCPU(sipp.Process.Pid)
	var self0 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self0)
	var fl *flooder
	if floodSources > 0 {
		fl = startFlood(b, sipPort, floodSources)
	}
	rx.startWindow()
	time.Sleep(window)
	st := rx.stopWindow()
	if fl != nil {
		fl.stop(b)
	}
	cpu1, sippCPU1 := procCPU(srv.Process.Pid), procCPU(sipp.Process.Pid)
	var self1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self1)
	b.StopTimer()
	rss, hwm := procMem(srv.Process.Pid)

	cpu := (cpu1 - cpu0).Seconds() / window.Seconds() * 100
	rxCPU := (time.Duration(self1.Utime.Nano() + self1.Stime.Nano() - self0.Utime.Nano() - self0.Stime.Nano())).Seconds() / window.Seconds() * 100
	if report {
		b.ReportMetric(cpu, "server-cpu-%")
		b.ReportMetric(float64(rss)/(1<<20), "server-rss-MiB")
		b.ReportMetric(st.p99.Seconds()*1000, "gap-p99-ms")
		b.ReportMetric(st.max.Seconds()*1000, "gap-max-ms")
		b.ReportMetric(float64(st.over40), "gaps>40ms")
		b.ReportMetric(float64(st.lost), "lost-pkts")
	}
	b.Logf("baseline=%v: %d parked calls, %s window: server CPU %.1f%% of one core, RSS %.1f MiB (peak %.1f MiB); "+
		"hold music to %d streams, %d packets: gap p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d gaps over 40 ms, %d packets lost; "+
		"load generators: receiver+echo %.1f%%, sipp %.1f%% of one core",
		baseline, n, window, cpu, float64(rss)/(1<<20), float64(hwm)/(1<<20), st.streams, st.packets,
		st.p50.Seconds()*1000, st.p99.Seconds()*1000, st.max.Seconds()*1000, st.over40, st.lost,
		rxCPU, (sippCPU1-sippCPU0).Seconds()/window.Seconds()*100)
	if st.streams < n {
		b.Errorf("%d of %d streams had music during the window", st.streams, n)
	}

	// The callers hang up; every call must have ended cleanly.
	select {
	case <-sippDone:
		if err := sippErr; err != nil {
			errLog, _ := os.ReadFile(filepath.Join(dir, "sipp-err.log"))
			b.Errorf("sipp: %v\n%s\n%s", err, proctest.Tail(sippOut.String(), 15), proctest.Tail(string(errLog), 15))
		}
	case <-time.After(hold + 30*time.Second):
		b.Error("sipp did not finish")
	}
	return loadResult{cpu: cpu, rssMiB: float64(rss) / (1 << 20), p99ms: st.p99.Seconds() * 1000, maxms: st.max.Seconds() * 1000}
}

// procCPU is a process's user+system time from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// procMem is a process's resident and peak resident memory in bytes.
func procMem(pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &kb); err == nil {
			rss = kb << 10
		}
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// loadReceiver is every parked caller's RTP endpoint: one socket, streams
// told apart by SSRC, arrival times from SO_TIMESTAMPNS.
type loadReceiver struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	port int
	done chan struct{}

	mu        sync.Mutex
	ssrcs     map[uint32]*rxStream
	measuring bool
	hist      []uint32 // 10 µs bins
	max       time.Duration
	gaps      uint64
	lost      uint64
	packets   uint64
	nStreams  atomic.Int64
}

type rxStream struct {
	last    int64 // ns, 0: none in this window
	lastSeq uint16
	inWin   bool
}

const histBin = 10 * time.Microsecond

func newLoadReceiver(b *testing.B) *loadReceiver {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadBuffer(8 << 20)
	raw, err := c.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }); err != nil || serr != nil {
		b.Fatalf("SO_TIMESTAMPNS: %v %v", err, serr)
	}
	r := &loadReceiver{conn: c, pc: ipv4.NewPacketConn(c), port: c.LocalAddr().(*net.UDPAddr).Port, done: make(chan struct{}),
		ssrcs: map[uint32]*rxStream{}, hist: make([]uint32, int(time.Second/histBin))}
	go r.loop()
	return r
}

func (r *loadReceiver) close() {
	r.conn.Close()
	<-r.done
}

func (r *loadReceiver) streams() int { return int(r.nStreams.Load()) }

func (r *loadReceiver) loop() {
	defer close(r.done)
	const batch = 64
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 1500)}
		msgs[i].OOB = make([]byte, 128)
	}
	echo := make([]ipv4.Message, 0, batch)
	for {
		for i := range msgs {
			msgs[i].OOB = msgs[i].OOB[:cap(msgs[i].OOB)]
		}
		k, err := r.pc.ReadBatch(msgs, 0)
		if err != nil {
			return
		}
		echo = echo[:0]
		r.mu.Lock()
		for _, m := range msgs[:k] {
			p := m.Buffers[0][:m.N]
			if len(p) < 12 || p[0]>>6 != 2 {
				continue
			}
			r.observe(binary.BigEndian.Uint32(p[8:12]), binary.BigEndian.Uint16(p[2:4]), kernelTime(m.OOB[:m.NN]))
			echo = append(echo, ipv4.Message{Buffers: [][]byte{p}, Addr: m.Addr})
		}
		r.mu.Unlock()
		// Echo each packet to the leg it came from: the server receives
		// caller audio as from real phones (and keeps the RTP timeout quiet).
		for len(echo) > 0 {
			w, err := r.pc.WriteBatch(echo, 0)
			if err != nil {
				break
			}
			echo = echo[w:]
		}
	}
}

func kernelTime(oob []byte) int64 {
	cms, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Now().UnixNano()
	}
	for _, cm := range cms {
		if cm.Header.Level == unix.SOL_SOCKET && cm.Header.Type == unix.SO_TIMESTAMPNS && len(cm.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(cm.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(cm.Data[8:16]))
			return sec*1e9 + nsec
		}
	}
	return time.Now().UnixNano()
}

// observe records one packet; r.mu held.
func (r *loadReceiver) observe(ssrc uint32, seq uint16, at int64) {
	s := r.ssrcs[ssrc]
	if s == nil {
		s = &rxStream{}
		r.ssrcs[ssrc] = s
		r.nStreams.Store(int64(len(r.ssrcs)))
	}
	if r.measuring {
		r.packets++
		if s.last != 0 {
			gap := time.Duration(at - s.last)
			if d := seq - s.lastSeq; d > 1 && d < 1000 {
				r.lost += uint64(d - 1)
			}
			r.gaps++
			bin := int(gap / histBin)
			if bin >= len(r.hist) {
				bin = len(r.hist) - 1
			}
			if bin < 0 {
				bin = 0
			}
			r.hist[bin]++
			if gap > r.max {
				r.max = gap
			}
		}
		s.last, s.inWin = at, true
	}
	s.lastSeq = seq
}

func (r *loadReceiver) startWindow() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.ssrcs {
		s.last, s.inWin = 0, false
	}
	clear(r.hist)
	r.max, r.gaps, r.lost, r.packets = 0, 0, 0, 0
	r.measuring = true
}

type loadStats struct {
	streams       int
	packets, lost uint64
	p50, p99, max time.Duration
	over40        uint64
}

func (r *loadReceiver) stopWindow() loadStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.measuring = false
	st := loadStats{packets: r.packets, lost: r.lost, max: r.max}
	for _, s := range r.ssrcs {
		if s.inWin {
			st.streams++
		}
	}
	var cum uint64
	for i, c := range r.hist {
		before := cum
		cum += uint64(c)
		at := time.Duration(i)*histBin + histBin/2
		if before < uint64(math.Ceil(float64(r.gaps)*0.5)) && cum >= uint64(math.Ceil(float64(r.gaps)*0.5)) {
			st.p50 = at
		}
		if before < uint64(math.Ceil(float64(r.gaps)*0.99)) && cum >= uint64(math.Ceil(float64(r.gaps)*0.99)) {
			st.p99 = at
		}
		if at > 40*time.Millisecond {
			st.over40 += uint64(c)
		}
	}
	return st
}
