package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

var (
	flagCycles   = flag.Int("soak.cycles", 500, "park cycles in all (make soak: 10000)")
	flagPhases   = flag.Int("soak.phases", 0, "phases, invariants checked after each (0: one per 100 cycles, at most 20)")
	flagRestarts = flag.Bool("soak.restarts", os.Getenv("PARKPAGE_SOAK_RESTARTS") != "0",
		"restart parkpage (SIGTERM + start, or kill -9) at a random moment of every phase but the first; parked callers must be resumed (env PARKPAGE_SOAK_RESTARTS=0 turns it off)")
	flagSeed  = flag.Uint64("soak.seed", 0, "random seed (0: from the clock; the seed is logged)")
	flagRace  = flag.Bool("soak.race", false, "build parkpage with -race (slower, several times the RSS)")
	flagRSSMB = flag.Int("soak.rss-mb", 0, "RSS bound in MiB (0: 160, or 1200 with -soak.race)")
)

// Lanes: one per slot. 701-716 never time out (park, pickup, hang-up);
// 717-720 time out after 2 s and are rung back through sip.pbx.
const (
	lanes        = 20
	firstSlot    = 701
	timeoutLanes = 4
)

// TestSoak is the churn soak: see the package comment. Each cycle parks a
// sipp caller in its lane's slot and checks its hold music, then one of:
// the caller hangs up while parked; a retriever picks it up (bridge
// checked both ways) and hangs up, the caller getting its BYE only then;
// a retriever picks it up and the caller hangs up; the timeout rings the
// parker back through the PBX, whose phone answers (bridge checked) and
// hangs up. Every sipp must finish its scenario: a caller that gets a BYE
// it did not earn, or never gets one, fails its cycle.
func TestSoak(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is not installed (Debian package sip-tester): %v", err)
	}
	cycles := *flagCycles
	if testing.Short() && cycles > 100 {
		cycles = 100
	}
	phases := *flagPhases
	if phases <= 0 {
		phases = min(max(cycles/100, 1), 20)
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak: %d cycles in %d phases, %d lanes, restarts %v, seed %d (-soak.seed %d repeats it)", cycles, phases, lanes, *flagRestarts, seed, seed)
	rssBound := uint64(*flagRSSMB) << 20
	if rssBound == 0 {
		rssBound = 160 << 20
		if *flagRace {
			rssBound = 1200 << 20
		}
	}

	h := newHarness(t, seed)
	h.start()
	base := h.settledMetrics(0, 0)
	t.Logf("at start: %d goroutines, %d fds, RSS %.1f MiB", int(base["go_goroutines"]), int(base["process_open_fds"]), base["process_resident_memory_bytes"]/(1<<20))

	began := time.Now()
	var firstRSS float64
	restarts := map[string]int{}
	for ph := 1; ph <= phases; ph++ {
		n := cycles / phases
		if ph <= cycles%phases {
			n++
		}
		restartAt := -1
		if *flagRestarts && ph > 1 {
			restartAt = h.rng(n)
		}
		pstart := time.Now()
		kind := h.runPhase(ph, n, restartAt)
		if kind != "" {
			restarts[kind]++
		}
		if t.Failed() {
			return
		}
		m := h.checkInvariants(ph, base)
		if ph == 1 {
			firstRSS = m["process_resident_memory_bytes"]
		}
		rss := m["process_resident_memory_bytes"]
		t.Logf("phase %d/%d: %d cycles in %v%s; %d goroutines, %d fds, RSS %.1f MiB; outcomes so far %v",
			ph, phases, n, time.Since(pstart).Round(time.Millisecond), restartNote(kind), int(m["go_goroutines"]), int(m["process_open_fds"]), rss/(1<<20), h.outcomes())
		if uint64(rss) > rssBound {
			t.Errorf("phase %d: RSS %.1f MiB over the bound of %d MiB", ph, rss/(1<<20), rssBound>>20)
		}
		if ph > 1 && rss > firstRSS*1.5+32<<20 {
			t.Errorf("phase %d: RSS %.1f MiB grew from %.1f MiB after phase 1", ph, rss/(1<<20), firstRSS/(1<<20))
		}
		if t.Failed() {
			return
		}
	}
	// At the end the goroutines and descriptors come back to what an idle
	// appliance has (SIP transactions linger up to 32 s after their call).
	end := h.settledMetrics(base["go_goroutines"]+8, base["process_open_fds"]+4)
	if g, b := end["go_goroutines"], base["go_goroutines"]; g > b+8 {
		t.Errorf("%d goroutines at the end, %d at the start: leaked", int(g), int(b))
	}
	if f, b := end["process_open_fds"], base["process_open_fds"]; f > b+4 {
		t.Errorf("%d open fds at the end, %d at the start: leaked", int(f), int(b))
	}
	t.Logf("soak done: %d cycles in %v (%.1f cycles/s), %d phases, restarts %v; outcomes %v; RSS after phase 1 %.1f MiB, at the end %.1f MiB (bound %d MiB); goroutines %d at start, %d at the end",
		cycles, time.Since(began).Round(time.Second), float64(cycles)/time.Since(began).Seconds(), phases, restarts, h.outcomes(),
		firstRSS/(1<<20), end["process_resident_memory_bytes"]/(1<<20), rssBound>>20, int(base["go_goroutines"]), int(end["go_goroutines"]))
	h.stop(syscall.SIGTERM)
	if out := h.proc.Output(); strings.Contains(out, "panic") || strings.Contains(out, "DATA RACE") {
		t.Errorf("parkpage log shows a panic or race:\n%s", proctest.Tail(out, 80))
	}
}

