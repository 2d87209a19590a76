package media

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

func testEngine(t *testing.T, codecs ...codec.Name) *Engine {
	t.Helper()
	base := 20000 + (os.Getpid()%200)*100
	e, err := NewEngine(Config{IP: netip.MustParseAddr("127.0.0.1"), PortMin: base, PortMax: base + 99, Codecs: codecs},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runtest.Start(t, "engine", e.Run)
	return e
}

// peer is a raw RTP endpoint standing in for a phone.
type peer struct {
	t    *testing.T
	conn *net.UDPConn
	pkts chan rtp.Packet
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, conn: c, pkts: make(chan rtp.Packet, 4096)}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(p.pkts)
				return
			}
			var pk rtp.Packet
			if pk.Unmarshal(append([]byte(nil), buf[:n]...)) == nil {
				p.pkts <- pk
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return p
}

func (p *peer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *peer) sdp(formats string, rtpmaps ...string) []byte {
	s := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n", p.port(), formats)
	for _, r := range rtpmaps {
		s += "a=rtpmap:" + r + "\r\n"
	}
	return []byte(s + "a=sendrecv\r\n")
}

func (p *peer) next(timeout time.Duration) rtp.Packet {
	p.t.Helper()
	select {
	case pk, ok := <-p.pkts:
		if !ok {
			p.t.Fatal("peer closed")
		}
		return pk
	case <-time.After(timeout):
		p.t.Fatal("no RTP packet within", timeout)
	}
	return rtp.Packet{}
}

func (p *peer) send(to netip.AddrPort, h rtp.Header, payload []byte) {
	p.t.Helper()
	b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

func TestSDPOfferAnswerClockRates(t *testing.T) {
	e := testEngine(t)
	l, err := e.NewLeg(LegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	offer := string(l.Offer())
	for _, want := range []string{"m=audio ", " RTP/AVP 9 111 0 8 101", "a=rtpmap:9 G722/8000", "a=rtpmap:111 opus/48000/2",
		"a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv"} {
		if !strings.Contains(offer, want) {
			t.Errorf("offer lacks %q:\n%s", want, offer)
		}
	}
	p := newPeer(t)
	cases := []struct {
		name, formats string
		rtpmaps       []string
		want          codec.Name
		pt            uint8
		wantLine      string
	}{
		{"pcmu static", "0 101", []string{"101 telephone-event/8000"}, codec.PCMU, 0, "a=rtpmap:0 PCMU/8000"},
		{"pcma first", "8 0", nil, codec.PCMA, 8, "a=rtpmap:8 PCMA/8000"},
		{"g722", "9 0 101", []string{"9 G722/8000", "101 telephone-event/8000"}, codec.G722, 9, "a=rtpmap:9 G722/8000"},
		{"opus dynamic", "96 0", []string{"96 opus/48000/2"}, codec.Opus, 96, "a=rtpmap:96 opus/48000/2"},
		{"unknown first", "18 0", []string{"18 G729/8000"}, codec.PCMU, 0, "a=rtpmap:0 PCMU/8000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := e.NewLeg(LegOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ans, err := l.Answer(p.sdp(c.formats, c.rtpmaps...))
			if err != nil {
				t.Fatal(err)
			}
			n, _ := l.Negotiated()
			if n.Codec.Name != c.want || n.PT != c.pt {
				t.Fatalf("negotiated %s/%d, want %s/%d", n.Codec.Name, n.PT, c.want, c.pt)
			}
			if !strings.Contains(string(ans), c.wantLine) {
				t.Errorf("answer lacks %q:\n%s", c.wantLine, ans)
			}
			if _, err := ParseSDP(ans); err != nil {
				t.Errorf("answer does not parse: %v", err)
			}
		})
	}
	l2, _ := e.NewLeg(LegOptions{})
	defer l2.Close()
	if _, err := l2.Answer(p.sdp("18", "18 G729/8000")); err != ErrNoCodec {
		t.Errorf("G729-only offer: err %v, want ErrNoCodec", err)
	}
}

// checkStream verifies a run of packets is one continuous stream.
func checkStream(t *testing.T, pkts []rtp.Packet, pt uint8, step uint32) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		a, b := pkts[i-1], pkts[i]
		if b.SSRC != a.SSRC {
			t.Fatalf("packet %d: SSRC changed %08x -> %08x", i, a.SSRC, b.SSRC)
		}
		if b.SequenceNumber != a.SequenceNumber+1 {
			t.Fatalf("packet %d: seq %d after %d", i, b.SequenceNumber, a.SequenceNumber)
		}
		if b.PayloadType == pt && a.PayloadType == pt && b.Timestamp-a.Timestamp != step {
			t.Fatalf("packet %d: timestamp step %d, want %d", i, b.Timestamp-a.Timestamp, step)
		}
	}
}

