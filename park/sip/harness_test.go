package parksip

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
	"github.com/parkpage/parkpage/park"
)

// toneSpeaker is a Speaker that renders every text as a short tone (one
// 20 ms frame per character, at most 300 ms) and records what was said.
type toneSpeaker struct {
	mu    sync.Mutex
	texts []string
}

func (s *toneSpeaker) Synthesize(_ context.Context, text string) ([]int16, error) {
	s.mu.Lock()
	s.texts = append(s.texts, text)
	s.mu.Unlock()
	n := min(len(text), 15) * 320
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(6000 * math.Sin(2*math.Pi*1000*float64(i)/16000))
	}
	return pcm, nil
}

func (s *toneSpeaker) said() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.texts...)
}

type env struct {
	t      *testing.T
	cfg    *config.Config
	stack  *sipstack.Stack
	srv    *Server
	sub    *events.Subscription
	speak  *toneSpeaker
	addr   netip.AddrPort // SIP UDP
	clock  park.Clock
	cancel context.CancelFunc
	done   chan struct{}
	logBuf *bytes.Buffer
	logMu  *sync.Mutex
}

var portMu sync.Mutex

var rtpBase = 40000 + (os.Getpid()%50)*200

// newEnv starts a stack and park server with parkYAML as the park: section
// (and sipYAML appended to sip:).
func newEnv(t *testing.T, sipYAML, parkYAML string, tune ...func(*Options)) *env {
	t.Helper()
	portMu.Lock()
	base := rtpBase
	rtpBase += 200
	if rtpBase > 60000 {
		rtpBase = 40000
	}
	portMu.Unlock()
	yaml := fmt.Sprintf(`
state_dir: %s
sip:
  listen:
    - {transport: udp, address: "127.0.0.1:0"}
    - {transport: tcp, address: "127.0.0.1:0"}
  rtp_ports: %d-%d
%s
park:
%s
`, t.TempDir(), base, base+199, indent(sipYAML, "  "), indent(parkYAML, "  "))
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return startEnv(t, cfg, tune...)
}

func startEnv(t *testing.T, cfg *config.Config, tune ...func(*Options)) *env {
	t.Helper()
	logBuf := &bytes.Buffer{}
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logMu, logBuf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stack, err := sipstack.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	bus := events.New()
	sub := bus.Subscribe(4096)
	speak := &toneSpeaker{}
	opts := Options{Stack: stack, Bus: bus, Speaker: speak, Logger: log, Housekeep: 100 * time.Millisecond, MinSE: time.Second}
	for _, f := range tune {
		f(&opts)
	}
	srv, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = stack.Run(ctx) }()
		go func() { defer wg.Done(); _ = srv.Run(ctx) }()
		wg.Wait()
	}()
	e := &env{t: t, cfg: cfg, stack: stack, srv: srv, sub: sub, speak: speak, addr: stack.Addr("udp"), cancel: cancel, done: done, logBuf: logBuf, logMu: &logMu}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10s")
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("server log:\n%s", proctest.Tail(logBuf.String(), 60))
			logMu.Unlock()
		}
	})
	return e
}

// logs returns the server's log so far.
func (e *env) logs() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.logBuf.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func indent(s, pre string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "\n")
}

// waitEvent waits for an event of type typ (and slot, if not empty).
func (e *env) waitEvent(typ events.Type, slot string, timeout time.Duration) events.Event {
	e.t.Helper()
	// A readiness wait: on a loaded machine sipp alone may take seconds
	// to start, so the timeout is a floor, never a timing check.
	timeout = max(timeout, minEventWait)
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-e.sub.C():
			if ev.Type == typ && (slot == "" || ev.Slot == slot) {
				return ev
			}
		case <-deadline:
			e.t.Fatalf("no %s event for slot %q within %s", typ, slot, timeout)
		}
	}
}

// minEventWait is the least waitEvent waits for an event that must come.
const minEventWait = 30 * time.Second

// collect gathers the events published within d.
func (e *env) collect(d time.Duration) []events.Event {
	var out []events.Event
	deadline := time.After(d)
	for {
		select {
		case ev := <-e.sub.C():
			out = append(out, ev)
		case <-deadline:
			return out
		}
	}
}

func (e *env) slot(name string) park.SlotState {
	e.t.Helper()
	st, ok := e.srv.Park().Slot(name)
	if !ok {
		e.t.Fatalf("no slot %s", name)
	}
	return st
}