func restartNote(kind string) string {
	if kind == "" {
		return ""
	}
	return " with a restart (" + kind + ")"
}

// harness is parkpage as a process plus its peers.
type harness struct {
	t       *testing.T
	dir     string
	bin     string
	cfgPath string
	sipAddr string
	api     string

	rngMu sync.Mutex
	r     *rand.Rand

	proc    *proctest.Proc
	procMu  sync.Mutex
	hub     *hub
	phone   *sippRun
	phoneRT *rtpPeer

	outMu sync.Mutex
	outc  map[string]int

	sipps sync.Map // *sippRun -> struct{}: running, killed at the end
	ports portPool
}

// portPool hands out sipp's SIP, media and control ports from above the
// kernel's ephemeral range (32768-60999), where a port just probed free
// is not taken by some other socket before sipp binds it. A port is in use
// from get until the sipp using it exits (put).
type portPool struct {
	mu   sync.Mutex
	busy map[int]bool
}

const poolFirst, poolLast = 61000, 64998

// get returns a free port (with want 2, an even one with port+2 free too:
// sipp binds its RTP port and the one two above).
func (p *portPool) get(want int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy == nil {
		p.busy = map[int]bool{}
	}
	// A random even port each time: two harnesses on one machine (or
	// anything else in this range) do not walk the range in step.
	for range poolLast - poolFirst {
		port := poolFirst + 2*rand.IntN((poolLast-poolFirst)/2)
		if want == 2 && (p.busy[port+2] || !udpFree(port+2)) {
			continue
		}
		if p.busy[port] || !udpFree(port) {
			continue
		}
		p.busy[port] = true
		if want == 2 {
			p.busy[port+2] = true
		}
		return port
	}
	panic("no free port in the sipp pool")
}

// put returns a port got with get(want) once its sipp is gone.
func (p *portPool) put(port, want int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.busy, port)
	if want == 2 {
		delete(p.busy, port+2)
	}
}