func TestMusicAndPromptContinuity(t *testing.T) {
	e := testEngine(t)
	for _, c := range []struct {
		formats string
		maps    []string
		pt      uint8
		step    uint32
		size    int
	}{
		{"0", nil, 0, 160, 160},
		{"9", nil, 9, 160, 160},
		{"8", nil, 8, 160, 160},
	} {
		p := newPeer(t)
		l, err := e.NewLeg(LegOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Answer(p.sdp(c.formats, c.maps...)); err != nil {
			t.Fatal(err)
		}
		l.PlayMusic()
		var pkts []rtp.Packet
		for i := 0; i < 10; i++ {
			pkts = append(pkts, p.next(time.Second))
		}
		if !pkts[0].Marker {
			t.Errorf("first packet lacks the marker bit")
		}
		// A prompt interrupts the music, then music resumes: one stream.
		tone := make([]int16, 3*codec.FrameSamples)
		for i := range tone {
			tone[i] = int16(8000 * math.Sin(float64(i)*2*math.Pi*440/16000))
		}
		if err := l.Play(context.Background(), tone); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			pkts = append(pkts, p.next(time.Second))
		}
		checkStream(t, pkts, c.pt, c.step)
		for _, pk := range pkts {
			if pk.PayloadType != c.pt || len(pk.Payload) != c.size {
				t.Fatalf("packet PT %d size %d, want %d/%d", pk.PayloadType, len(pk.Payload), c.pt, c.size)
			}
		}
		l.Close()
	}
}

