package parksip

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/park"
)

// fuzzSeeds are real messages of the kinds the listener sees: a PBX's
// blind transfer (INVITE with Referred-By and SDP), an attended transfer's
// Replaces, REGISTER with digest, BLF SUBSCRIBE, Asterisk's dialog NOTIFY
// (from /work/shared/fixtures/asterisk-22), in-dialog BYE/REFER/INFO,
// OPTIONS and responses. {dst} and {src} are filled in.
var fuzzSeeds = []string{
	"INVITE sip:700@{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n};rport\r\nMax-Forwards: 70\r\n" +
		"From: \"ACME Supply\" <sip:+15551234567@pbx.lan>;tag={n}\r\nTo: <sip:700@{dst}>\r\nCall-ID: fz-{n}@pbx.lan\r\nCSeq: 1 INVITE\r\n" +
		"Contact: <sip:+15551234567@{src}>\r\nReferred-By: <sip:1001@pbx.lan>\r\nContent-Type: application/sdp\r\nContent-Length: 129\r\n\r\n" +
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
	"INVITE sip:701@{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n}\r\nMax-Forwards: 70\r\nFrom: <sip:1002@pbx.lan>;tag={n}\r\n" +
		"To: <sip:701@{dst}>\r\nCall-ID: fz-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:1002@{src}>\r\nReplaces: abc@pbx;to-tag=1;from-tag=2\r\nContent-Length: 0\r\n\r\n",
	"REGISTER sip:{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n}\r\nMax-Forwards: 70\r\nFrom: <sip:1001@{dst}>;tag={n}\r\nTo: <sip:1001@{dst}>\r\n" +
		"Call-ID: reg-{n}\r\nCSeq: 2 REGISTER\r\nContact: <sip:1001@{src}>;expires=600\r\nAuthorization: Digest username=\"1001\", realm=\"parkpage\", " +
		"nonce=\"AAAAAGsUETmqM9SGa53qZ0J6fRooepvZ\", uri=\"sip:{dst}\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\nContent-Length: 0\r\n\r\n",
	"SUBSCRIBE sip:702@{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n}\r\nMax-Forwards: 70\r\nFrom: <sip:1001@{dst}>;tag={n}\r\nTo: <sip:702@{dst}>\r\n" +
		"Call-ID: sub-{n}\r\nCSeq: 1 SUBSCRIBE\r\nEvent: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: 60\r\nContact: <sip:1001@{src}>\r\nContent-Length: 0\r\n\r\n",
	"NOTIFY sip:203@{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};rport;branch=z9hG4bKPj-{n}\r\nFrom: <sip:703@127.0.0.1>;tag=e3fa89ca\r\nTo: <sip:203@127.0.0.1>;tag=3673SIPpTag001\r\n" +
		"Contact: <sip:127.0.0.1:5080>\r\nCall-ID: 1-3673@127.0.0.1\r\nCSeq: 19067 NOTIFY\r\nEvent: dialog\r\nSubscription-State: active;expires=299\r\nMax-Forwards: 70\r\n" +
		"User-Agent: Asterisk-peer\r\nContent-Type: application/dialog-info+xml\r\nContent-Length:   226\r\n\r\n" +
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" state=\"full\" entity=\"sip:703@127.0.0.1:5080\">\n <dialog id=\"703\">\n  <state>terminated</state>\n </dialog>\n</dialog-info>\n",
	"BYE sip:parkpage@{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n}\r\nMax-Forwards: 70\r\nFrom: <sip:x@y>;tag=a{n}\r\nTo: <sip:700@{dst}>;tag=b{n}\r\nCall-ID: fz-{n}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
	"REFER sip:parkpage@{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n}\r\nMax-Forwards: 70\r\nFrom: <sip:x@y>;tag=a\r\nTo: <sip:700@{dst}>;tag=b\r\nCall-ID: fz-{n}\r\nCSeq: 3 REFER\r\n" +
		"Refer-To: <sip:9999@evil.example?Replaces=a%3Bto-tag%3Db%3Bfrom-tag%3Dc>\r\nReferred-By: <sip:198.51.100.7>\r\nContent-Length: 0\r\n\r\n",
	"INFO sip:parkpage@{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n}\r\nFrom: <sip:x@y>;tag=a\r\nTo: <sip:700@{dst}>;tag=b\r\nCall-ID: fz-{n}\r\nCSeq: 4 INFO\r\n" +
		"Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=1\r\nDuration=160\r\n",
	"OPTIONS sip:{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{src}>;tag={n}\r\nTo: <sip:{dst}>\r\nCall-ID: opt-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
	"ACK sip:700@{dst} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-{n}\r\nFrom: <sip:a@b>;tag=a\r\nTo: <sip:700@{dst}>;tag=b\r\nCall-ID: fz-{n}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
	"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP {dst};branch=z9hG4bK-{n}\r\nFrom: <sip:parkpage@{dst}>;tag=a\r\nTo: <sip:1001@{src}>;tag=b\r\nCall-ID: rb-{n}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
}