func udpFree(port int) bool {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func newHarness(t *testing.T, seed uint64) *harness {
	h := &harness{t: t, dir: t.TempDir(), r: rand.New(rand.NewPCG(seed, seed^0x5eed)), outc: map[string]int{}}
	h.bin = filepath.Join(h.dir, "parkpage")
	args := []string{"build", "-o", h.bin}
	if *flagRace {
		args = append(args, "-race")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", append(args, "./cmd/parkpage")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		h.sipps.Range(func(k, _ any) bool { k.(*sippRun).kill(); return true })
	})

	// The PBX: every ring-back reaches this sipp phone, which answers,
	// talks 0.8 s (the bridge is checked meanwhile) and hangs up.
	h.phoneRT = newRTPPeer(t)
	phonePort := proctest.FreePort(t, "udp")
	h.phone = h.startSipp("phone_answer_bye.xml", "", "", phonePort, map[string]string{"from": "201", "talk": "800", "mport": strconv.Itoa(h.phoneRT.port())}, 1000000, 6*time.Hour)

	sipPort := proctest.FreePort(t, "udp")
	httpPort := proctest.FreePort(t, "tcp")
	rtpBase := 21000 + (os.Getpid()%40)*200
	h.sipAddr = fmt.Sprintf("127.0.0.1:%d", sipPort)
	h.api = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	var slots strings.Builder
	for i := lanes - timeoutLanes; i < lanes; i++ {
		fmt.Fprintf(&slots, "    \"%d\": {timeout: 2s}\n", firstSlot+i)
	}
	cfg := fmt.Sprintf(`log: {level: info}
http:
  listen: 127.0.0.1:%d
sip:
  listen: [{transport: udp, address: "127.0.0.1:%d"}]
  trusted: [127.0.0.0/8]
  rtp_ports: %d-%d
  pbx: "sip:127.0.0.1:%d"
park:
  whisper: ""
  rtp_timeout: 10m
  lots:
    - extension: "700"
      slots: %d-%d
      find_slot: first
      timeout: 10m
      ringback_time: 20s
  slots:
%s`, httpPort, sipPort, rtpBase, rtpBase+199, phonePort, firstSlot, firstSlot+lanes-1, slots.String())
	h.cfgPath = filepath.Join(h.dir, "parkpage.yaml")
	if err := os.WriteFile(h.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) rng(n int) int {
	h.rngMu.Lock()
	defer h.rngMu.Unlock()
	return h.r.IntN(n)
}

func (h *harness) outcome(what string) {
	h.outMu.Lock()
	h.outc[what]++
	h.outMu.Unlock()
}

func (h *harness) outcomes() map[string]int {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	m := map[string]int{}
	for k, v := range h.outc {
		m[k] = v
	}
	return m
}

// start runs parkpage and waits until it serves; the event stream
// follows it.
func (h *harness) start() {
	h.t.Helper()
	cmd := exec.Command(h.bin, "run", "-config", h.cfgPath, "-state-dir", filepath.Join(h.dir, "state"))
	p := proctest.StartCmd(h.t, cmd)
	p.WaitLine(h.t, "parkpage running", 3*time.Minute)
	// A failure's per-slot lines do not show a stall of the whole
	// process: keep the end of each run's own log too.
	h.t.Cleanup(func() {
		if h.t.Failed() {
			h.t.Logf("parkpage (pid %d), the end of its log:\n%s", p.Cmd.Process.Pid, proctest.Tail(p.Output(), 80))
		}
	})
	h.procMu.Lock()
	h.proc = p
	h.procMu.Unlock()
	if h.hub == nil {
		h.hub = newHub(h.t, h.api)
	}
	h.hub.waitConnected(h.t)
}

// stop ends parkpage with sig and waits for it.
func (h *harness) stop(sig syscall.Signal) {
	h.t.Helper()
	h.hub.expectGap()
	_ = h.proc.Cmd.Process.Signal(sig)
	err := h.proc.Wait(time.Minute)
	switch {
	case sig != syscall.SIGTERM || err == nil:
	case strings.Contains(h.proc.Output(), "shutdown took longer than"):
		// The disk held the stop's last flushes past parkpage's stop
		// budget (journal writes here have taken 5 s under load): it
		// exits anyway, and the journal, written at every transition,
		// has every call; the restart checks below prove it.
		h.outcome("stop-past-budget")
	default:
		h.t.Errorf("parkpage after SIGTERM: %v\n%s", err, proctest.Tail(h.proc.Output(), 40))
	}
}

// metrics reads /metrics as name{labels} -> value.
func (h *harness) metrics() (map[string]float64, error) {
	res, err := http.Get(h.api + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	m := map[string]float64{}
	// Descriptors from /proc: /metrics has no process_open_fds.
	h.procMu.Lock()
	pid := h.proc.Cmd.Process.Pid
	h.procMu.Unlock()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	m["process_open_fds"] = float64(len(fds))
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

// settledMetrics waits (up to 45 s) until goroutines and fds are at most
// g and f (0: no wait beyond one second) and returns the metrics then.
func (h *harness) settledMetrics(g, f float64) map[string]float64 {
	h.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	if g == 0 {
		deadline = time.Now().Add(time.Second)
	}
	for {
		m, err := h.metrics()
		if err != nil {
			h.t.Fatalf("metrics: %v", err)
		}
		if (g == 0 || m["go_goroutines"] <= g && m["process_open_fds"] <= f) || time.Now().After(deadline) {
			return m
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type slotRow struct {
	Slot   string `json:"slot"`
	State  string `json:"state"`
	Caller string `json:"caller"`
}

func (h *harness) slots() (map[string]slotRow, error) {
	res, err := http.Get(h.api + "/api/v1/slots")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var body struct{ Slots []slotRow }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, err
	}
	m := map[string]slotRow{}
	for _, s := range body.Slots {
		m[s.Slot] = s
	}
	return m, nil
}

// checkInvariants runs with every lane idle: no slot is held (by nobody),
// no call is parked, no RTP leg is open.
func (h *harness) checkInvariants(ph int, base map[string]float64) map[string]float64 {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sl, err := h.slots()
		if err != nil {
			h.t.Fatalf("phase %d: slots: %v", ph, err)
		}
		m, err := h.metrics()
		if err != nil {
			h.t.Fatalf("phase %d: metrics: %v", ph, err)
		}
		var held []string
		for _, s := range sl {
			if s.State != "free" {
				held = append(held, s.Slot+" "+s.State+" by "+s.Caller)
			}
		}
		if len(held) == 0 && m["parkpage_parked_calls"] == 0 && m["parkpage_rtp_legs"] == 0 {
			if lost := h.hub.lostEvents(); lost > 0 {
				h.t.Errorf("phase %d: the event stream lost %d events", ph, lost)
			}
			return m
		}
		if time.Now().After(deadline) {
			h.t.Errorf("phase %d, every caller gone: slots held %v, parkpage_parked_calls %v, parkpage_rtp_legs %v (leaked)", ph, held, m["parkpage_parked_calls"], m["parkpage_rtp_legs"])
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runPhase runs n cycles over the lanes. With restartAt >= 0 parkpage is
// restarted once restartAt cycles have begun: the lanes stop at their next
// checkpoint (idle, or holding a parked caller whose music was checked),
// parkpage is stopped with SIGTERM or killed, started again, every parked
// caller must hear hold music again in its slot, and the lanes go on.
func (h *harness) runPhase(ph, n, restartAt int) (restartKind string) {
	var next atomic.Int64
	ctl := &barrier{n: lanes}
	if restartAt >= 0 {
		ctl.at = int64(restartAt)
	}
	var wg sync.WaitGroup
	for i := 0; i < lanes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &lane{h: h, idx: i, slot: strconv.Itoa(firstSlot + i), timeouts: i >= lanes-timeoutLanes, ph: ph}
			for !h.t.Failed() {
				c := next.Add(1) - 1
				if c >= int64(n) {
					break
				}
				hold := false
				if restartAt >= 0 && ctl.armedAt(c) {
					// A restart is due: most lanes park a caller to hold
					// through it, the others wait idle.
					if l.timeouts || h.rng(4) == 0 {
						ctl.hold(nil)
					} else {
						hold = true
					}
				}
				l.cycle(int(c), ctl, restartAt >= 0, hold)
			}
			ctl.leave()
		}()
	}
	if restartAt >= 0 {
		restartKind = h.restartWhenStopped(ctl)
	}
	wg.Wait()
	return restartKind
}

// restartWhenStopped waits until every lane is at a checkpoint (or done),
// restarts parkpage, checks the held callers and lets the lanes go on.
func (h *harness) restartWhenStopped(ctl *barrier) string {
	held, ok := ctl.waitStopped()
	if !ok {
		return ""
	}
	kind := "SIGTERM"
	sig := syscall.SIGTERM
	if h.rng(2) == 1 {
		kind, sig = "kill -9", syscall.SIGKILL
	}
	h.stop(sig)
	began := time.Now()
	h.start()
	// Every held caller is back in its slot with hold music (checked side
	// by side: the slowest is the longest a caller waited).
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for _, l := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := l.waiting
			n := w.callerRTP.count()
			if err := waitSlot(h, l.slot, "parked", w.callerID, 10*time.Second); err != nil {
				h.t.Errorf("after %s: %s: %v", kind, l.slot, err)
				return
			}
			for deadline := time.Now().Add(10 * time.Second); w.callerRTP.count() == n; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					h.t.Errorf("after %s: caller in %s: no RTP within 10 s of the start", kind, l.slot)
					return
				}
			}
			mu.Lock()
			slowest = max(slowest, time.Since(began))
			mu.Unlock()
			if err := w.callerRTP.music(n, 25, 10*time.Second, nil); err != nil {
				h.t.Errorf("after %s: caller in %s: no hold music again: %v", kind, l.slot, err)
			}
		}()
	}
	wg.Wait()
	h.t.Logf("%s with %d callers parked: all in their slots, the last one's hold music again %v after parkpage said it was running", kind, len(held), slowest.Round(time.Millisecond))
	for range held {
		h.outcome("held-through-" + strings.ReplaceAll(kind, " ", ""))
	}
	ctl.release()
	return kind
}

// barrier stops the lanes for a restart once cycle `at` has begun.
type barrier struct {
	n  int
	at int64

	mu       sync.Mutex
	cond     *sync.Cond
	stopped  []*lane
	left     int
	released bool
	armed    bool
}

// armedAt reports, as cycle c begins, whether a restart is due and not
// yet done (it is due once cycle `at` has begun).
func (b *barrier) armedAt(c int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	if c >= b.at && !b.armed {
		b.armed = true
		b.cond.Broadcast()
	}
	return b.armed && !b.released
}

// hold stops a lane while a restart is due: idle (l nil) or holding a
// parked caller whose music was checked. It returns after the restart (at
// once when none is due).
func (b *barrier) hold(l *lane) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	if !b.armed || b.released {
		return
	}
	b.stopped = append(b.stopped, l)
	b.cond.Broadcast()
	for !b.released {
		b.cond.Wait()
	}
}