func TestDTMFRoundTrip(t *testing.T) {
	e := testEngine(t)
	a, _ := e.NewLeg(LegOptions{})
	b, _ := e.NewLeg(LegOptions{})
	defer a.Close()
	defer b.Close()
	ans, err := b.Answer(a.Offer())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetAnswer(ans); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []rune
	b.OnDTMF(func(d Digit) { mu.Lock(); got = append(got, rune(d)); mu.Unlock() })
	if err := a.SendDTMF(context.Background(), "19#*A0", 60*time.Millisecond, 40*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 6 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if string(got) != "19#*A0" {
		t.Fatalf("received digits %q, want 19#*A0", string(got))
	}
}

func TestBridgeContinuityAndDTMF(t *testing.T) {
	for _, tc := range []struct {
		name       string
		aFmt, bFmt string
		bPT        uint8
		transcode  bool
	}{
		{"same codec", "0 101", "0 101", 0, false},
		{"transcode", "0 101", "9 101", 9, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testEngine(t)
			caller, phone := newPeer(t), newPeer(t)
			a, _ := e.NewLeg(LegOptions{})
			b, _ := e.NewLeg(LegOptions{})
			defer a.Close()
			defer b.Close()
			if _, err := a.Answer(caller.sdp(tc.aFmt, "101 telephone-event/8000")); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Answer(phone.sdp(tc.bFmt, "101 telephone-event/8000")); err != nil {
				t.Fatal(err)
			}
			b.PlayMusic() // the answerer hears something (whisper/music) before the bridge
			var toPhone []rtp.Packet
			for i := 0; i < 5; i++ {
				toPhone = append(toPhone, phone.next(time.Second))
			}
			br, err := NewBridge(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if br.Transcoding() != tc.transcode {
				t.Fatalf("transcoding %v", br.Transcoding())
			}
			// Drain packets the pacer sent before the bridge took over.
			time.Sleep(50 * time.Millisecond)
		drain:
			for {
				select {
				case pk := <-phone.pkts:
					toPhone = append(toPhone, pk)
				default:
					break drain
				}
			}
			// The caller talks: 20 packets of PCMU with its own SSRC/seq/ts.
			la := a.LocalAddr()
			payload := make([]byte, 160)
			for i := range payload {
				payload[i] = 0xff
			}
			for i := 0; i < 20; i++ {
				caller.send(la, rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(40000 + i), Timestamp: uint32(9000 + 160*i), SSRC: 0xabcdef}, payload)
				time.Sleep(5 * time.Millisecond)
			}
			// And presses 5.
			for i := 0; i < 3; i++ {
				ev := Event{Code: 5, Volume: 10, Duration: uint16(160 * (i + 1)), End: i == 2}
				caller.send(la, rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: uint16(40020 + i), Timestamp: 9000 + 160*20, SSRC: 0xabcdef, Marker: i == 0}, ev.Append(nil))
			}
			var relayed []rtp.Packet
			for len(relayed) < 23 {
				pk := phone.next(time.Second)
				relayed = append(relayed, pk)
			}
			all := append(toPhone, relayed...)
			for i := 1; i < len(all); i++ {
				if all[i].SSRC != all[0].SSRC {
					t.Fatalf("phone saw SSRC change at %d", i)
				}
				if all[i].SequenceNumber != all[i-1].SequenceNumber+1 {
					t.Fatalf("phone saw seq %d after %d (packet %d)", all[i].SequenceNumber, all[i-1].SequenceNumber, i)
				}
			}
			if !relayed[0].Marker {
				t.Errorf("first relayed packet lacks the marker bit")
			}
			if d := relayed[0].Timestamp - toPhone[len(toPhone)-1].Timestamp; d == 0 || d > 8000 {
				t.Errorf("timestamp jump %d at the switch, want a small forward step", d)
			}
			for i, pk := range relayed[:20] {
				if pk.PayloadType != tc.bPT {
					t.Fatalf("relayed packet %d PT %d, want %d", i, pk.PayloadType, tc.bPT)
				}
				if i > 0 && pk.Timestamp-relayed[i-1].Timestamp != 160 {
					t.Fatalf("relayed packet %d timestamp step %d", i, pk.Timestamp-relayed[i-1].Timestamp)
				}
			}
			for i, pk := range relayed[20:] {
				if pk.PayloadType != 101 {
					t.Fatalf("DTMF packet %d PT %d", i, pk.PayloadType)
				}
				ev, err := ParseEvent(pk.Payload)
				if err != nil || ev.Code != 5 {
					t.Fatalf("DTMF packet %d: %+v %v", i, ev, err)
				}
				if pk.Timestamp != relayed[20].Timestamp {
					t.Fatalf("DTMF packets of one event have different timestamps")
				}
			}
			br.Close()
		})
	}
}

