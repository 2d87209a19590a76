package multicast

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	pionrtp "github.com/pion/rtp"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/pacer"
	"github.com/parkpage/parkpage/multicast/polycom"
)

// firstPacketSamples is how many pages one BenchmarkFirstPacket op starts.
const firstPacketSamples = 200

// BenchmarkFirstPacket measures how long a cached announcement takes from
// the moment a page is submitted (Cache.Get, Frames, Output.Play) to its
// first packet reaching a multicast receiver on lo (kernel receive
// timestamp), for an RTP (PCMU) and a Polycom (G.722: the first packet is
// an Alert) output, idle and with every CPU busy, with and without
// SCHED_FIFO. "busy=N" runs N other 20 ms streams on the Pacer meanwhile, as
// when other zones are paging. Pages start at random phases. One op is
// firstPacketSamples pages. Target: p99 < 5 ms.
func BenchmarkFirstPacket(b *testing.B) {
	cache := announce.NewCache(benchRenderer(b), 4)
	req := announce.Request{Text: "Sales call on 704", Chime: announce.ChimeNone}
	if _, err := cache.Prepare(context.Background(), req, codec.PCMU, codec.G722); err != nil {
		b.Fatal(err)
	}
	for _, load := range []string{"idle", "procs"} {
		for _, fifo := range []bool{true, false} {
			for _, busy := range []int{0, 20} {
				for _, format := range []string{"rtp", "polycom"} {
					name := fmt.Sprintf("load=%s/fifo=%v/busy=%d/%s", load, fifo, busy, format)
					b.Run(name, func(b *testing.B) { benchFirstPacket(b, cache, req, format, load, fifo, busy) })
				}
			}
		}
	}
}

func benchRenderer(b *testing.B) *announce.Renderer {
	r, err := announce.NewRenderer(announce.Config{})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func benchFirstPacket(b *testing.B, cache *announce.Cache, req announce.Request, format, load string, fifo bool, busy int) {
	const group, busyGroup = "239.77.8.2", "239.77.8.3"
	prio := 0
	if fifo {
		prio = pacer.DefaultPriority
	}
	p := startPacer(b, nil, benchPacerOptions(b, prio)...)
	l := listenTS(b, group)
	forceRcvBuf(b, l, 16<<20)
	out := loSender(b, group, l.port)

	// Background streams to a group nobody joined: they load the Pacer's
	// loop, not the receiver.
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	if busy > 0 {
		bs := loSender(b, busyGroup, 9)
		for range busy {
			p.Play(bctx, bs, pcmuStream(b, pcmuFrames(1<<16)))
		}
	}
	stopLoad := startLoad(b, load)
	defer stopLoad()
	time.Sleep(100 * time.Millisecond) // let the load settle

	seen := map[uint32]bool{} // SSRCs (RTP) or host serials (Polycom) of earlier pages
	var lat []float64
	b.ResetTimer()
	for i := range firstPacketSamples * b.N {
		time.Sleep(time.Duration(rand.Int64N(int64(20 * time.Millisecond)))) // random phase
		id := uint32(i + 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)

		t0 := time.Now().UnixNano()
		r, err := cache.Get(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		switch format {
		case "rtp":
			frames, err := r.Frames(codec.PCMU)
			if err != nil {
				b.Fatal(err)
			}
			o, err := NewRTPOutput(p, out, RTPOptions{Codec: codec.PCMU})
			if err != nil {
				b.Fatal(err)
			}
			go func() { _, err := o.Play(ctx, frames); done <- err }()
		case "polycom":
			frames, err := r.Frames(codec.G722)
			if err != nil {
				b.Fatal(err)
			}
			o, err := NewPolycomOutput(p, out, PolycomOptions{Channel: 26, Codec: polycom.CodecG722, HostSerial: id, Timing: fastTiming})
			if err != nil {
				b.Fatal(err)
			}
			go func() { _, err := o.Play(ctx, frames); done <- err }()
		}

		// The first packet of this page: a new SSRC or host serial.
		for {
			pkt, ts, err := l.readTS(2 * time.Second)
			if err != nil {
				b.Fatalf("page %d: no first packet: %v", i, err)
			}
			var key uint32
			if format == "rtp" {
				var h pionrtp.Header
				if _, err := h.Unmarshal(pkt); err != nil {
					b.Fatal(err)
				}
				key = h.SSRC
			} else {
				pp, err := polycom.Parse(pkt)
				if err != nil {
					b.Fatal(err)
				}
				key = pp.HostSerial
			}
			if seen[key] {
				continue // the tail of an earlier page
			}
			seen[key] = true
			lat = append(lat, float64(ts-t0)/1e6)
			break
		}
		cancel()
		<-done
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), "first-p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "first-p99-ms")
	b.ReportMetric(lat[len(lat)-1], "first-max-ms")
	rt := 0.0
	if p.Realtime() {
		rt = 1
	}
	b.ReportMetric(rt, "fifo")
}