func (b *barrier) leave() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	b.left++
	b.cond.Broadcast()
}

// waitStopped waits until every lane is stopped or has left; ok is false
// when the phase ended before the restart was due.
func (b *barrier) waitStopped() (held []*lane, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	for len(b.stopped)+b.left < b.n {
		b.cond.Wait()
	}
	if !b.armed {
		b.released = true
		return nil, false
	}
	for _, l := range b.stopped {
		if l != nil {
			held = append(held, l)
		}
	}
	return held, true
}

func (b *barrier) release() {
	b.mu.Lock()
	b.released = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// lane churns one slot.
type lane struct {
	h        *harness
	idx      int
	slot     string
	timeouts bool
	ph       int
	waiting  *held // the caller held at a restart checkpoint
}

type held struct {
	callerID  string
	callerRTP *rtpPeer
}

func (l *lane) fail(c int, format string, a ...any) {
	l.h.procMu.Lock()
	out := l.h.proc.Output()
	l.h.procMu.Unlock()
	var mine []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "slot="+l.slot) || strings.Contains(line, fmt.Sprintf("3%02d%06d", l.idx, c)) {
			mine = append(mine, line)
		}
	}
	l.h.t.Errorf("phase %d cycle %d, slot %s: %s\nparkpage's log for the slot:\n%s", l.ph, c, l.slot, fmt.Sprintf(format, a...), proctest.Tail(strings.Join(mine, "\n"), 15))
}