func TestPortsExhaustedAndReleased(t *testing.T) {
	base := 30000 + (os.Getpid()%100)*10
	e, err := NewEngine(Config{IP: netip.MustParseAddr("127.0.0.1"), PortMin: base, PortMax: base + 3},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.NewLeg(LegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.NewLeg(LegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.NewLeg(LegOptions{}); err == nil {
		t.Fatal("third leg on a 2-port range succeeded")
	}
	a.Close()
	c, err := e.NewLeg(LegOptions{})
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	b.Close()
	c.Close()
}

func TestDefaultMusic(t *testing.T) {
	m := DefaultMusic()
	if len(m) < 40*codec.SampleRate {
		t.Fatalf("default music is %d samples, want at least 40 s", len(m))
	}
	var sum float64
	peak := 0
	for _, v := range m {
		sum += float64(v) * float64(v)
		peak = max(peak, int(math.Abs(float64(v))))
	}
	rms := math.Sqrt(sum / float64(len(m)))
	db := 20 * math.Log10(rms/32768)
	if db < -35 || db > -12 || peak > 16384 {
		t.Errorf("default music level %.1f dBFS, peak %d", db, peak)
	}
	// The loop point must not click: the jump across it is no bigger than
	// the largest sample-to-sample step elsewhere.
	maxStep := 0
	for i := 1; i < len(m); i++ {
		maxStep = max(maxStep, int(math.Abs(float64(m[i])-float64(m[i-1]))))
	}
	if j := int(math.Abs(float64(m[0]) - float64(m[len(m)-1]))); j > maxStep {
		t.Errorf("loop seam jump %d > largest step %d", j, maxStep)
	}
}

// TestPlayEncodedAt checks that audio queued ahead of its moment waits in
// the queue and leaves from the pacer's frame at that moment: nothing
// before it, and the call returns once the last frame has gone out.
func TestPlayEncodedAt(t *testing.T) {
	e := testEngine(t)
	p := newPeer(t)
	l, err := e.NewLeg(LegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Answer(p.sdp("0")); err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, 3)
	for i := range frames {
		frames[i] = make([]byte, 160)
	}
	at := time.Now().Add(400 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- l.PlayEncodedAt(context.Background(), frames, at) }()
	time.Sleep(time.Until(at.Add(-100 * time.Millisecond)))
	if n := len(p.pkts); n > 0 {
		t.Fatalf("%d packets before the start", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The first frame leaves in the frame nearest at, the last two frames
	// later.
	if early := at.Add(2*FrameDuration - FrameDuration/2).Sub(time.Now()); early > 0 {
		t.Errorf("PlayEncodedAt returned %v before its last frame was due", early)
	}
	var pkts []rtp.Packet
	for range frames {
		pkts = append(pkts, p.next(time.Second))
	}
	checkStream(t, pkts, 0, 160)
}

// TestStallElapsesPauses checks that after a stall of the sending loop a
// leg's queued pauses (an amplifier's settle, after_code, digit gaps) count
// as passed, so audio held behind them is not pushed later, while what is
// not a pause (digit events, audio) stays queued to go out late.
func TestStallElapsesPauses(t *testing.T) {
	var done int
	l := &Leg{}
	l.queue = []outFrame{{skip: true}, {skip: true, done: func() { done++ }}, {payload: []byte{1}}, {skip: true}}
	now := uint64(pacer.Now() / int64(FrameDuration))
	s := &legSource{l: l, start: now - 5} // five frames behind, as after a 100 ms stall
	if _, ok := s.Due(); !ok {
		t.Fatal("leg over")
	}
	if len(l.queue) != 2 || l.queue[0].payload == nil {
		t.Fatalf("queue after the stall: %+v, want the event and the pause after it", l.queue)
	}
	if done != 1 {
		t.Errorf("done of an elapsed pause called %d times, want 1", done)
	}
}

// TestWritePCMWait checks that live audio written faster than the leg
// sends it (a live page catching up after a late start) waits for room
// instead of dropping the oldest frames as WritePCM does: every frame goes
// out, the first first, and the writer is held to the leg's pace.
func TestWritePCMWait(t *testing.T) {
	e := testEngine(t)
	p := newPeer(t)
	l, err := e.NewLeg(LegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Answer(p.sdp("0")); err != nil {
		t.Fatal(err)
	}
	const n = 3 * maxLive
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	frame := make([]int16, codec.FrameSamples)
	for k := range n {
		for i := range frame {
			frame[i] = int16(1000 + 900*k)
		}
		if err := l.WritePCMWait(ctx, frame); err != nil {
			t.Fatal(err)
		}
	}
	// The last maxLive frames fit the queue; the others waited for a
	// frame each to leave.
	if d, least := time.Since(start), (n-maxLive-1)*FrameDuration; d < least {
		t.Errorf("%d frames written in %v: the writer was not held to the leg's pace (want at least %v)", n, d, least)
	}
	if err := l.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	dec, err := codec.NewDecoder(codec.PCMU)
	if err != nil {
		t.Fatal(err)
	}
	for k := range n {
		pk := p.next(time.Second)
		if k == 0 {
			pcm, err := dec.Decode(nil, pk.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if v := pcm[len(pcm)/2]; v < 800 || v > 1200 {
				t.Errorf("first packet's level %d, want the first frame's 1000", v)
			}
		}
	}
	select {
	case pk := <-p.pkts:
		t.Errorf("packet beyond the %d written: %v", n, pk.Header)
	case <-time.After(100 * time.Millisecond):
	}
}
