package sipamp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	pionrtp "github.com/pion/rtp"
	"golang.org/x/sys/unix"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/multicast"
	"github.com/parkpage/parkpage/multicast/polycom"
)

// stampedConn records when the kernel received each datagram on a socket
// (SO_TIMESTAMPNS), so a busy test process reading late does not move the
// arrival times it compares.
type stampedConn struct {
	mu    sync.Mutex
	first time.Time // arrival of the first datagram match accepted
	got   chan struct{}
	done  chan struct{}
}

// stamp starts reading c in the background until it is closed; match
// picks the first audio datagram.
func stamp(t *testing.T, c *net.UDPConn, match func([]byte) bool) *stampedConn {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_TIMESTAMPNS: %v %v", err, serr)
	}
	s := &stampedConn{got: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf, oob := make([]byte, 2048), make([]byte, 128)
		for {
			n, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
			if err != nil {
				return
			}
			at := time.Now()
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
						ts := *(*unix.Timespec)(unsafePointer(m.Data))
						at = time.Unix(ts.Unix())
					}
				}
			}
			s.mu.Lock()
			if s.first.IsZero() && match(buf[:n]) {
				s.first = at
				close(s.got)
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-s.done })
	return s
}

// firstAudio waits for the first audio datagram (the page's own end bounds
// the wait) and returns its arrival.
func (s *stampedConn) firstAudio(t *testing.T, what string, page <-chan struct{}) time.Time {
	t.Helper()
	select {
	case <-s.got:
	case <-page:
		select {
		case <-s.got:
		default:
			t.Fatalf("%s: no audio arrived during the page", what)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

func isPolycomTransmit(b []byte) bool { return len(b) > 0 && b[0] == byte(polycom.OpTransmit) }

func isRTPAudio(pt uint8) func([]byte) bool {
	return func(b []byte) bool {
		var h pionrtp.Header
		_, err := h.Unmarshal(b)
		return err == nil && h.PayloadType == pt
	}
}

// alignRun is one page to a zone of a Polycom group page, a Yealink RTP
// multicast stream and a SIP amplifier (sipp), with real listeners on each.
type alignRun struct {
	submitted      time.Time
	poly, rtp, amp time.Time // first audio frame's arrival
	log            string    // the gateway's and pacer's log, sipp's output
	// stalls are the pacer's late wake-ups during the page: the host kept
	// the loop from running on time (issue 15 measures those apart).
	stalls  uint64
	maxLate time.Duration
}

func (r alignRun) String() string {
	s := fmt.Sprintf("rtp %+.1fms, amp %+.1fms after polycom (polycom %.0fms after submit)",
		ms(r.rtp.Sub(r.poly)), ms(r.amp.Sub(r.poly)), ms(r.poly.Sub(r.submitted)))
	if r.stalls > 0 {
		s += fmt.Sprintf("; host stalls: %d late wake-ups of the pacer, up to %.0fms", r.stalls, ms(r.maxLate))
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runAligned plays one page; n picks the run's multicast groups (unique
// per page of the test), zoneKeys are the zone's align keys in YAML,
// scenario the amplifier's. On failure the test prints the gateway's and
// the pacer's log and sipp's output.
func runAligned(t *testing.T, r *rig, n int, zoneKeys, scenario string) (run alignRun) {
	t.Helper()
	polyGroup, rtpGroup := fmt.Sprintf("239.255.47.%d", 2*n+1), fmt.Sprintf("239.255.47.%d", 2*n+2)
	pl, rl := mcasttest.Listen(t, polyGroup, 0), mcasttest.Listen(t, rtpGroup, 0)
	polyRx := stamp(t, pl.UDPConn(), isPolycomTransmit)
	rtpRx := stamp(t, rl.UDPConn(), isRTPAudio(0))
	ampConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ampRx := stamp(t, ampConn, isRTPAudio(0)) // PCMU; the zone code is PT 101
	ampPort := ampConn.LocalAddr().(*net.UDPAddr).Port
	amp := startSipp(t, scenario, 1, "rtp_port", fmt.Sprint(ampPort), "codec_pt", "0", "codec_name", "PCMU")

	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer func() {
		if t.Failed() {
			t.Logf("page %d: gateway and pacer log:\n%s\nsipp:\n%s", n, logs.String(), amp.Logs())
		}
	}()
	defer func() { run.log = logs.String() + "\nsipp:\n" + amp.Logs() }()

	yaml := fmt.Sprintf(`
zones:
  floor:
%s
    outputs:
      - { type: polycom, group: %s, port: %d, interface: lo, loopback: true, codec: pcmu, channel: 26, host_serial: 0x1234 }
      - { type: rtp, group: %s, port: %d, interface: lo, loopback: true, codec: pcmu }
      - { type: sip, uri: "%s", preset: generic, zone_code: "1", settle: 800ms, after_code: 300ms, answer_timeout: 10s }
`, zoneKeys, polyGroup, pl.Port(), rtpGroup, rl.Port(), amp.uri("page"))
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	// One pacer sends the multicast pages and the amplifier's RTP, as on
	// the appliance.
	pacer := multicast.NewPacer(log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = pacer.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	// Ports above the kernel's ephemeral range (32768-60999) and the soak
	// harness's (61000-64998); the engine skips ports in use.
	base := 65000 + (os.Getpid()%10)*50
	eng, err := media.NewEngine(media.Config{IP: netip.MustParseAddr("127.0.0.1"), PortMin: base, PortMax: base + 49, Pacer: pacer}, log)
	if err != nil {
		t.Fatal(err)
	}
	mc := multicast.NewOutputs(multicast.OutputsOptions{Pacer: pacer, Logger: log}) // the phones' real cadence
	opts := r.options(t)
	opts.Logger = log
	opts.Media = eng
	kinds := output.Kinds{config.OutputSIP: Factory(opts), config.OutputPolycom: mc.Polycom, config.OutputRTP: mc.RTP}
	g, err := gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	audio := pageAudio{announcement()[:16000]} // 1 s
	before := pacer.Counters()
	run.submitted = time.Now()
	h, err := g.Submit(context.Background(), paging.Page{ID: fmt.Sprintf("p%d", n), Priority: output.PriorityPark, Zones: []string{"floor"}, Audio: audio})
	if err != nil {
		t.Fatal(err)
	}
	run.poly = polyRx.firstAudio(t, "polycom listener", h.Done())
	run.rtp = rtpRx.firstAudio(t, "rtp listener", h.Done())
	run.amp = ampRx.firstAudio(t, "amplifier", h.Done())
	if reason, err := h.Wait(context.Background()); err != nil || reason != paging.ReasonDone {
		t.Errorf("page ended %q (%v), want done", reason, err)
	}
	amp.mustPass()
	after := pacer.Counters()
	run.stalls, run.maxLate = after.LateWakeups-before.LateWakeups, after.MaxLate
	return run
}

// inStepGoal is issue 15's bound on the first audio frames of a zone's
// outputs: they leave within 20 ms of each other.
const inStepGoal = 20 * time.Millisecond

// pagesPerCase is how many pages each case plays (one after the other).
const pagesPerCase = 3

func spread(ts ...time.Time) time.Duration {
	s := append([]time.Time(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	return s[len(s)-1].Sub(s[0])
}

// stallAllowance is how far the pacer's late wake-ups during a page can
// move an output's first frame: the worst lateness, rounded up to frames.
func stallAllowance(r alignRun) time.Duration {
	if r.stalls == 0 {
		return 0
	}
	f := media.FrameDuration
	return (r.maxLate + f - 1) / f * f
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// runCase plays pagesPerCase pages for case c (0-based, picks the groups
// and ports) and returns them.
func runCase(t *testing.T, r *rig, c int, zoneKeys, scenario string) []alignRun {
	t.Helper()
	runs := make([]alignRun, pagesPerCase)
	for i := range runs {
		runs[i] = runAligned(t, r, c*pagesPerCase+i, zoneKeys, scenario)
		t.Logf("%s page %d: %v", t.Name(), i+1, runs[i])
	}
	return runs
}

// checkInStep asserts that the outputs picked by of started their first
// audio frames within inStepGoal of each other: on every page the pacer
// sent on time, and as the median of all pages. Every output's first frame
// is queued in the one pacer well ahead of its moment, so they leave in
// one wake-up (0-5 ms apart here, the Polycom stream's 1 ms start grid and
// the kernel's timestamps). What the test cannot rule out is the host
// stopping the loop (issue 15: ~100 ms stalls under external load; an
// amplifier's digit events then go out late, by the stall rounded up to a
// frame, and push its audio): a page on which the loop woke late is
// allowed that much more.
func checkInStep(t *testing.T, runs []alignRun, of func(alignRun) []time.Time) {
	t.Helper()
	var ss []time.Duration
	var all []string
	for i, run := range runs {
		s := spread(of(run)...)
		ss = append(ss, s)
		all = append(all, fmt.Sprintf("%.1fms", ms(s)))
		if s <= inStepGoal {
			continue
		}
		if s > inStepGoal+stallAllowance(run) {
			t.Errorf("page %d: first audio frames %v apart (%v), want within %v (+%v for the loop's late wake-ups)", i+1, s, run, inStepGoal, stallAllowance(run))
		}
		t.Logf("page %d, %v apart: gateway and pacer log:\n%s", i+1, s, run.log)
	}
	m := median(ss)
	t.Logf("first-audio spread: median %.1fms (pages: %s)", ms(m), strings.Join(all, ", "))
	if m > inStepGoal {
		t.Errorf("median first-audio spread %v (pages: %s), want within %v", m, strings.Join(all, ", "), inStepGoal)
	}
}

// Every output of a zone in step: a Polycom group page (0.93 s of Alerts
// before its audio), a Yealink RTP multicast stream and a SIP amplifier
// (answer, settle 800 ms, zone code, after_code 300 ms) start their first
// audio frames within 20 ms of each other, measured from the kernel's
// receive timestamps on real listeners: whether the amplifier's set-up is
// the slowest output or it answers late (within align_wait) and the zone
// waits for it. With align: latency the RTP stream starts a Polycom
// preamble ahead of the Polycom audio. An amplifier answering after
// align_wait joins late and holds nobody up.
func TestZoneOutputsInStep(t *testing.T) {
	lead := polycom.DefaultTiming().Preamble()
	all := func(r alignRun) []time.Time { return []time.Time{r.poly, r.rtp, r.amp} }
	t.Run("together", func(t *testing.T) {
		// The amplifier answers at once; answer + settle + code +
		// after_code (~1.2 s) is longer than the Polycom preamble.
		checkInStep(t, runCase(t, newRig(t), 0, "", "amp.xml"), all)
	})
	t.Run("together, amp answers late", func(t *testing.T) {
		// The amplifier answers 1.5 s after the INVITE, within the
		// default align_wait (3 s): the zone waits for it.
		runs := runCase(t, newRig(t), 1, "", "amp_late.xml")
		checkInStep(t, runs, all)
		for i, run := range runs {
			// Answer (1.5 s) and settle (800 ms) at least.
			if d := run.poly.Sub(run.submitted); d < 2300*time.Millisecond {
				t.Errorf("page %d: polycom audio %v after submit, before the late amplifier's could start", i+1, d)
			}
		}
	})
	t.Run("latency", func(t *testing.T) {
		runs := runCase(t, newRig(t), 2, "    align: latency", "amp.xml")
		var aheads []time.Duration
		for _, run := range runs {
			aheads = append(aheads, run.poly.Sub(run.rtp))
		}
		ahead := median(aheads)
		t.Logf("latency: rtp first audio %v before polycom's, median (preamble %v)", ahead, lead)
		if d := ahead - lead; d < -inStepGoal || d > inStepGoal {
			t.Errorf("rtp first audio %v ahead of polycom's (median), want the preamble %v (±%v)", ahead, lead, inStepGoal)
		}
		// Each page: clearly not lined up. In this mode the outputs start
		// on their own goroutines, so one page on a loaded machine can be
		// a few tens of ms off the preamble (seen: 959.8 ms) with no stall
		// the pacer sees; the median above holds the ±20 ms.
		for i, run := range runs {
			if d := run.poly.Sub(run.rtp); d < lead/2 || d > lead+lead/2 {
				t.Errorf("page %d: rtp first audio %v ahead of polycom's, want about the preamble %v", i+1, d, lead)
			}
		}
	})
	t.Run("amp answers after align_wait", func(t *testing.T) {
		// The amplifier answers 1.5 s after the INVITE, its audio ~1.3 s
		// later; the zone waits 500 ms for it.
		runs := runCase(t, newRig(t), 3, "    align_wait: 500ms", "amp_late.xml")
		checkInStep(t, runs, func(r alignRun) []time.Time { return []time.Time{r.poly, r.rtp} })
		// Held for the amplifier, the multicast audio would start with it;
		// not held, it starts ~1.4 s earlier (the answer's 1.5 s less the
		// wait, plus settle and code, less the preamble).
		for i, run := range runs {
			if d := run.amp.Sub(run.rtp); d < 700*time.Millisecond {
				t.Errorf("page %d: amp first audio only %v after the multicast's: the late amp held the zone", i+1, d)
			}
		}
	})
}

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