// cycle runs one randomized park cycle in the lane's slot; hold: a
// caller that stays parked through the coming restart, then picked up.
func (l *lane) cycle(c int, ctl *barrier, restarts, hold bool) {
	h := l.h
	kind := []string{"abandon", "pickup-retriever-hangs-up", "pickup-caller-hangs-up"}[h.rng(3)]
	if l.timeouts {
		kind = "timeout-ringback"
	}
	if hold {
		kind = "pickup-retriever-hangs-up"
	}
	callerUser := fmt.Sprintf("3%02d%06d", l.idx, c)
	callerRTP := newRTPPeer(h.t)
	defer callerRTP.close()
	keys := map[string]string{"from": callerUser, "parker": "201@127.0.0.1", "mport": strconv.Itoa(callerRTP.port()),
		"hdr": "X-Soak: 1", "hdr2": "X-Soak2: 1"}
	scenario := "caller_until_bye.xml"
	switch kind {
	case "abandon":
		scenario = "park.xml"
		keys["hold"] = strconv.Itoa(1000 + h.rng(600))
	case "pickup-caller-hangs-up":
		scenario = "park.xml"
		keys["hold"] = strconv.Itoa(2000 + h.rng(1000))
	}
	ev := h.hub.lane(l.slot)
	ev.reset()
	caller, err := l.startUntilParked(scenario, keys, callerUser)
	if err != nil {
		l.fail(c, "%s: caller not parked: %v", kind, err)
		return
	}
	if err := callerRTP.music(0, 5, 10*time.Second, caller.done); errors.Is(err, errExited) && callerRTP.count() > 0 {
		h.outcome("hung-up-within-5-music-packets") // its timer beat a late start of the music
	} else if errors.Is(err, errExited) && kind == "timeout-ringback" {
		// The slot's 2 s timeout rang the parker back and the call ended
		// before any music: seen once with the whole process stalled for
		// about 3 s (a -race build beside two busy loops and a deb build on
		// 2 cores), when its timers fire late and at once. Counted; the
		// other kinds still require music.
		h.outcome("rung-back-before-music")
	} else if errors.Is(err, errExited) && kind == "abandon" {
		// The caller's 1-1.6 s hold ran out before the music began: the
		// same whole-process stall as above, with a short-lived caller.
		// Counted; its abandonment is still checked below.
		h.outcome("abandoned-before-music")
	} else if err != nil {
		l.fail(c, "%s: parked caller: %v\n%s", kind, err, caller.logs())
		return
	}
	switch kind {
	case "abandon":
		if _, err := ev.wait(events.CallAbandoned, 15*time.Second); err != nil {
			l.fail(c, "abandon: %v", err)
		}
		if err := caller.wait(30 * time.Second); err != nil {
			l.fail(c, "abandon: caller: %v\n%s", err, caller.logs())
		}
	case "pickup-retriever-hangs-up", "pickup-caller-hangs-up":
		if kind == "pickup-retriever-hangs-up" && restarts {
			l.waiting = &held{callerID: callerUser, callerRTP: callerRTP}
			ctl.hold(l)
			l.waiting = nil
		}
		retrRTP := newRTPPeer(h.t)
		defer retrRTP.close()
		rs := "retrieve.xml"
		rkeys := map[string]string{"from": fmt.Sprintf("4%02d%06d", l.idx, c), "mport": strconv.Itoa(retrRTP.port()), "hdr": "X-Soak: 1"}
		if kind == "pickup-retriever-hangs-up" {
			rs = "retrieve_hangup.xml"
			rkeys["hold"] = strconv.Itoa(1000 + h.rng(500))
		}
		r := h.startSipp(rs, h.sipAddr, l.slot, 0, rkeys, 1, time.Minute)
		// The party that hangs up on a timer (the caller, or the retriever)
		// may beat a pickup or a bridge check that ran late on a busy
		// machine: that is its own hang-up, counted, not a lost call.
		hangs := caller
		if kind == "pickup-retriever-hangs-up" {
			hangs = r
		}
		e, err := ev.waitAny(15*time.Second, events.CallRetrieved, events.CallAbandoned)
		switch {
		case err != nil:
			l.fail(c, "%s: %v\n%s", kind, err, r.logs())
			return
		case e.Type == events.CallAbandoned && kind == "pickup-caller-hangs-up":
			h.outcome("caller-hung-up-before-pickup")
			_ = r.wait(30 * time.Second) // 404, or 200 then BYE: either is right
			if err := caller.wait(30 * time.Second); err != nil {
				l.fail(c, "%s: caller: %v\n%s", kind, err, caller.logs())
			}
			return
		case e.Type != events.CallRetrieved || e.Reason != "pickup":
			l.fail(c, "%s: %+v, want call.retrieved by pickup\n%s", kind, e, r.logs())
			return
		}
		v := byte(0x20 + l.idx)
		err = relays(callerRTP, retrRTP, v, hangs.done)
		if err == nil {
			err = relays(retrRTP, callerRTP, v+0x40, hangs.done)
		}
		switch {
		case errors.Is(err, errExited):
			h.outcome("hung-up-before-bridge-check")
		case err != nil:
			l.fail(c, "%s: bridge: %v", kind, err)
		}
		if err := r.wait(30 * time.Second); err != nil {
			l.fail(c, "%s: retriever: %v\n%s", kind, err, r.logs())
		}
		if err := caller.wait(30 * time.Second); err != nil {
			l.fail(c, "%s: caller: %v\n%s", kind, err, caller.logs())
		}
	case "timeout-ringback":
		if _, err := ev.wait(events.CallRangBack, 15*time.Second); err != nil {
			l.fail(c, "timeout: %v", err)
			return
		}
		if e, err := ev.wait(events.CallRetrieved, 25*time.Second); err != nil {
			l.fail(c, "timeout: ring-back not answered: %v", err)
			return
		} else if e.Reason != "ringback" {
			l.fail(c, "timeout: retrieved %+v", e)
		}
		if err := relays(callerRTP, h.phoneRT, byte(0x20+l.idx), caller.done); errors.Is(err, errExited) {
			h.outcome("hung-up-before-bridge-check")
		} else if err != nil {
			l.fail(c, "timeout: caller to the parker's phone: %v", err)
		}
		if err := caller.wait(30 * time.Second); err != nil {
			l.fail(c, "timeout: caller: %v\n%s\nthe parker's phone, this slot's ring-backs:\n%s", err, caller.logs(), h.phoneCalls(l.slot))
		}
	}
	if err := waitSlot(h, l.slot, "free", "", 10*time.Second); err != nil {
		l.fail(c, "%s: %v", kind, err)
	}
	h.outcome(kind)
}

