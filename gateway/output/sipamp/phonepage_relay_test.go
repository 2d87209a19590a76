package sipamp

import (
	"context"
	"fmt"
	"math"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/parkpage/parkpage/gateway"
	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/phonepage"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
	"github.com/parkpage/parkpage/multicast/polycom/polycomtest"
)

// A third-party Polycom page relayed to a SIP amplifier ends intact: the
// sender (polycomtest, built from paging-formats.md, not parkpage's
// encoder) pages on lo with the document's timing (End burst 50 ms after
// the last Transmit); the amplifier is sipp with an RTP listener. Every
// frame up to the page's last one reaches the amplifier (the page ends
// with 100 ms of a loud 1 kHz tone, all of which must arrive), and the
// amplifier's RTP timestamps run on +160 per packet to the end: no jump
// of +320/+480 after a gap when the End packets arrive.
func TestRelayedPolycomPageEndsIntact(t *testing.T) {
	for i, tc := range []struct {
		name  string
		ticks uint32 // 20 or 30 ms frames
	}{
		{"20ms", 160},
		{"30ms", 240},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			group := fmt.Sprintf("239.255.46.%d", 20+i)
			port := proctest.FreePort(t, "udp")
			rx := newReceiver(t)
			amp := startSipp(t, "amp.xml", 1, "rtp_port", rx.port(), "codec_pt", "0", "codec_name", "PCMU")
			yaml := fmt.Sprintf(`
zones:
  lobby:
    outputs:
      - { type: sip, uri: "%s", settle: 0s }
phone_pages:
  - { type: polycom, group: %s, port: %d, channel: 26, interface: lo, zones: [lobby] }
`, amp.uri("page"), group, port)
			cfg, _, err := config.Parse("test.yaml", []byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			opts := r.options(t)
			kinds := output.Kinds{config.OutputSIP: Factory(opts)}
			g, err := gateway.New(cfg.Zones, gateway.Options{Outputs: kinds.Output, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			recv, err := phonepage.New(cfg.PhonePages, phonepage.Options{Pager: g, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			if err := recv.Start(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { _ = recv.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()

			// 2.5 s of a quiet 440 Hz tone (the call is set up meanwhile),
			// then 100 ms of a loud 1 kHz tone: the page's last frames.
			const rate = 8000
			n := int(tc.ticks)
			quiet, loud := 2500*rate/1000, 100*rate/1000
			pcm := make([]int16, quiet+loud)
			for k := range pcm {
				a, f := 1500.0, 440.0
				if k >= quiet {
					a, f = 14000, 1000
				}
				pcm[k] = int16(a * math.Sin(2*math.Pi*f*float64(k)/rate))
			}
			for len(pcm)%n != 0 {
				pcm = append(pcm, 0)
			}
			var frames [][]byte
			for off := 0; off < len(pcm); off += n {
				f := make([]byte, n)
				for k := range f {
					f[k] = ulaw(pcm[off+k])
				}
				frames = append(frames, f)
			}
			s := &polycomtest.Sender{Conn: phoneSocket(t), Dst: &net.UDPAddr{IP: net.ParseIP(group), Port: port},
				Channel: 26, Serial: 0x0004f2bb, CallerID: "Asterisk", CallerIDLen: 8, Codec: polycomtest.CodecG711U,
				FrameTicks: tc.ticks, FirstCount: 0xfffff000, FrameInterval: time.Duration(n/8) * time.Millisecond}
			if err := s.Page(frames); err != nil {
				t.Fatal(err)
			}
			amp.mustPass() // the call ends with our BYE after the page

			pkts := rx.packets()
			var audio []packet
			for _, p := range pkts {
				if p.h.PayloadType == 0 {
					audio = append(audio, p)
				}
			}
			sort.SliceStable(audio, func(a, b int) bool {
				return int16(audio[a].h.SequenceNumber-audio[0].h.SequenceNumber) < int16(audio[b].h.SequenceNumber-audio[0].h.SequenceNumber)
			})
			if len(audio) < 50 {
				t.Fatalf("amplifier got %d audio packets", len(audio))
			}
			// The stream's end: the packets of the final 100 ms (and any
			// closing packet) follow each other at +1/+160. Earlier jumps
			// are the leg absorbing arrival jitter (a 30 ms sender's frames
			// come 1.5 at a time) or a loaded machine; they are logged.
			const tail = 6
			for k := 1; k < len(audio); k++ {
				ds := audio[k].h.SequenceNumber - audio[k-1].h.SequenceNumber
				dt := audio[k].h.Timestamp - audio[k-1].h.Timestamp
				if ds == 1 && dt == 160 {
					continue
				}
				msg := fmt.Sprintf("packet %d of %d: seq +%d ts +%d after %v, want +1 +160", k, len(audio), ds, int32(dt), audio[k].at.Sub(audio[k-1].at).Round(time.Millisecond))
				if k >= len(audio)-tail {
					t.Error(msg)
				} else {
					t.Log(msg)
				}
			}
			got, _ := audioOf(t, pkts, 0, codec.PCMU)
			first, last := -1, -1
			for k, v := range got {
				if v > 9000 || v < -9000 {
					if first < 0 {
						first = k
					}
					last = k
				}
			}
			// A lost 20 ms frame leaves at most 80 ms; the resamplers on the
			// way (8 to 16 kHz in the relay, back to 8 kHz in the leg, and
			// the test's decoder) hold about 2 ms each of the very end.
			heard := time.Duration(last-first+1) * time.Second / codec.SampleRate
			if first < 0 || heard < 90*time.Millisecond {
				t.Errorf("amplifier heard %v of the page's final 100 ms tone: frames lost at the end", heard)
			}
			if end := len(got) - 1 - last; end > 2*codec.FrameSamples {
				t.Errorf("%d samples after the final tone: the stream did not end with the page's last frame", end)
			}
			t.Logf("%d audio packets; final tone heard for %v", len(audio), heard)
		})
	}
}

// phoneSocket sends multicast on lo from a random port, as a third-party
// sender on the LAN would.
func phoneSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	pc := ipv4.NewPacketConn(c)
	if err := pc.SetMulticastInterface(lo); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetMulticastLoopback(true)
	return c
}

// ulaw is G.711 µ-law encoding (ITU-T G.711 table 2a), written here rather
// than taken from internal/codec so the sender stays independent.
func ulaw(x int16) byte {
	const bias, clip = 0x84, 32635
	v := int(x)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0F
	return ^byte(sign | exp<<4 | mant)
}
