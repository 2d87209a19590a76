package livepage

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/internal/testsupport/audiotest"
	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/multicast"
	"github.com/parkpage/parkpage/multicast/polycom"
)

// Groups no other package's tests use.
const (
	rtpGroup     = "239.255.43.1"
	polycomGroup = "239.255.43.2"
)

// listener is a receiver joined to its group on lo; collect reads until
// done is closed.
type listener struct{ *mcasttest.Conn }

func listenLo(t testing.TB, group string) *listener {
	t.Helper()
	return &listener{mcasttest.Listen(t, group, 0)}
}

func (l *listener) collect(done <-chan struct{}) <-chan []datagram { return l.CollectUntil(done) }

// datagram is a received packet (Data) and when it arrived (At).
type datagram = mcasttest.Packet

type rig struct {
	srv     *Server
	g       *gateway.Gateway
	addr    netip.AddrPort
	rtp     *listener
	polycom *listener
	caller  *sipstack.Stack
	logBuf  *logtest.Buffer
}

var rtpBase atomic.Int32

func newRig(t testing.TB, pages string, withPolycom bool) *rig {
	t.Helper()
	r := &rig{rtp: listenLo(t, rtpGroup), logBuf: &logtest.Buffer{}}
	base := 30000 + (os.Getpid()%40)*200 + int(rtpBase.Add(1)%4)*50
	outputs := fmt.Sprintf("      - { type: rtp, group: %s, port: %d, interface: lo, loopback: true, codec: pcmu }\n", rtpGroup, r.rtp.Port())
	if withPolycom {
		r.polycom = listenLo(t, polycomGroup)
		outputs += fmt.Sprintf("      - { type: polycom, group: %s, port: %d, interface: lo, loopback: true, codec: g722, channel: 26, host_serial: 0x12345678 }\n", polycomGroup, r.polycom.Port())
	}
	yaml := fmt.Sprintf(`
state_dir: %s
sip:
  listen:
    - {transport: udp, address: "127.0.0.1:0"}
  rtp_ports: %d-%d
  users:
    "1002": { password: secret-1002, groups: [managers] }
zones:
  lobby:
    outputs:
%spages:
%s`, t.TempDir(), base, base+49, outputs, pages)
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	log := slog.New(slog.NewTextHandler(r.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stack, err := sipstack.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.Listen(); err != nil {
		t.Fatal(err)
	}
	eng, err := media.NewEngine(media.Config{IP: netip.MustParseAddr("127.0.0.1"), PortMin: base, PortMax: base + 49}, log)
	if err != nil {
		t.Fatal(err)
	}
	pacer := multicast.NewPacer(log)
	mc := multicast.NewOutputs(multicast.OutputsOptions{Pacer: pacer, Logger: log, PolycomTiming: polycom.Timing{AlertCount: 3, AlertInterval: 5 * time.Millisecond,
		EndDelay: 5 * time.Millisecond, EndInterval: 2 * time.Millisecond}})
	kinds := output.Kinds{config.OutputPolycom: mc.Polycom, config.OutputRTP: mc.RTP}
	r.g, err = gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	r.srv, err = New(cfg, Options{SIP: stack, Media: eng, Pager: r.g, Logger: log, ReadyWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = stack.Run(ctx) })
	wg.Go(func() { _ = eng.Run(ctx) })
	wg.Go(func() { _ = pacer.Run(ctx) })
	wg.Go(func() { _ = r.srv.Run(ctx) })
	r.addr = stack.Addr("udp")

	ccfg, _, err := config.Parse("caller.yaml", []byte(fmt.Sprintf("state_dir: %s\nsip:\n  listen:\n    - {transport: udp, address: \"127.0.0.1:0\"}\n", t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	r.caller, err = sipstack.New(ccfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.caller.Listen(); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = r.caller.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		r.g.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", r.logBuf.String())
		}
	})
	return r
}

// phone is a Go SIP caller with a raw RTP socket, so the test controls
// exactly what is sent when.
type phone struct {
	d      *sipstack.Dialog
	conn   *net.UDPConn
	remote *net.UDPAddr
	enc    codec.Encoder
	seq    uint16
	ts     uint32
	heard  atomic.Int32 // RTP packets received from parkpage
}

func (r *rig) dial(t testing.TB, ext, from string) (*phone, error) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	port := conn.LocalAddr().(*net.UDPAddr).Port
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n", port)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d *sipstack.Dialog
	var ans []byte
	for {
		d, ans, err = r.caller.Dial(ctx, sipstack.DialRequest{Target: fmt.Sprintf("sip:%s@%s", ext, r.addr), Configured: true,
			FromUser: from, FromDisplay: "Tester " + from, SDP: []byte(sdp)})
		// Until the caller stack's Run has registered its socket with
		// sipgo, the client tries to bind the port again.
		if err == nil || !strings.Contains(err.Error(), "address already in use") || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	desc, err := media.ParseSDP(ans)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := codec.NewEncoder(codec.PCMU)
	p := &phone{d: d, conn: conn, remote: net.UDPAddrFromAddrPort(desc.Addr), enc: enc}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
			p.heard.Add(1)
		}
	}()
	return p, nil
}

// send sends one 20 ms frame of 16 kHz PCM as PCMU.
func (p *phone) send(pcm []int16) time.Time {
	payload, _ := p.enc.Encode(nil, pcm)
	h := pionrtp.Header{Version: 2, PayloadType: 0, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: 0x5eed}
	p.seq++
	p.ts += 160
	b, _ := (&pionrtp.Packet{Header: h, Payload: payload}).Marshal()
	p.conn.WriteToUDP(b, p.remote)
	return time.Now()
}

// waitCue waits until parkpage plays the go-ahead to the caller.
func (p *phone) waitCue(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.heard.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no go-ahead cue heard by the caller")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *phone) hangup(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.d.Hangup(ctx); err != nil {
		t.Logf("hangup: %v", err)
	}
}