// phoneCalls is what the PBX phone saw of the last ring-backs from slot.
func (h *harness) phoneCalls(slot string) string {
	b, _ := os.ReadFile(filepath.Join(h.phone.dir, "messages.log"))
	blocks := strings.Split(string(b), "----------------------------------------------- ")
	ids := map[string]bool{}
	for _, bl := range blocks {
		if strings.Contains(bl, "INVITE sip:") && strings.Contains(bl, `"`+slot+`"`) {
			for _, line := range strings.Split(bl, "\n") {
				if id, ok := strings.CutPrefix(strings.TrimSpace(line), "Call-ID:"); ok {
					ids[strings.TrimSpace(id)] = true
				}
			}
		}
	}
	var out []string
	for _, bl := range blocks {
		for id := range ids {
			if strings.Contains(bl, id) {
				first, _, _ := strings.Cut(strings.TrimSpace(bl), "\n\n")
				msg := strings.SplitN(strings.TrimSpace(strings.TrimPrefix(bl, first)), "\n", 2)[0]
				out = append(out, first+" | "+msg+" | "+id)
				break
			}
		}
	}
	return proctest.Tail(strings.Join(out, "\n"), 30)
}

// startUntilParked starts a caller and waits for its call.parked, starting
// it again on new ports if sipp could not bind the ones chosen.
func (l *lane) startUntilParked(scenario string, keys map[string]string, callerUser string) (*sippRun, error) {
	h := l.h
	ev := h.hub.lane(l.slot)
	for attempt := 1; ; attempt++ {
		s := h.startSipp(scenario, h.sipAddr, l.slot, 0, keys, 1, time.Minute)
		e, err := ev.waitOr(events.CallParked, 15*time.Second, s.done)
		if err == nil {
			if !strings.Contains(e.Caller, callerUser) {
				return s, fmt.Errorf("parked %+v, want caller %s", e, callerUser)
			}
			return s, nil
		}
		if errors.Is(err, errExited) && strings.Contains(s.output(), "Unable to bind") && attempt < 4 {
			continue
		}
		return s, fmt.Errorf("attempt %d: %w\n%s", attempt, err, s.logs())
	}
}

// waitSlot polls the board until slot is in state (with caller when set).
func waitSlot(h *harness, slot, state, caller string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		sl, err := h.slots()
		if err == nil {
			s := sl[slot]
			if s.State == state && strings.Contains(s.Caller, caller) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("slot %s is %s (%s), want %s %s", slot, s.State, s.Caller, state, caller)
			}
		} else if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sippRun is one sipp process.
type sippRun struct {
	name string
	dir  string
	cmd  *exec.Cmd
	out  bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
	err  error
}

func (s *sippRun) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *sippRun) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *sippRun) logs() string {
	out := s.output()
	for _, f := range []string{"errors.log", "messages.log"} {
		if b, err := os.ReadFile(filepath.Join(s.dir, f)); err == nil {
			out += "\n--- " + f + ":\n" + proctest.Tail(string(b), 40)
		}
	}
	return s.name + ":\n" + out
}

var errExited = errors.New("sipp exited")

// wait waits for sipp to pass its scenario.
func (s *sippRun) wait(timeout time.Duration) error {
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.kill()
		return fmt.Errorf("%s still running after %v", s.name, timeout)
	}
	if s.err != nil {
		return fmt.Errorf("%s: %v", s.name, s.err)
	}
	os.RemoveAll(s.dir)
	return nil
}

func (s *sippRun) kill() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

func scenario(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "park", "testdata", "sipp", name)
}

