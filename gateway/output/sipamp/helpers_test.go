package sipamp

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/internal/testsupport/sipptest"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// rig is the appliance side: the real SIP stack and RTP engine on
// loopback, as cmd wires them. One rig serves every test of the package
// (they run in parallel, as calls on one appliance would).
type rig struct {
	stack  *sipstack.Stack
	engine *media.Engine
}

var shared *rig

func TestMain(m *testing.M) {
	// The tests spend their time waiting on real-time audio and SIP
	// exchanges, not on the CPU: run more of them at once than
	// -parallel's default (GOMAXPROCS, 2 on the build machines), unless
	// the command line chose.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	r, stop, err := startRig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sipamp tests:", err)
		os.Exit(1)
	}
	shared = r
	code := m.Run()
	stop()
	os.Exit(code)
}

func startRig() (*rig, func(), error) {
	cfg, err := config.LoadDefault()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "sipamp-test")
	if err != nil {
		return nil, nil, err
	}
	cfg.StateDir = dir
	cfg.SIP.Listen = []config.Listener{{Transport: "udp", Address: "127.0.0.1:0"}}
	log := rigLogger()
	st, err := sipstack.New(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Listen(); err != nil {
		return nil, nil, err
	}
	// 40 legs: every parallel test's calls at once.
	base := 42000 + (os.Getpid()%200)*80
	eng, err := media.NewEngine(media.Config{IP: netip.MustParseAddr("127.0.0.1"), PortMin: base, PortMax: base + 79}, log)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = st.Run(ctx) }()
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	stop := func() { cancel(); wg.Wait(); os.RemoveAll(dir) }
	return &rig{stack: st, engine: eng}, stop, nil
}