// chirp is a 300-3000 Hz sweep: no period, so its cross-correlation with
// what a listener decodes has one clear peak.
func chirp(d time.Duration) []int16 {
	n := int(d * codec.SampleRate / time.Second)
	out := make([]int16, n)
	T := d.Seconds()
	for i := range out {
		t := float64(i) / codec.SampleRate
		f := 300*t + (3000-300)*t*t/(2*T)
		out[i] = int16(9000 * math.Sin(2*math.Pi*f))
	}
	return out
}

// talk sends pcm in real time, 20 ms per packet.
func (p *phone) talk(pcm []int16) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i+codec.FrameSamples <= len(pcm); i += codec.FrameSamples {
		<-tick.C
		p.send(pcm[i : i+codec.FrameSamples])
	}
}

// correlation says how much of want is heard in got: the median, over
// 50 ms pieces of want (one every 200 ms), of the piece's peak normalised cross-correlation
// with got. Piecewise, because a live page may insert a frame of silence
// where a packet came late, which shifts everything after it.
func correlation(got, want []int16) float64 {
	const piece = codec.SampleRate / 20 // 50 ms pieces, one every 200 ms
	var cs []float64
	for s := 0; s+piece <= len(want); s += 4 * piece {
		cs = append(cs, audiotest.PeakCorrelation(got, want[s:s+piece]))
	}
	if len(cs) == 0 {
		return 0
	}
	sort.Float64s(cs)
	return cs[len(cs)/2]
}

func decodeRTP(t testing.TB, dgs []datagram) []int16 {
	t.Helper()
	dec, _ := codec.NewDecoder(codec.PCMU)
	var pcm []int16
	for i, d := range dgs {
		var p pionrtp.Packet
		if err := p.Unmarshal(d.Data); err != nil {
			t.Fatalf("rtp packet %d: %v", i, err)
		}
		pcm, _ = dec.Decode(pcm, p.Payload)
	}
	return pcm
}

