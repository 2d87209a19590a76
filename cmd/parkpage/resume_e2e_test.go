package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
)

// The restart tests run the real binary, park calls from sipp callers
// whose SDP points at RTP listeners of the test, stop parkpage (kill -9
// or SIGTERM), start it again on the same state directory, and check
// that every caller hears hold music again on the same stream, that the
// board, BLF-free metrics and pickups are as before, that a BYE sent
// during the outage is handled, and that a timeout that fell inside the
// outage rings back at once.

// rtpSink is a caller's RTP port: it records what parkpage sends.
type rtpSink struct {
	conn *net.UDPConn
	port int

	mu   sync.Mutex
	pkts []rxPacket
	more chan struct{}
}

type rxPacket struct {
	at   time.Time
	ssrc uint32
	seq  uint16
	ts   uint32
	pt   uint8
}

func newRTPSink(t *testing.T) *rtpSink {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &rtpSink{conn: c, port: c.LocalAddr().(*net.UDPAddr).Port, more: make(chan struct{})}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			at := time.Now()
			var p rtp.Packet
			if p.Unmarshal(buf[:n]) != nil {
				continue
			}
			s.mu.Lock()
			s.pkts = append(s.pkts, rxPacket{at, p.SSRC, p.SequenceNumber, p.Timestamp, p.PayloadType})
			close(s.more)
			s.more = make(chan struct{})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

// last is the last packet received (ok false if none).
func (s *rtpSink) last() (rxPacket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pkts) == 0 {
		return rxPacket{}, false
	}
	return s.pkts[len(s.pkts)-1], true
}

// firstAfter waits up to timeout for the first packet that arrived after at.
func (s *rtpSink) firstAfter(at time.Time, timeout time.Duration) (rxPacket, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		i := sort.Search(len(s.pkts), func(i int) bool { return s.pkts[i].at.After(at) })
		if i < len(s.pkts) {
			p := s.pkts[i]
			s.mu.Unlock()
			return p, true
		}
		more := s.more
		s.mu.Unlock()
		select {
		case <-more:
		case <-deadline.C:
			return rxPacket{}, false
		}
	}
}

// resumeRig is parkpage run as a process, restartable on one state
// directory and one config.
type resumeRig struct {
	t         *testing.T
	dir       string
	cfg       string
	base      string
	http      string
	sip       string
	app       *appliance
	binary    string    // default: the tests' build
	startAt   time.Time // when the current process was started
	runningAt time.Time // when it logged that it runs
}

func newResumeRig(t *testing.T, pbx string, extra string) *resumeRig {
	dir := t.TempDir()
	sipPort := proctest.FreePort(t, "udp")
	rtpBase := 20000 + sipPort%90*100
	cfg := fmt.Sprintf(`log: {level: debug}
sip:
  listen:
    - {transport: udp, address: "127.0.0.1:%d"}
  trusted: [127.0.0.0/8]
  rtp_ports: %d-%d
  pbx: %q
park:
  lots:
    - extension: "700"
      slots: 701-730
      timeout: 90s
      ringback_time: 30s
  rtp_timeout: 300s
%s
zones:
  all:
    outputs:
      - {type: rtp, group: 224.5.6.21, port: 10008, interface: lo}
`, sipPort, rtpBase, rtpBase+99, pbx, extra)
	path := filepath.Join(dir, "parkpage.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	httpPort := proctest.FreePort(t, "tcp")
	return &resumeRig{t: t, dir: dir, cfg: path, http: fmt.Sprintf("127.0.0.1:%d", httpPort),
		base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), sip: fmt.Sprintf("127.0.0.1:%d", sipPort)}
}

func (r *resumeRig) journal() string { return filepath.Join(r.dir, "state", "calls.journal") }

func (r *resumeRig) start() {
	r.t.Helper()
	r.startAt = time.Now()
	bin := binary
	if r.binary != "" {
		bin = r.binary
	}
	r.app = startLogged(r.t, exec.Command(bin, "run", "-config", r.cfg, "-state-dir", filepath.Join(r.dir, "state"), "-http", r.http), r.base)
	r.runningAt = time.Now()
}