// waitSlot polls until slot has state.
func (e *env) waitSlot(name, state string, timeout time.Duration) park.SlotState {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := e.slot(name)
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("slot %s is %s, want %s", name, st.State, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func scenarioPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "sipp", name)
}

// sipp is one sipp run and the RTP port written in its SDP (key mport).
type sipp struct {
	*sipptest.Sipp
	MPort int
}

type sippOpts struct {
	service string
	keys    map[string]string
	port    int // local SIP port, 0: a free one
	mport   int // 0: a free one
	target  string
	extra   []string
}

// startSipp runs scenario against the server (or opts.target; "-" for a
// phone answering on its own port).
func (e *env) startSipp(scenario string, o sippOpts) *sipp {
	e.t.Helper()
	s := &sipp{MPort: o.mport}
	if s.MPort == 0 {
		s.MPort = proctest.FreeUDPPair(e.t)
	}
	target := o.target
	switch target {
	case "":
		target = e.addr.String()
	case "-":
		target = ""
	}
	keys := map[string]string{"from": "+15551234567", "parker": "1001@pbx.lan", "hold": "500",
		"hdr": "X-Test: 1", "hdr2": "X-Test2: 1", "mport": fmt.Sprint(s.MPort)}
	for k, v := range o.keys {
		keys[k] = v
	}
	s.Sipp = sipptest.Start(e.t, sipptest.Options{
		Scenario: scenarioPath(scenario),
		Target:   target,
		Service:  o.service,
		Port:     o.port,
		Keys:     keys,
		Args:     append([]string{"-mp", fmt.Sprint(proctest.FreeUDPPair(e.t)), "-cp", fmt.Sprint(proctest.FreeUDPPair(e.t))}, o.extra...),
	})
	return s
}

// rtpPeer is a Go RTP endpoint standing in for a phone's media.
type rtpPeer struct {
	t    *testing.T
	conn *net.UDPConn
	mu   sync.Mutex
	pkts []recvd
	from netip.AddrPort
	got  chan struct{}
}

type recvd struct {
	at  time.Time
	pkt rtp.Packet
}

func newRTPPeer(t *testing.T, port int) *rtpPeer {
	t.Helper()
	p, err := tryRTPPeer(t, port)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tryRTPPeer is newRTPPeer returning the error when port is taken.
func tryRTPPeer(t *testing.T, port int) (*rtpPeer, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return nil, fmt.Errorf("rtp peer on %d: %w", port, err)
	}
	p := &rtpPeer{t: t, conn: c, got: make(chan struct{}, 1)}
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
			p.pkts = append(p.pkts, recvd{time.Now(), pk})
			p.from = from
			p.mu.Unlock()
			select {
			case p.got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return p, nil
}

func (p *rtpPeer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pkts)
}

func (p *rtpPeer) snapshot() []recvd {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recvd(nil), p.pkts...)
}

// waitPackets waits until n packets have arrived.
func (p *rtpPeer) waitPackets(n int, timeout time.Duration) []recvd {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for p.count() < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("rtp peer got %d packets, want %d", p.count(), n)
		}
		select {
		case <-p.got:
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p.snapshot()
}

// source is where the server sends from (its RTP leg).
func (p *rtpPeer) source() netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.from
}

// send sends n PCMU packets (payload byte b) to the server leg.
func (p *rtpPeer) send(n int, ssrc uint32, b byte) {
	to := p.source()
	payload := bytes.Repeat([]byte{b}, 160)
	for i := 0; i < n; i++ {
		pk := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(1000 + i), Timestamp: uint32(5000 + 160*i), SSRC: ssrc}, Payload: payload}
		raw, _ := pk.Marshal()
		_, _ = p.conn.WriteToUDPAddrPort(raw, to)
		time.Sleep(2 * time.Millisecond)
	}
}

// sendDTMF sends one RFC 4733 key press (start, update, three end packets)
// on payload type 101.
func (p *rtpPeer) sendDTMF(ssrc uint32, digit byte) {
	to := p.source()
	ts := uint32(90000)
	for i, d := range []uint16{160, 320, 480, 480, 480} {
		end := byte(0)
		if i >= 2 {
			end = 0x80
		}
		pk := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: uint16(3000 + i), Timestamp: ts, SSRC: ssrc, Marker: i == 0},
			Payload: []byte{digit, end | 10, byte(d >> 8), byte(d)}}
		raw, _ := pk.Marshal()
		_, _ = p.conn.WriteToUDPAddrPort(raw, to)
		time.Sleep(5 * time.Millisecond)
	}
}
