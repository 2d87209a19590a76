package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// Benchmarks of the whole appliance, in process on loopback. Each runs a
// fixed number of samples whatever b.N is (make bench uses -benchtime 1x)
// and reports medians and p99s.

// BenchmarkAPIToFirstPacket: POST /api/v1/announcements for an announcement
// already rendered and encoded, to its first RTP packet at a multicast
// listener on lo. Target p99 < 5 ms.
func BenchmarkAPIToFirstPacket(b *testing.B) {
	const samples = 40
	port := proctest.FreePort(b, "udp")
	y := fmt.Sprintf(`
announce:
  chime: none
  lead_in: 0s
zones:
  front:
    outputs:
      - {type: rtp, group: 239.255.91.1, port: %d, codec: pcmu, interface: lo, loopback: true}
`, port)
	ap, l := benchAppliance(b, y, "239.255.91.1", port)
	body := `{"zones":["front"],"text":"Test","priority":"test"}`
	post := func() time.Time {
		start := time.Now()
		res, err := http.Post(ap.api+"/api/v1/announcements", "application/json", strings.NewReader(body))
		if err != nil || res.StatusCode != http.StatusAccepted {
			b.Fatalf("announce: %v", err)
		}
		res.Body.Close()
		return start
	}
	// Warm the cache (render and encode once).
	post()
	ap.waitEvent(events.PageEnded, 0, 10*time.Second)
	var lat []time.Duration
	for range samples {
		before := len(l.Packets())
		from := len(ap.snapshotEvents())
		start := post()
		pk := l.Wait(b, before+1, 5*time.Second)
		lat = append(lat, pk[before].At.Sub(start))
		ap.waitEvent(events.PageEnded, from, 10*time.Second)
	}
	reportLatency(b, lat)
}

// BenchmarkParkToFirstPacket: a park event (the webhook, as AMI and the
// local park server publish the same event) to the first packet of the
// slot's announcement, the phrase rendered ahead at start-up.
func BenchmarkParkToFirstPacket(b *testing.B) {
	const samples = 30
	port := proctest.FreePort(b, "udp")
	y := fmt.Sprintf(`
park:
  lots:
    - extension: "700"
      slots: 701-710
      label: Sales
      announce: {zones: [front]}
announce:
  chime: none
  lead_in: 0s
zones:
  front:
    outputs:
      - {type: rtp, group: 239.255.91.2, port: %d, codec: pcmu, interface: lo, loopback: true}
`, port)
	ap, l := benchAppliance(b, y, "239.255.91.2", port)
	time.Sleep(3 * time.Second) // the announcer prepares every slot's phrase
	var lat []time.Duration
	for i := range samples {
		slot := fmt.Sprint(701 + i%10)
		before := len(l.Packets())
		from := len(ap.snapshotEvents())
		start := time.Now()
		res, err := http.Post(ap.api+"/api/v1/park-events", "application/json", strings.NewReader(`{"event":"parked","slot":"`+slot+`"}`))
		if err != nil || res.StatusCode != http.StatusAccepted {
			b.Fatalf("park event: %v", err)
		}
		res.Body.Close()
		pk := l.Wait(b, before+1, 5*time.Second)
		lat = append(lat, pk[before].At.Sub(start))
		// Pick up: the announcement stops.
		res, _ = http.Post(ap.api+"/api/v1/park-events", "application/json", strings.NewReader(`{"event":"retrieved","slot":"`+slot+`"}`))
		res.Body.Close()
		ap.waitEvent(events.PageEnded, from, 10*time.Second)
	}
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

func benchAppliance(b *testing.B, y, group string, port int) (*inproc, *mcasttest.Recorder) {
	l := mcasttest.Record(b, group, port)
	return startInproc(b, y), l
}