// rigLogger logs the shared stack at debug level with -v (TestMain runs
// before flags are visible through testing.Verbose, so read the flag).
func rigLogger() *slog.Logger {
	for _, a := range os.Args[1:] {
		if a == "-test.v" || a == "-test.v=true" {
			return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newRig returns the shared rig and marks t parallel.
func newRig(t *testing.T) *rig {
	t.Helper()
	t.Parallel()
	return shared
}

// outCfg is a SIP output config with parkpage's defaults, made quicker
// where the test does not care.
func outCfg(uri string) *config.Output {
	return &config.Output{
		Type: config.OutputSIP, URI: uri, Preset: "generic", DTMF: "rfc4733",
		Settle: config.Duration(300 * time.Millisecond), DigitOn: config.Duration(100 * time.Millisecond),
		DigitGap: config.Duration(100 * time.Millisecond), AfterCode: config.Duration(500 * time.Millisecond),
		Answer: config.Duration(5 * time.Second),
	}
}

func (r *rig) output(t *testing.T, o *config.Output) *Output {
	t.Helper()
	out, err := New("test/outputs[0]", o, r.options(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return out
}

func (r *rig) options(t *testing.T) Options {
	return Options{SIP: r.stack, Media: r.engine, Logger: testLogger(t), RetryDelay: 100 * time.Millisecond}
}

// sipp runs one sipp UAS scenario from testdata on 127.0.0.1.
type sipp struct {
	*sipptest.Sipp
	t    *testing.T
	done <-chan struct{}
}

func startSipp(t *testing.T, scenario string, calls int, keys ...string) *sipp {
	t.Helper()
	km := map[string]string{}
	for i := 0; i+1 < len(keys); i += 2 {
		km[keys[i]] = keys[i+1]
	}
	s := sipptest.Start(t, sipptest.Options{Scenario: filepath.Join("testdata", scenario), Calls: calls, Keys: km})
	return &sipp{Sipp: s, t: t, done: s.Done()}
}

func (s *sipp) uri(user string) string { return s.URI(user) }

// wait waits for sipp to finish and reports whether every call passed its
// scenario (sipp exits 0 only then).
func (s *sipp) wait() (ok bool, log string) {
	if err := s.Wait(40 * time.Second); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// mustPass fails the test unless sipp's scenario passed.
func (s *sipp) mustPass() {
	s.t.Helper()
	if ok, log := s.wait(); !ok {
		s.t.Errorf("sipp scenario failed: %s", log)
	}
}

// messages returns sipp's message trace.
func (s *sipp) messages() string { return s.Messages() }

// received returns the SIP requests sipp received, from its trace,
// without retransmissions.
func (s *sipp) received(method string) []string {
	var out []string
	for _, blk := range strings.Split(s.messages(), "----------------------------------------------- ") {
		_, msg, ok := strings.Cut(blk, "message received")
		if !ok {
			continue
		}
		_, msg, _ = strings.Cut(msg, "\n")
		msg = strings.TrimLeft(msg, "\r\n")
		// A retransmission (Timer A, when sipp answers slowly on a busy
		// machine) is byte for byte the same request: count it once.
		if strings.HasPrefix(msg, method+" ") && !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	return out
}

// receivedAt returns when sipp received each request of method (first
// transmissions only), from its trace's timestamps.
func (s *sipp) receivedAt(method string) []time.Time {
	var out []time.Time
	seen := map[string]bool{}
	for _, blk := range strings.Split(s.messages(), "----------------------------------------------- ") {
		stamp, msg, ok := strings.Cut(blk, "\n")
		if !ok || !strings.Contains(stamp, ":") {
			continue
		}
		_, msg, ok = strings.Cut(msg, "\n") // "UDP message received [n] bytes :"
		msg = strings.TrimLeft(msg, "\r\n")
		if !ok || !strings.HasPrefix(msg, method+" ") || seen[msg] {
			continue
		}
		seen[msg] = true
		at, err := time.ParseInLocation("2006-01-02 15:04:05.000000", strings.TrimSpace(stamp), time.Local)
		if err != nil {
			s.t.Fatalf("sipp trace timestamp %q: %v", stamp, err)
		}
		out = append(out, at)
	}
	return out
}

// receiver is the amplifier's RTP side: sipp's SDP answer points here.
type receiver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	pkts []packet
	got  chan struct{} // a token per packet, never blocking
	done chan struct{}
}

type packet struct {
	at      time.Time
	h       rtp.Header
	payload []byte
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{conn: c, got: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 1600)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			var p rtp.Packet
			if p.Unmarshal(append([]byte(nil), buf[:n]...)) != nil {
				continue
			}
			r.mu.Lock()
			r.pkts = append(r.pkts, packet{time.Now(), p.Header, p.Payload})
			r.mu.Unlock()
			select {
			case r.got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-r.done })
	return r
}

func (r *receiver) port() string { return strconv.Itoa(r.conn.LocalAddr().(*net.UDPAddr).Port) }

func (r *receiver) packets() []packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]packet(nil), r.pkts...)
}

// waitFor waits until a packet satisfies f.
func (r *receiver) waitFor(t *testing.T, f func(packet) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, p := range r.packets() {
			if f(p) {
				return
			}
		}
		select {
		case <-r.got:
		case <-deadline:
			t.Fatal("expected RTP packet never arrived")
		}
	}
}

// announcement is a page's audio: a 1.2 s chirp from 300 Hz to 3 kHz with
// a slow envelope, inside the telephone band so G.711 keeps it and with a
// single sharp autocorrelation peak.
func announcement() []int16 {
	n := 6 * codec.SampleRate / 5
	out := make([]int16, n)
	phase := 0.0
	for i := range out {
		f := 300 + 2700*float64(i)/float64(n)
		phase += 2 * math.Pi * f / codec.SampleRate
		env := 0.6 + 0.4*math.Sin(2*math.Pi*3*float64(i)/codec.SampleRate)
		out[i] = int16(9000 * env * math.Sin(phase))
	}
	return out
}

// pageAudio is output.Audio over fixed PCM, encoding on demand.
type pageAudio struct{ pcm []int16 }

func (a pageAudio) PCM() []int16 { return a.pcm }

func (a pageAudio) Frames(c codec.Name) ([][]byte, error) {
	enc, err := codec.NewEncoder(c)
	if err != nil {
		return nil, err
	}
	var frames [][]byte
	for off := 0; off < len(a.pcm); off += codec.FrameSamples {
		frame := make([]int16, codec.FrameSamples)
		copy(frame, a.pcm[off:])
		p, err := enc.Encode(nil, frame)
		if err != nil {
			return nil, err
		}
		frames = append(frames, p)
	}
	return frames, nil
}

func playback(pcm []int16) *output.Playback {
	return &output.Playback{ID: "page-1", Priority: output.PriorityPark, Zone: "test", Audio: pageAudio{pcm}, CallerID: "Park"}
}

// digit is one RFC 4733 event as received.
type digit struct {
	key         rune
	ts          uint32
	first, last time.Time // arrival of the first packet and the last end packet
	marker      bool      // on the first packet
	ends        int       // packets with the E bit
	duration    uint16    // of the end packets
	packets     int
}

func rfc4733Digits(t *testing.T, pkts []packet, pt uint8) []digit {
	t.Helper()
	var out []digit
	for _, p := range pkts {
		if p.h.PayloadType != pt {
			continue
		}
		ev, err := media.ParseEvent(p.payload)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := media.DigitOf(ev.Code)
		if len(out) == 0 || out[len(out)-1].ts != p.h.Timestamp {
			out = append(out, digit{key: rune(k), ts: p.h.Timestamp, first: p.at, marker: p.h.Marker})
		} else if p.h.Marker {
			t.Errorf("marker bit on a continuation packet of digit %c", rune(k))
		}
		d := &out[len(out)-1]
		d.packets++
		if ev.End {
			d.ends++
			d.last = p.at
			d.duration = ev.Duration
		}
	}
	return out
}

// audioOf decodes the packets of payload type pt, in sequence order, to
// 16 kHz PCM, and returns the arrival of the first.
func audioOf(t *testing.T, pkts []packet, pt uint8, c codec.Name) ([]int16, time.Time) {
	t.Helper()
	var sel []packet
	for _, p := range pkts {
		if p.h.PayloadType == pt {
			sel = append(sel, p)
		}
	}
	if len(sel) == 0 {
		return nil, time.Time{}
	}
	sort.SliceStable(sel, func(i, j int) bool {
		return int16(sel[i].h.SequenceNumber-sel[0].h.SequenceNumber) < int16(sel[j].h.SequenceNumber-sel[0].h.SequenceNumber)
	})
	dec, err := codec.NewDecoder(c)
	if err != nil {
		t.Fatal(err)
	}
	var pcm []int16
	for _, p := range sel {
		if pcm, err = dec.Decode(pcm, p.payload); err != nil {
			t.Fatal(err)
		}
	}
	return pcm, sel[0].at
}

// bestCorrelation is the highest normalised cross-correlation of got
// against ref over lags 0..maxLag, and that lag.
func bestCorrelation(ref, got []int16, maxLag int) (float64, int) {
	best, at := -1.0, 0
	for lag := 0; lag <= maxLag && lag < len(got); lag++ {
		var xy, xx, yy float64
		for i := 0; i < len(ref) && i+lag < len(got); i++ {
			x, y := float64(ref[i]), float64(got[i+lag])
			xy += x * y
			xx += x * x
			yy += y * y
		}
		if xx == 0 || yy == 0 {
			continue
		}
		if c := xy / math.Sqrt(xx*yy); c > best {
			best, at = c, lag
		}
	}
	return best, at
}

// goertzel is the power of frequency f in block (16 kHz).
func goertzel(block []int16, f float64) float64 {
	w := 2 * math.Cos(2*math.Pi*f/codec.SampleRate)
	var s1, s2 float64
	for _, v := range block {
		s := float64(v) + w*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - w*s1*s2
}

// toneRun is a detected in-band DTMF key and where it was, in samples.
type toneRun struct {
	key        rune
	start, end int
}

// detectDTMF finds DTMF keys in 16 kHz audio with 10 ms Goertzel blocks:
// a block holds a key when its strongest row and column tones carry most
// of the block's energy and are within 8 dB of each other.
func detectDTMF(pcm []int16) []toneRun {
	const blk = codec.SampleRate / 100
	var runs []toneRun
	for off := 0; off+blk <= len(pcm); off += blk {
		b := pcm[off : off+blk]
		var energy float64
		for _, v := range b {
			energy += float64(v) * float64(v)
		}
		key := rune(0)
		if energy > 1e6*blk/100 {
			ri, ci, rp, cp := 0, 0, 0.0, 0.0
			for i := range 4 {
				if p := goertzel(b, dtmfRows[i]); p > rp {
					ri, rp = i, p
				}
				if p := goertzel(b, dtmfCols[i]); p > cp {
					ci, cp = i, p
				}
			}
			// Goertzel power of a tone of amplitude A over N samples is
			// (A·N/2)²; energy is N·(A1²+A2²)/2.
			tones := 2 * (rp + cp) / float64(blk)
			if tones > 0.6*energy && rp/cp < 6.3 && cp/rp < 6.3 {
				key = rune(dtmfKeys[ri][ci])
			}
		}
		if key != 0 {
			if n := len(runs); n > 0 && runs[n-1].key == key && runs[n-1].end == off {
				runs[n-1].end = off + blk
			} else {
				runs = append(runs, toneRun{key, off, off + blk})
			}
		}
	}
	return runs
}