// mutate returns a random variant of a seed: byte flips, cut short,
// lines dropped, duplicated or swapped, huge or binary header values, a
// lying Content-Length, line ends changed, or pure noise.
func mutate(r *rand.Rand, seed string) []byte {
	b := []byte(seed)
	switch r.IntN(12) {
	case 0: // pure noise
		b = make([]byte, r.IntN(1400))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	case 1: // cut short
		b = b[:r.IntN(len(b)+1)]
	case 2: // byte flips
		for range 1 + r.IntN(8) {
			b[r.IntN(len(b))] = byte(r.Uint32())
		}
	case 3, 4: // drop, duplicate or swap lines
		lines := strings.Split(string(b), "\r\n")
		i, j := r.IntN(len(lines)), r.IntN(len(lines))
		switch r.IntN(3) {
		case 0:
			lines = append(lines[:i], lines[i+1:]...)
		case 1:
			lines = append(lines[:i+1], lines[i:]...)
		default:
			lines[i], lines[j] = lines[j], lines[i]
		}
		b = []byte(strings.Join(lines, "\r\n"))
	case 5: // a huge header
		v := strings.Repeat(string(rune('a'+r.IntN(26))), 1000+r.IntN(60000))
		b = []byte(strings.Replace(string(b), "\r\n", "\r\nX-Big: "+v+"\r\n", 1))
	case 6: // a lying Content-Length
		b = []byte(strings.Replace(string(b), "Content-Length:", "Content-Length: "+strconv.Itoa(r.IntN(100000))+"\r\nX-Old-Length:", 1))
	case 7: // bare LF or CR line ends
		b = []byte(strings.ReplaceAll(string(b), "\r\n", []string{"\n", "\r", "\r\r\n"}[r.IntN(3)]))
	case 8: // binary in a header value
		i := bytes.IndexByte(b, ':')
		if i > 0 {
			junk := make([]byte, 1+r.IntN(40))
			for k := range junk {
				junk[k] = byte(r.Uint32())
			}
			b = append(b[:i+1:i+1], append(junk, b[i+1:]...)...)
		}
	case 9: // an unknown method or a bogus version
		b = []byte(strings.Replace(string(b), "SIP/2.0", []string{"SIP/3.0", "SIP", "HTTP/1.1", ""}[r.IntN(4)], 1))
	case 10: // headers repeated many times
		i := bytes.Index(b, []byte("\r\n"))
		if i > 0 {
			line := string(b[:i])
			if j := bytes.Index(b[i+2:], []byte("\r\n")); j > 0 {
				line = string(b[i+2 : i+2+j])
			}
			b = []byte(strings.Replace(string(b), "\r\n", "\r\n"+strings.Repeat(line+"\r\n", 50+r.IntN(500)), 1))
		}
	default: // the seed itself
	}
	return b
}