func (r *resumeRig) kill() time.Time {
	r.t.Helper()
	at := time.Now()
	if err := r.app.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	_ = r.app.Wait(time.Minute)
	return at
}

func (r *resumeRig) term() time.Time {
	r.t.Helper()
	at := time.Now()
	if err := r.app.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatal(err)
	}
	if err := r.app.Wait(time.Minute); err != nil {
		r.t.Fatalf("exit after SIGTERM: %v\n%s", err, proctest.Tail(r.app.Output(), 40))
	}
	return at
}

type slotRow struct {
	Slot   string `json:"slot"`
	State  string `json:"state"`
	Caller string `json:"caller"`
	Parker string `json:"parker"`
}

func (r *resumeRig) slots() map[string]slotRow {
	r.t.Helper()
	var res struct {
		Slots []slotRow `json:"slots"`
	}
	getJSON(r.t, r.base+"/api/v1/slots", &res)
	m := map[string]slotRow{}
	for _, s := range res.Slots {
		m[s.Slot] = s
	}
	return m
}

// waitSlots waits until ok holds for the board.
func (r *resumeRig) waitSlots(what string, timeout time.Duration, ok func(map[string]slotRow) bool) map[string]slotRow {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := r.slots()
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not within %v; board %v\n%s", what, timeout, m, proctest.Tail(r.app.Output(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *resumeRig) metric(name string) float64 {
	r.t.Helper()
	res, err := http.Get(r.base + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	_, _ = io.Copy(io.Discard, res.Body)
	r.t.Fatalf("metric %s missing", name)
	return 0
}

// caller is one parked caller of the test.
type caller struct {
	slot  string
	pt    int
	codec string
	sink  *rtpSink
}

var codecMix = []struct {
	pt    int
	rtpmp string
}{{0, "PCMU/8000"}, {8, "PCMA/8000"}, {9, "G722/8000"}}

// startCallers parks one caller per slot with a single sipp (an -inf line
// each, codecs in turn PCMU, PCMA, G.722).
func startCallers(t *testing.T, r *resumeRig, slots []string) ([]*caller, *sipptest.Sipp) {
	t.Helper()
	var cs []*caller
	var inf strings.Builder
	inf.WriteString("SEQUENTIAL\n")
	for i, sl := range slots {
		c := &caller{slot: sl, pt: codecMix[i%3].pt, codec: codecMix[i%3].rtpmp, sink: newRTPSink(t)}
		cs = append(cs, c)
		fmt.Fprintf(&inf, "%s;%d;%d;%s\n", sl, c.sink.port, c.pt, c.codec)
	}
	f := filepath.Join(t.TempDir(), "callers.csv")
	if err := os.WriteFile(f, []byte(inf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sp := sipptest.Start(t, sipptest.Options{Scenario: "testdata/resume_caller.xml", Target: r.sip, Calls: len(slots),
		Timeout: 240 * time.Second,
		Args:    []string{"-inf", f, "-r", "20", "-l", "200", "-mp", fmt.Sprint(proctest.FreePort(t, "udp"))}})
	return cs, sp
}

// waitParked waits until every caller's slot is occupied and its music plays.
func waitParked(t *testing.T, r *resumeRig, cs []*caller) {
	t.Helper()
	r.waitSlots("callers parked", 2*time.Minute, func(m map[string]slotRow) bool {
		for _, c := range cs {
			if m[c.slot].State == "free" {
				return false
			}
		}
		return true
	})
	for _, c := range cs {
		if _, ok := c.sink.firstAfter(time.Time{}, time.Minute); !ok {
			t.Fatalf("slot %s: no hold music before the restart", c.slot)
		}
	}
}

// checkResumed checks that every caller hears music again on its stream,
// continuing it (same SSRC and payload type, sequence numbers and
// timestamps moving on together, never back), and returns the longest gap
// a caller heard and the longest time from the new process's start to
// its first packet.
func checkResumed(t *testing.T, r *resumeRig, cs []*caller, before map[string]rxPacket) (gap, toMusic time.Duration) {
	t.Helper()
	for _, c := range cs {
		first, ok := c.sink.firstAfter(r.startAt, time.Minute)
		if !ok {
			t.Errorf("slot %s: no hold music after the restart", c.slot)
			continue
		}
		last := before[c.slot]
		if first.ssrc != last.ssrc || int(first.pt) != c.pt {
			t.Errorf("slot %s: SSRC %08x PT %d after the restart, want %08x PT %d", c.slot, first.ssrc, first.pt, last.ssrc, c.pt)
		}
		dSeq := int(int16(first.seq - last.seq))
		silence := first.at.Sub(last.at)
		maxSeq := int(silence/(20*time.Millisecond)) + 25
		if dSeq <= 0 || dSeq > maxSeq {
			t.Errorf("slot %s: sequence %d → %d across a %v gap (want ahead by 1..%d)", c.slot, last.seq, first.seq, silence, maxSeq)
		}
		dTS := int64(int32(first.ts - last.ts))
		if want := int64(dSeq) * 160; dTS < want-3*160 || dTS > want+3*160 {
			t.Errorf("slot %s: timestamp moved %d for %d packets (want about %d)", c.slot, dTS, dSeq, want)
		}
		gap = max(gap, silence)
		toMusic = max(toMusic, first.at.Sub(r.startAt))
		if d := first.at.Sub(r.runningAt); d > 3*time.Second {
			t.Errorf("slot %s: hold music back %v after parkpage was running again (want within 3 s)", c.slot, d)
		}
	}
	return gap, toMusic
}

func lastPackets(cs []*caller) map[string]rxPacket {
	m := map[string]rxPacket{}
	for _, c := range cs {
		m[c.slot], _ = c.sink.last()
	}
	return m
}

// pickUpAll picks every slot up with one retriever sipp and waits for the
// callers' sipp to pass (each caller gets the BYE once its retriever left).
func pickUpAll(t *testing.T, r *resumeRig, slots []string, callers ...*sipptest.Sipp) {
	t.Helper()
	var inf strings.Builder
	inf.WriteString("SEQUENTIAL\n")
	for _, sl := range slots {
		fmt.Fprintf(&inf, "%s;%d\n", sl, proctest.FreePort(t, "udp"))
	}
	f := filepath.Join(t.TempDir(), "retrievers.csv")
	if err := os.WriteFile(f, []byte(inf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := sipptest.Start(t, sipptest.Options{Scenario: "testdata/resume_retriever.xml", Target: r.sip, Calls: len(slots),
		Timeout: 120 * time.Second,
		Args:    []string{"-inf", f, "-r", "10", "-l", "200", "-mp", fmt.Sprint(proctest.FreePort(t, "udp"))}})
	rs.MustPass(3 * time.Minute)
	for _, c := range callers {
		c.MustPass(3 * time.Minute)
	}
	r.waitSlots("every slot free after the pickups", time.Minute, func(m map[string]slotRow) bool {
		for _, s := range m {
			if s.State != "free" {
				return false
			}
		}
		return true
	})
}

func slotRange(first, n int) []string {
	var s []string
	for i := range n {
		s = append(s, strconv.Itoa(first+i))
	}
	return s
}

// TestParkedCallsSurviveKill9: 20 parked calls (PCMU, PCMA, G.722),
// kill -9, start again.
func TestParkedCallsSurviveKill9(t *testing.T) { testRestart(t, 19, true) }

// TestParkedCallsSurviveSIGTERM: the same with SIGTERM and start, fewer calls.
func TestParkedCallsSurviveSIGTERM(t *testing.T) { testRestart(t, 4, false) }

// testRestart parks n callers in 701.., one caller in 725 whose 5 s
// timeout falls inside the outage, and one in 720 that hangs up during
// the outage; stops parkpage (kill -9 or SIGTERM) and starts it again.
func testRestart(t *testing.T, n int, kill9 bool) {
	pbx := sipptest.Start(t, sipptest.Options{Scenario: "testdata/resume_pbx.xml", Timeout: 240 * time.Second,
		Args: []string{"-mp", fmt.Sprint(proctest.FreePort(t, "udp"))}})
	r := newResumeRig(t, "sip:"+pbx.Addr(), `  slots:
    "725": {timeout: 5s}`)
	r.start()
	slots := slotRange(701, n)
	blf := startWatchers(t, r, append(append([]string{}, slots...), "720", "725"))
	callers, callSipp := startCallers(t, r, slots)
	waitParked(t, r, callers)

	// The two whose fate falls inside the outage: parked last, just before the stop.
	byeSink, lateSlots := newRTPSink(t), []string{"725"}
	byeCaller := sipptest.Start(t, sipptest.Options{Scenario: sippDir + "park.xml", Target: r.sip, Service: "720", Timeout: 240 * time.Second,
		Keys: map[string]string{"from": "2065550199", "parker": "201@127.0.0.1", "hold": "2500", "mport": fmt.Sprint(byeSink.port), "hdr": "X-Test: 1", "hdr2": "X-Test2: 1"},
		Args: []string{"-mp", fmt.Sprint(proctest.FreePort(t, "udp")), "-max_non_invite_retrans", "14"}})
	late, lateSipp := startCallers(t, r, lateSlots)
	waitParked(t, r, append(late, &caller{slot: "720", sink: byeSink}))
	parkedAt := time.Now()
	all := append(callers, late...)
	allSlots := append(append([]string{}, slots...), lateSlots...)

	var stoppedAt time.Time
	if kill9 {
		stoppedAt = r.kill()
	} else {
		stoppedAt = r.term()
		if strings.Contains(byeCaller.Messages(), "BYE sip:caller") || strings.Contains(callSipp.Messages(), "BYE sip:caller") {
			t.Fatal("SIGTERM sent BYE to parked callers")
		}
	}
	if time.Since(parkedAt) > 2*time.Second {
		t.Logf("note: the stop came %v after the last park", time.Since(parkedAt))
	}
	before := lastPackets(all)
	notifiesBefore := blfNotifies(blf.Messages())
	if len(notifiesBefore) == 0 {
		t.Fatalf("the BLF watcher got no NOTIFY before the stop:\n%s", blf.Logs())
	}
	// The outage: until the 720 caller has sent its BYE and slot 725's
	// timeout has passed.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(byeCaller.Messages(), "BYE sip:720") || time.Since(parkedAt) < 6*time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("the 720 caller sent no BYE during the outage:\n%s", byeCaller.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.start()
	gap, toMusic := checkResumed(t, r, all, before)
	t.Logf("%d calls resumed: stopped → running %v, longest gap a caller heard %v, start → music (longest) %v",
		len(all), r.runningAt.Sub(stoppedAt).Round(time.Millisecond), gap.Round(time.Millisecond), toMusic.Round(time.Millisecond))

	// The board: every slot as before, 720 freed by its BYE, 725 ringing back.
	board := r.waitSlots("720 freed by the BYE sent during the outage, 725 ringing back", time.Minute, func(m map[string]slotRow) bool {
		return m["720"].State == "free" && m["725"].State == "ringback"
	})
	for _, c := range all {
		row := board[c.slot]
		if row.State == "free" || !strings.Contains(row.Caller, "20655501"+c.slot) || !strings.Contains(row.Parker, "201") {
			t.Errorf("slot %s after the restart: %+v", c.slot, row)
		}
	}
	byeCaller.MustPass(time.Minute)
	if !strings.Contains(r.app.Output(), "slot=720") {
		t.Errorf("no log of slot 720 after the restart")
	}
	if !strings.Contains(pbx.Messages(), "INVITE sip:201@") {
		t.Errorf("no ring-back INVITE to 201 reached the PBX:\n%s", pbx.Logs())
	}
	parked := 0
	for _, row := range board {
		if row.State == "parked" {
			parked++
		}
	}
	if got := r.metric("parkpage_parked_calls"); int(got) != parked || parked != len(all)-1 {
		t.Errorf("parkpage_parked_calls %v, board has %d parked (want %d)", got, parked, len(all)-1)
	}
	// BLF: the watchers, which never re-subscribe, are told by the new
	// process that their slots are occupied (720: free after its BYE), with
	// versions that go on increasing.
	deadline = time.Now().Add(time.Minute)
	for {
		after := blfNotifies(blf.Messages())[len(notifiesBefore):]
		lastBefore := map[string]int{}
		for _, n := range notifiesBefore {
			lastBefore[n.entity] = n.version
		}
		seen := map[string]blfNotify{}
		bad := ""
		for _, n := range after {
			if n.version <= lastBefore[n.entity] {
				bad = fmt.Sprintf("slot %s: BLF version %d after the restart, %d before", n.entity, n.version, lastBefore[n.entity])
			}
			seen[n.entity] = n
		}
		missing := []string{}
		for _, sl := range allSlots {
			if n, ok := seen[sl]; !ok || !n.occupied {
				missing = append(missing, sl)
			}
		}
		if n, ok := seen["720"]; !ok || n.occupied {
			missing = append(missing, "720 (free)")
		}
		if bad != "" {
			t.Fatal(bad)
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BLF watchers: no NOTIFY after the restart showing %v:\n%s", missing, blf.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pickUpAll(t, r, allSlots, callSipp, lateSipp)
}

// startWatchers subscribes to each slot's BLF with one sipp (an -inf
// line each), before the calls are parked.
func startWatchers(t *testing.T, r *resumeRig, slots []string) *sipptest.Sipp {
	t.Helper()
	f := filepath.Join(t.TempDir(), "watchers.csv")
	if err := os.WriteFile(f, []byte("SEQUENTIAL\n"+strings.Join(slots, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := sipptest.Start(t, sipptest.Options{Scenario: "testdata/resume_blf.xml", Target: r.sip, Calls: len(slots),
		Timeout: 240 * time.Second, Keys: map[string]string{"from": "301"},
		Args: []string{"-inf", f, "-r", "50", "-l", "200", "-mp", fmt.Sprint(proctest.FreePort(t, "udp"))}})
	deadline := time.Now().Add(time.Minute)
	for len(blfNotifies(w.Messages())) < len(slots) {
		if time.Now().After(deadline) {
			t.Fatalf("BLF watchers not subscribed:\n%s", w.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// parkpage saves subscriptions within a second of a change (more when
	// the disk is slow): a crash before that loses them, as the phone
	// would re-subscribe on expiry. Wait for the save, so the restart
	// tests what was saved.
	saved := filepath.Join(r.dir, "state", "blf-subscriptions.json")
	for {
		var subs []struct {
			Ext string `json:"ext"`
		}
		b, _ := os.ReadFile(saved)
		json.Unmarshal(b, &subs)
		if len(subs) >= len(slots) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BLF subscriptions not saved in %s (%d of %d)", saved, len(subs), len(slots))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w
}

type blfNotify struct {
	entity   string // the slot
	version  int
	occupied bool
}

var (
	blfHeadRe   = regexp.MustCompile(`<dialog-info [^>]*version="(\d+)"[^>]*entity="sip:(\d+)@`)
	blfDialogRe = regexp.MustCompile(`<dialog id="(\d+)"[^>]*>\s*<state>(\w+)</state>`)
)

// blfNotifies reads the NOTIFYs the sipp BLF watchers received, in order.
func blfNotifies(msgs string) []blfNotify {
	var out []blfNotify
	for _, part := range strings.Split(msgs, "-----------------------------------------------") {
		if !strings.Contains(part, "message received") || !strings.Contains(part, "NOTIFY sip:") {
			continue
		}
		m := blfHeadRe.FindStringSubmatch(part)
		if m == nil {
			continue
		}
		n := blfNotify{entity: m[2]}
		n.version, _ = strconv.Atoi(m[1])
		for _, d := range blfDialogRe.FindAllStringSubmatch(part, -1) {
			if d[2] != "terminated" {
				n.occupied = true
			}
		}
		out = append(out, n)
	}
	return out
}

var journalKeyRe = regexp.MustCompile(`^[0-9a-f]{8} \{"k":"([^"]+)"`)

var journalEntryRe = regexp.MustCompile(`call journal: entry skipped.*entry=(\d+).*reason="?([^"]+)`)

// TestDamagedJournal: a garbage line, one corrupted entry among good ones
// and a truncated tail are each reported (entry and reason) and skipped;
// the good calls resume, through three restarts of the same calls.
func TestDamagedJournal(t *testing.T) {
	r := newResumeRig(t, "sip:127.0.0.1:9", "")
	r.start()
	callers, _ := startCallers(t, r, slotRange(701, 3))
	waitParked(t, r, callers)
	for _, tc := range []struct {
		name   string
		damage func(lines []string) []string
		want   string
	}{
		{"garbage", func(l []string) []string {
			return append([]string{"\x00\x13garbage from a bad sector\xff"}, l...)
		}, "not a journal line"},
		{"one bad entry among good ones", func(l []string) []string {
			for i, s := range l {
				if strings.Contains(s, `"slot":"702"`) {
					l[i] = strings.Replace(s, `"slot":"702"`, `"slot":"709"`, 1)
				}
			}
			return l
		}, "checksum mismatch"},
		{"truncated", func(l []string) []string {
			last := l[len(l)-1]
			return append(l[:len(l)-1], last[:len(last)/2])
		}, "truncated"},
	} {
		r.term()
		data, err := os.ReadFile(r.journal())
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		// The alive record first, so truncating the last line hits a call.
		sort.SliceStable(lines, func(i, j int) bool {
			return strings.Contains(lines[i], `"~alive"`) && !strings.Contains(lines[j], `"~alive"`)
		})
		orig := append([]string(nil), lines...)
		lines = tc.damage(lines)
		// A call is lost when none of its lines is left intact (an older
		// intact line of a call resumes its older state).
		intact := map[string]bool{}
		for _, l := range lines {
			intact[l] = true
		}
		keys, kept := map[string]bool{}, map[string]bool{}
		for _, l := range orig {
			if m := journalKeyRe.FindStringSubmatch(l); m != nil && m[1] != "~alive" {
				keys[m[1]] = true
				if intact[l] {
					kept[m[1]] = true
				}
			}
		}
		out := strings.Join(lines, "\n")
		if tc.name != "truncated" {
			out += "\n"
		}
		if err := os.WriteFile(r.journal(), []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		before := lastPackets(callers)
		r.start()
		m := journalEntryRe.FindStringSubmatch(r.app.Output())
		if m == nil || !strings.Contains(m[2], tc.want) {
			t.Fatalf("%s: no report of the damaged entry (want %q):\n%s", tc.name, tc.want, proctest.Tail(r.app.Output(), 40))
		}
		t.Logf("%s: reported entry %s: %s", tc.name, m[1], m[2])
		board := r.slots()
		var good []*caller
		for _, c := range callers {
			if board[c.slot].State != "free" {
				good = append(good, c)
			}
		}
		if len(good) != len(kept) || len(keys) != len(callers) {
			t.Fatalf("%s: %d calls resumed, want %d (%d in the journal); board %v", tc.name, len(good), len(kept), len(keys), board)
		}
		checkResumed(t, r, good, before)
		callers = good // a lost caller never hears from parkpage again (its sipp is killed at the end)
	}
	if len(callers) != 2 {
		t.Fatalf("%d calls left, want 2 (702's entry was corrupted)", len(callers))
	}
	var slots []string
	for _, c := range callers {
		slots = append(slots, c.slot)
	}
	pickUpAll(t, r, slots)
}

// TestJournalOlderThanResumeWithin: calls whose entry is older than
// park.resume_within get a BYE and call.abandoned instead of music.
func TestJournalOlderThanResumeWithin(t *testing.T) {
	r := newResumeRig(t, "sip:127.0.0.1:9", "  resume_within: 2s")
	r.start()
	callers, callSipp := startCallers(t, r, slotRange(701, 2))
	waitParked(t, r, callers)
	stopped := r.kill()
	for time.Since(stopped) < 3*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	r.start()
	callSipp.MustPass(time.Minute) // each caller got its BYE
	out := r.app.Output()
	if n := strings.Count(out, "parked call abandoned"); n != 2 || !strings.Contains(out, "longer than park.resume_within") {
		t.Fatalf("%d abandoned calls logged, want 2:\n%s", n, proctest.Tail(out, 40))
	}
	for _, c := range callers {
		if st := r.slots()[c.slot].State; st != "free" {
			t.Errorf("slot %s is %s, want free", c.slot, st)
		}
	}
}

// TestRestartGap measures what a parked caller hears when parkpage is
// restarted at once (as systemd's Restart=always does): the longest
// silence across SIGTERM + start and across kill -9 + start. It checks
// only that the music comes back on the same stream; the figures are
// logged (the README quotes them). PARKPAGE_GAP_BINARY runs another
// build (a release build instead of the tests' -race one).
func TestRestartGap(t *testing.T) {
	r := newResumeRig(t, "sip:127.0.0.1:9", "")
	if b := os.Getenv("PARKPAGE_GAP_BINARY"); b != "" {
		r.binary = b
	}
	r.start()
	callers, _ := startCallers(t, r, slotRange(701, 3))
	waitParked(t, r, callers)
	for _, how := range []string{"SIGTERM", "kill -9"} {
		before := lastPackets(callers)
		if how == "SIGTERM" {
			r.term()
		} else {
			r.kill()
		}
		r.start()
		gap, toMusic := checkResumed(t, r, callers, before)
		t.Logf("%s, started again at once: longest gap a caller heard %v (new process start → music %v)", how, gap.Round(time.Millisecond), toMusic.Round(time.Millisecond))
	}
}

// TestTCPParkedCallSurvivesRestart: a caller parked over TCP keeps its
// call across a SIGTERM restart although its connection dies with the
// process: hold music again, and after a pickup the server's BYE reaches
// it over a new connection to its Contact.
func TestTCPParkedCallSurvivesRestart(t *testing.T) {
	r := newResumeRig(t, "sip:127.0.0.1:9", "")
	tcpPort := proctest.FreePort(t, "tcp")
	b, err := os.ReadFile(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "  listen:\n", fmt.Sprintf("  listen:\n    - {transport: tcp, address: \"127.0.0.1:%d\"}\n", tcpPort), 1)
	if err := os.WriteFile(r.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r.start()
	c := &caller{slot: "701", pt: 0, codec: "PCMU/8000", sink: newRTPSink(t)}
	f := filepath.Join(t.TempDir(), "callers.csv")
	if err := os.WriteFile(f, []byte(fmt.Sprintf("SEQUENTIAL\n701;%d;0;PCMU/8000\n", c.sink.port)), 0o644); err != nil {
		t.Fatal(err)
	}
	sp := sipptest.Start(t, sipptest.Options{Scenario: "testdata/resume_caller.xml", Target: fmt.Sprintf("127.0.0.1:%d", tcpPort),
		Calls: 1, Timeout: 240 * time.Second, Args: []string{"-t", "t1", "-max_reconnect", "10", "-reconnect_close", "false", "-reconnect_sleep", "100", "-inf", f, "-mp", fmt.Sprint(proctest.FreePort(t, "udp"))}})
	waitParked(t, r, []*caller{c})
	before := lastPackets([]*caller{c})
	stoppedAt := r.term()
	r.start()
	gap, _ := checkResumed(t, r, []*caller{c}, before)
	t.Logf("TCP caller resumed: stopped → running %v, longest gap %v", r.runningAt.Sub(stoppedAt).Round(time.Millisecond), gap.Round(time.Millisecond))
	// A pickup, then the retriever hangs up: the server's BYE must reach
	// the caller, whose first connection is gone. (sipp then answers on
	// that dead connection rather than the one the BYE came on, as
	// RFC 3261 18.2.2 asks; a phone answers on the new one. So the test
	// looks for the BYE, not for sipp's 200.)
	pickUpAll(t, r, []string{"701"})
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(sp.Messages(), "BYE sip:caller701@") {
		if time.Now().After(deadline) {
			t.Fatalf("the TCP caller got no BYE after the pickup:\n%s", sp.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