// startSipp runs a sipp scenario: a UAC calling target (service is the
// user dialled), or a UAS on port (target ""). It returns once sipp's SIP
// socket is bound; a sipp that lost a pool port to another process (two
// harnesses on one machine) is started again on other ports.
func (h *harness) startSipp(name, target, service string, port int, keys map[string]string, calls int, timeout time.Duration) *sippRun {
	h.t.Helper()
	for attempt := 1; ; attempt++ {
		s, bound := h.trySipp(name, target, service, port, keys, calls, timeout)
		if bound || port != 0 || attempt == 4 || !strings.Contains(s.output(), "Unable to bind") {
			return s
		}
	}
}

func (h *harness) trySipp(name, target, service string, port int, keys map[string]string, calls int, timeout time.Duration) (*sippRun, bool) {
	h.t.Helper()
	dir, err := os.MkdirTemp(h.dir, "sipp")
	if err != nil {
		h.t.Fatal(err)
	}
	var pooled []int
	if port == 0 {
		port = h.ports.get(1)
		pooled = append(pooled, port)
	}
	mp, cp := h.ports.get(2), h.ports.get(1)
	pooled = append(pooled, cp)
	path := scenario(name)
	body, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatal(err)
	}
	args := []string{"-sf", path, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", strconv.Itoa(calls),
		"-nostdin", "-timeout", fmt.Sprintf("%ds", int(timeout.Seconds())), "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log"),
		"-max_recv_loops", "1000", "-mp", strconv.Itoa(mp), "-cp", strconv.Itoa(cp)}
	if target != "" {
		args = append([]string{target}, args...)
	}
	if service != "" {
		args = append(args, "-s", service)
	}
	for k, v := range keys {
		if strings.Contains(string(body), `variable="`+k+`"`) {
			args = append(args, "-set", k, v)
		} else {
			args = append(args, "-key", k, v)
		}
	}
	s := &sippRun{name: name, dir: dir, done: make(chan struct{})}
	s.cmd = exec.Command("sipp", args...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		h.t.Errorf("start sipp: %v", err)
		close(s.done)
		return s, false
	}
	h.sipps.Store(s, struct{}{})
	go func() {
		s.err = s.cmd.Wait()
		h.sipps.Delete(s)
		h.ports.put(mp, 2)
		for _, p := range pooled {
			h.ports.put(p, 1)
		}
		close(s.done)
	}()
	// Wait until its SIP socket is bound (a UAS must be, before it is
	// called), or it ends.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if boundBy(s.cmd.Process.Pid, port) {
			return s, true
		}
		select {
		case <-s.done:
			return s, false
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("sipp %s did not bind %d:\n%s", name, port, s.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// boundBy reports whether process pid has a UDP socket on port (another
// process's socket on it does not count).
func boundBy(pid, port int) bool {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	hexPort := fmt.Sprintf(":%04X", port)
	var inodes []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], hexPort) {
			inodes = append(inodes, "socket:["+f[9]+"]")
		}
	}
	if len(inodes) == 0 {
		return false
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, in := range inodes {
			if link == in {
				return true
			}
		}
	}
	return false
}

// rtpPeer is a caller's, retriever's or phone's media: a UDP socket that
// records what it gets and sends marked packets back to where the server's
// leg sends from.
type rtpPeer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	pkts []rtp.Packet
	from netip.AddrPort
}

func newRTPPeer(t *testing.T) *rtpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &rtpPeer{conn: c}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var pk rtp.Packet
			if pk.Unmarshal(append([]byte(nil), buf[:n]...)) != nil {
				continue
			}
			p.mu.Lock()
			if len(p.pkts) < 4096 {
				p.pkts = append(p.pkts, pk)
			}
			p.from = from
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *rtpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }
func (p *rtpPeer) close()    { p.conn.Close() }

func (p *rtpPeer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pkts)
}

func (p *rtpPeer) since(n int) []rtp.Packet {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > len(p.pkts) {
		return nil
	}
	return append([]rtp.Packet(nil), p.pkts[n:]...)
}

