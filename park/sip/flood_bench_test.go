package parksip

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkParkLoadUnderFlood is BenchmarkParkLoad (100 parked calls) with
// and without an INVITE flood from outside sip.trusted during the window:
// 2,000 INVITEs/s (the rate an attacker reached in testing), from one
// address and from 64 (as a spoofing attacker would). It reports the hold
// music's gap p99 and max, the server's RSS and peak, and the responses
// the flood got per INVITE sent (traffic out per request in).
func BenchmarkParkLoadUnderFlood(b *testing.B) {
	for _, src := range []int{0, 1, 64} {
		b.Run(fmt.Sprintf("flood-sources=%d", src), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				runParkLoadFlood(b, 100, src)
			}
		})
	}
}

const floodRate = 2000 // INVITEs per second

// flooder sends INVITEs from 127.0.1.x (untrusted: the bench trusts only
// 127.0.0.1) and counts what comes back.
type flooder struct {
	conns     []net.PacketConn
	sent, got atomic.Int64
	bytesIn   atomic.Int64
	bytesOut  atomic.Int64
	done      chan struct{}
	wg        sync.WaitGroup
}

func startFlood(b *testing.B, sipPort, sources int) *flooder {
	f := &flooder{done: make(chan struct{})}
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sipPort}
	for i := range sources {
		c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.1.%d:0", i+1))
		if err != nil {
			b.Fatal(err)
		}
		f.conns = append(f.conns, c)
		f.wg.Add(1)
		go func() { // count the answers
			defer f.wg.Done()
			buf := make([]byte, 65536)
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				f.got.Add(1)
				f.bytesIn.Add(int64(n))
			}
		}()
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		seq := 0
		for {
			select {
			case <-f.done:
				return
			case <-tick.C:
			}
			for range floodRate / 100 {
				c := f.conns[seq%len(f.conns)]
				from := c.LocalAddr().(*net.UDPAddr)
				msg := fmt.Appendf(nil, "INVITE sip:8000@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-fl%d;rport\r\n"+
					"Max-Forwards: 70\r\nFrom: <sip:attacker@%s>;tag=a%d\r\nTo: <sip:8000@%s>\r\nCall-ID: flood%d@%s\r\n"+
					"CSeq: 1 INVITE\r\nContact: <sip:attacker@%s>\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n",
					dst, from, seq, from.IP, seq, dst, seq, from.IP, from)
				if _, err := c.WriteTo(msg, dst); err == nil {
					f.sent.Add(1)
					f.bytesOut.Add(int64(len(msg)))
				}
				seq++
			}
		}
	}()
	return f
}

// stop ends the flood (answers still in flight, e.g. retransmissions, are
// counted for a few seconds more) and reports it.
func (f *flooder) stop(b *testing.B) {
	close(f.done)
	time.Sleep(5 * time.Second)
	for _, c := range f.conns {
		c.Close()
	}
	f.wg.Wait()
	sent, got := f.sent.Load(), f.got.Load()
	b.ReportMetric(float64(got)/float64(max(sent, 1)), "answers/INVITE")
	b.ReportMetric(float64(f.bytesIn.Load())/float64(max(f.bytesOut.Load(), 1)), "bytes-out/bytes-in")
	b.Logf("flood from %d sources: %d INVITEs sent, %d answers (%.3f per INVITE, %.3f bytes back per byte sent)",
		len(f.conns), sent, got, float64(got)/float64(max(sent, 1)), float64(f.bytesIn.Load())/float64(max(f.bytesOut.Load(), 1)))
}