func (r *rig) waitIdle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.srv.Active() > 0 || zonesBusy(r.g) {
		if time.Now().After(deadline) {
			t.Fatal("page still running")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func zonesBusy(g *gateway.Gateway) bool {
	for _, z := range g.Zones() {
		if z.Page != "" || z.Waiting > 0 {
			return true
		}
	}
	return false
}

// A phone dials 801 (live): parkpage answers, cues the talker once the
// zone's outputs are up, and the talker's voice reaches the zone's RTP and
// Polycom listeners as it is spoken.
func TestLivePage(t *testing.T) {
	r := newRig(t, `  "801": { zones: [lobby], mode: live, chime: none }
`, true)
	done := make(chan struct{})
	rtpC, pcC := r.rtp.collect(done), r.polycom.collect(done)
	p, err := r.dial(t, "801", "1001")
	if err != nil {
		t.Fatal(err)
	}
	p.waitCue(t)
	voice := chirp(time.Second)
	p.talk(voice)
	p.hangup(t)
	r.waitIdle(t)
	time.Sleep(50 * time.Millisecond)
	close(done)
	rtps, pcs := <-rtpC, <-pcC

	gotR := decodeRTP(t, rtps)
	if c := correlation(gotR, voice); c < 0.8 {
		t.Errorf("rtp listener: correlation with the talker %.2f, want > 0.8", c)
	}
	dec, _ := codec.NewDecoder(codec.G722)
	var pcm []int16
	ends := 0
	for _, d := range pcs {
		pk, err := polycom.Parse(d.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch pk.Op {
		case polycom.OpTransmit:
			if pk.Channel != 49 {
				t.Fatalf("live page on channel %d, want the priority channel 49", pk.Channel)
			}
			pcm, _ = dec.Decode(pcm, pk.Current)
		case polycom.OpEnd:
			ends++
		}
	}
	if c := correlation(pcm, voice); c < 0.8 {
		t.Errorf("polycom listener: correlation with the talker %.2f, want > 0.8", c)
	}
	if ends != 12 {
		t.Errorf("polycom: %d End packets, want 12", ends)
	}
}

// Store mode: nothing goes out while the talker talks; after the hang-up
// the zone hears the chime and then the whole recording.
func TestStorePage(t *testing.T) {
	r := newRig(t, `  "802": { zones: [lobby], mode: store, chime: two-tone }
`, false)
	done := make(chan struct{})
	rtpC := r.rtp.collect(done)
	p, err := r.dial(t, "802", "1001")
	if err != nil {
		t.Fatal(err)
	}
	p.waitCue(t)
	time.Sleep(200 * time.Millisecond) // the beep ends, recording starts
	voice := chirp(time.Second)
	p.talk(voice)
	if busy := zonesBusy(r.g); busy {
		t.Error("store mode: zone paged while the talker talks")
	}
	hungUp := time.Now()
	p.hangup(t)
	r.waitIdle(t)
	time.Sleep(50 * time.Millisecond)
	close(done)
	rtps := <-rtpC
	if len(rtps) == 0 || rtps[0].At.Before(hungUp) {
		t.Fatalf("store mode: %d packets, first before the hang-up", len(rtps))
	}
	got := decodeRTP(t, rtps)
	if c := correlation(got, voice); c < 0.8 {
		t.Errorf("stored page: correlation with the talker %.2f, want > 0.8", c)
	}
	// The chime (about 1 s of bells) comes before the voice.
	if n := len(got); n < len(voice)+codec.SampleRate/2 {
		t.Errorf("stored page: %d samples, want chime + voice", n)
	}
}

// The allow list: a caller not in it gets 403 and nothing is paged; an
// extension that does not exist is 404.
func TestAllow(t *testing.T) {
	r := newRig(t, `  "803": { zones: [lobby], allow: ["@managers", "1003"] }
`, false)
	_, err := r.dial(t, "803", "1001")
	if code := sipstack.StatusCode(err); code != 403 {
		t.Errorf("1001 on 803: %v (code %d), want 403", err, code)
	}
	_, err = r.dial(t, "899", "1001")
	if code := sipstack.StatusCode(err); code != 404 {
		t.Errorf("899: %v, want 404", err)
	}
	cfg := &config.Config{SIP: config.SIP{Users: map[string]*config.User{"1002": {Groups: []string{"managers"}}}}}
	for _, tc := range []struct {
		allow []string
		user  string
		want  bool
	}{
		{nil, "", true},
		{[]string{"1003"}, "1003", true},
		{[]string{"1003"}, "", false},
		{[]string{"@managers"}, "1002", true},
		{[]string{"@managers"}, "1001", false},
	} {
		if got := Allowed(tc.allow, tc.user, cfg); got != tc.want {
			t.Errorf("Allowed(%v, %q) = %v", tc.allow, tc.user, got)
		}
	}
}

// Added latency of a live page, talker RTP in to multicast RTP out, over
// loopback: a 20 ms burst every 300 ms in silence; each burst's first
// multicast packet with sound is timed against its sending.
func BenchmarkLiveLatency(b *testing.B) {
	for range b.N {
		r := newRig(b, `  "801": { zones: [lobby], mode: live, chime: none }
`, false)
		done := make(chan struct{})
		rtpC := r.rtp.collect(done)
		p, err := r.dial(b, "801", "1001")
		if err != nil {
			b.Fatal(err)
		}
		p.waitCue(b)
		silence := make([]int16, codec.FrameSamples)
		burst := chirp(20 * time.Millisecond)
		var sent []time.Time
		tick := time.NewTicker(20 * time.Millisecond)
		for k := range 750 { // 15 s
			<-tick.C
			if k%15 == 7 {
				sent = append(sent, p.send(burst))
			} else {
				p.send(silence)
			}
		}
		tick.Stop()
		p.hangup(b)
		r.waitIdle(b)
		close(done)
		rtps := <-rtpC
		dec, _ := codec.NewDecoder(codec.PCMU)
		var lat []time.Duration
		j := 0
		loud := false
		for _, d := range rtps {
			var pk pionrtp.Packet
			if pk.Unmarshal(d.Data) != nil {
				continue
			}
			pcm, _ := dec.Decode(nil, pk.Payload)
			on := false
			for _, v := range pcm {
				if v > 500 || v < -500 {
					on = true
					break
				}
			}
			if on && !loud {
				for j+1 < len(sent) && sent[j+1].Before(d.At) {
					j++
				}
				if j < len(sent) && sent[j].Before(d.At) {
					lat = append(lat, d.At.Sub(sent[j]))
				}
			}
			loud = on
		}
		if len(lat) < len(sent)*9/10 {
			b.Fatalf("timed %d of %d bursts", len(lat), len(sent))
		}
		sort.Slice(lat, func(i, k int) bool { return lat[i] < lat[k] })
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	}
}