// music waits for want packets after the first `from` and checks they are
// hold music: PCMU frames, not all silence. When stop closes first (the
// caller hung up) it checks what came and returns errExited.
func (p *rtpPeer) music(from, want int, timeout time.Duration, stop <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var stopped error
	for p.count() < from+want && stopped == nil {
		select {
		case <-stop:
			stopped = errExited
			continue
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d RTP packets in %v, want %d of hold music", p.count()-from, timeout, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	silent := 0
	pk := p.since(from)
	if len(pk) > want {
		pk = pk[:want]
	}
	if len(pk) == 0 {
		if stopped != nil {
			// The caller's call ended before any music: the callers'
			// branches tell a ring-back that came first from a failure.
			return fmt.Errorf("no RTP packet before the caller hung up: %w", stopped)
		}
		return fmt.Errorf("no RTP packet")
	}
	for i, r := range pk {
		if r.PayloadType != 0 || len(r.Payload) != 160 {
			return fmt.Errorf("packet %d is PT %d, %d bytes: not music", i, r.PayloadType, len(r.Payload))
		}
		if r.Payload[0] == 0xff || r.Payload[0] == 0x7f {
			silent++
		}
	}
	if silent == len(pk) && stopped == nil {
		return fmt.Errorf("%d packets of silence, no hold music", len(pk))
	}
	return stopped
}

// relays sends packets of payload v from `from` to the server leg it hears
// and waits until `to` receives one (the bridge relays it). It gives up
// with errExited when stop closes (a party hung up).
func relays(from, to *rtpPeer, v byte, stop <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for round := 0; ; round++ {
		from.mu.Lock()
		dst := from.from
		from.mu.Unlock()
		mark := to.count()
		if dst.IsValid() {
			payload := bytes.Repeat([]byte{v}, 160)
			for i := 0; i < 5; i++ {
				pk := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(round*5 + i), Timestamp: uint32(160 * (round*5 + i)), SSRC: 0x50000000 + uint32(v)}, Payload: payload}
				raw, _ := pk.Marshal()
				_, _ = from.conn.WriteToUDPAddrPort(raw, dst)
				time.Sleep(2 * time.Millisecond)
			}
		}
		for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
			for _, r := range to.since(mark) {
				if len(r.Payload) > 0 && r.Payload[0] == v {
					return nil
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case <-stop:
			return errExited
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("payload %#x not relayed within 10 s (%d rounds, server leg %v)", v, round+1, dst)
		}
	}
}

// hub reads the appliance's event stream (SSE), reconnecting across
// restarts, and hands each park event to its slot's lane.
type hub struct {
	api   string
	mu    sync.Mutex
	lanes map[string]*laneEvents
	conn  chan struct{} // closed and replaced on each connection
	lost  atomic.Uint64
	ok    atomic.Bool
}

func newHub(t *testing.T, api string) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{api: api, lanes: map[string]*laneEvents{}, conn: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			h.read(ctx)
			h.ok.Store(false)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func (h *hub) read(ctx context.Context) {
	req, _ := http.NewRequestWithContext(ctx, "GET", h.api+"/api/v1/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	h.ok.Store(true)
	h.mu.Lock()
	close(h.conn)
	h.conn = make(chan struct{})
	h.mu.Unlock()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e events.Event
		if json.Unmarshal([]byte(data), &e) != nil {
			continue
		}
		if e.Type == events.Lost {
			h.lost.Add(e.Count)
			continue
		}
		if e.Slot != "" {
			h.lane(e.Slot).put(e)
		}
	}
}

// waitConnected waits until the stream is (re)connected.
func (h *hub) waitConnected(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !h.ok.Load() {
		if time.Now().After(deadline) {
			t.Fatal("event stream not connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectGap marks the stream as down until it reconnects.
func (h *hub) expectGap() { h.ok.Store(false) }

func (h *hub) lostEvents() uint64 { return h.lost.Load() }

func (h *hub) lane(slot string) *laneEvents {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.lanes[slot]
	if l == nil {
		l = &laneEvents{c: make(chan events.Event, 256)}
		h.lanes[slot] = l
	}
	return l
}

// laneEvents are one slot's events, in order.
type laneEvents struct{ c chan events.Event }

func (l *laneEvents) put(e events.Event) {
	select {
	case l.c <- e:
	default: // the lane is not listening (between cycles); it resets anyway
	}
}

// reset drops the events of earlier cycles.
func (l *laneEvents) reset() {
	for {
		select {
		case <-l.c:
		default:
			return
		}
	}
}

func (l *laneEvents) wait(typ events.Type, timeout time.Duration) (events.Event, error) {
	return l.waitOr(typ, timeout, nil)
}

// waitAny waits for the next event of any of types, skipping others.
func (l *laneEvents) waitAny(timeout time.Duration, types ...events.Type) (events.Event, error) {
	deadline := time.After(timeout)
	var seen []string
	for {
		select {
		case e := <-l.c:
			for _, t := range types {
				if e.Type == t {
					return e, nil
				}
			}
			seen = append(seen, string(e.Type)+" "+e.Reason)
		case <-deadline:
			return events.Event{}, fmt.Errorf("none of %v within %v (events: %v)", types, timeout, seen)
		}
	}
}

// waitOr waits for the next event of typ, skipping others; it gives up
// 5 s after stop closes (errExited: the stream may lag behind a sipp on a
// loaded machine) or after timeout.
func (l *laneEvents) waitOr(typ events.Type, timeout time.Duration, stop <-chan struct{}) (events.Event, error) {
	deadline := time.After(timeout)
	var seen []string
	exited := false
	for {
		select {
		case e := <-l.c:
			if e.Type == typ {
				return e, nil
			}
			seen = append(seen, string(e.Type)+" "+e.Reason)
		case <-stop:
			stop = nil
			deadline = time.After(5 * time.Second)
			exited = true
		case <-deadline:
			if exited {
				return events.Event{}, fmt.Errorf("%w before %s (events: %v)", errExited, typ, seen)
			}
			return events.Event{}, fmt.Errorf("no %s within %v (events: %v)", typ, timeout, seen)
		}
	}
}