// TestSIPFuzzCampaign throws random and mutated real SIP messages at the
// listener over UDP (from a trusted and from untrusted addresses) and TCP
// while a call is parked, then checks that the parked call kept its hold
// music (one continuous stream, still arriving), stayed parked, that the
// stack still answers, and that the heap stayed within a bound.
// SIP_FUZZ_MESSAGES sets the number of messages (default 3000); the seed is
// logged so a failure can be replayed with SIP_FUZZ_SEED.
func TestSIPFuzzCampaign(t *testing.T) {
	total := 3000
	if n, err := strconv.Atoi(os.Getenv("SIP_FUZZ_MESSAGES")); err == nil && n > 0 {
		total = n
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("SIP_FUZZ_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (SIP_FUZZ_SEED=%d to replay), %d messages", seed, seed, total)
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))

	e := newEnv(t, "trusted: [127.0.0.1/32]\nusers:\n  \"1001\": {password: s3cret}", lot700)
	caller := e.startSipp("park_wait_bye.xml", sippOpts{service: "700", extra: []string{"-timeout", "600s"}})
	callerRTP := newRTPPeer(t, caller.MPort)
	e.waitEvent(events.CallParked, "", 10*time.Second)
	callerRTP.waitPackets(10, 10*time.Second)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapAlloc
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}
	})

	dst := e.addr.String()
	msg := func(src string, n int) []byte {
		s := fuzzSeeds[r.IntN(len(fuzzSeeds))]
		s = strings.NewReplacer("{dst}", dst, "{src}", src, "{n}", strconv.Itoa(n)).Replace(s)
		return mutate(r, s)
	}
	// UDP from the trusted address and from 16 untrusted ones.
	var udp []net.PacketConn
	for _, ip := range append([]string{"127.0.0.1"}, func() []string {
		var ips []string
		for i := 1; i <= 16; i++ {
			ips = append(ips, fmt.Sprintf("127.0.2.%d", i))
		}
		return ips
	}()...) {
		c, err := net.ListenPacket("udp4", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		udp = append(udp, c)
		wg.Go(func() { // drain answers
			buf := make([]byte, 65536)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
			}
		})
	}
	before := callerRTP.count()
	sent := 0
	for i := range total * 4 / 5 {
		c := udp[r.IntN(len(udp))]
		m := msg(c.LocalAddr().String(), i)
		if len(m) > 65000 {
			m = m[:65000]
		}
		if _, err := c.WriteTo(m, net.UDPAddrFromAddrPort(e.addr)); err == nil {
			sent++
		}
		if i%200 == 199 {
			time.Sleep(20 * time.Millisecond) // bursts, as a scanner sends
		}
	}
	// TCP: connections each sending a few mutated messages, some left open
	// mid-message, some closed at once.
	tcpAddr := e.stack.Addr("tcp").String()
	for i := range total / 5 / 4 {
		c, err := net.Dial("tcp", tcpAddr)
		if err != nil {
			t.Fatalf("TCP listener gone after %d connections: %v", i, err)
		}
		for k := range 1 + r.IntN(6) {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(msg(c.LocalAddr().String(), 100000+i*10+k)); err != nil {
				break // the server may close a connection after garbage
			}
			sent++
		}
		if r.IntN(3) == 0 {
			defer c.Close() // left open until the end
		} else {
			c.Close()
		}
	}
	close(stopSampling)
	for _, c := range udp {
		c.Close()
	}
	wg.Wait()

	// The parked call: still parked, music still coming, one stream.
	if st := e.slot("701"); st.State != park.StateParked {
		t.Fatalf("slot 701 after the campaign: %+v", st)
	}
	got := callerRTP.waitPackets(before+50, 30*time.Second)
	var gaps []time.Duration
	for i := 1; i < len(got); i++ {
		a, b := got[i-1].pkt, got[i].pkt
		if b.SSRC != a.SSRC || b.SequenceNumber != a.SequenceNumber+1 {
			t.Fatalf("hold music broken at packet %d: ssrc %x->%x seq %d->%d", i, a.SSRC, b.SSRC, a.SequenceNumber, b.SequenceNumber)
		}
		if i > before {
			gaps = append(gaps, got[i].at.Sub(got[i-1].at))
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	growth := int64(peak.Load()) - int64(baseHeap)
	t.Logf("%d messages sent; hold music during and after: %d packets, gap p50 %v p99 %v max %v (timing on a shared machine: informational); heap %d MiB -> peak %d MiB",
		sent, len(gaps), gaps[len(gaps)/2], gaps[len(gaps)*99/100], gaps[len(gaps)-1], baseHeap>>20, peak.Load()>>20)
	// The bound: a flood's state is rate-limited and stateless answers keep
	// nothing, so the heap grows by far less than the 90 MB a 20,000-INVITE
	// flood took before the screen.
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB during the campaign", growth>>20)
	}
	// The stack still answers, on UDP and TCP.
	for _, network := range []string{"udp", "tcp"} {
		addr := dst
		if network == "tcp" {
			addr = tcpAddr
		}
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		opt := strings.NewReplacer("{dst}", dst, "{src}", c.LocalAddr().String(), "{n}", "final", "SIP/2.0/UDP", "SIP/2.0/"+strings.ToUpper(network)).Replace(fuzzSeeds[8])
		c.Write([]byte(opt))
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
			t.Errorf("OPTIONS over %s after the campaign: %q %v", network, buf[:n], err)
		}
	}
}
