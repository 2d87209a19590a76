package sipstack

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// BenchmarkBLFNotify measures how soon a slot change reaches BLF keys: 20
// phones each watch 10 slots (200 subscriptions, a busy reception), the
// slots change one after another 20 ms apart, and each NOTIFY's arrival
// at the phone is timed from the Presence.Set that caused it. The issue's
// target is 50 ms.
func BenchmarkBLFNotify(b *testing.B) {
	const phones, slots, changes = 20, 10, 100
	s := startStack(b, b.TempDir(), "")
	var pres []*Presence
	for i := 0; i < slots; i++ {
		pres = append(pres, s.Presence(strconv.Itoa(701+i)))
	}
	displayRe := regexp.MustCompile(`display="c(\d+)"`)
	var mu sync.Mutex
	arrived := map[int][]time.Time{}
	var ps []*phone
	for i := 0; i < phones; i++ {
		ph := newPhone(b)
		ph.onNotify = func(req *sip.Request, at time.Time) {
			if m := displayRe.FindSubmatch(req.Body()); m != nil {
				k, _ := strconv.Atoi(string(m[1]))
				mu.Lock()
				arrived[k] = append(arrived[k], at)
				mu.Unlock()
			}
		}
		for j := 0; j < slots; j++ {
			res := ph.do(ph.request(sip.SUBSCRIBE, s, strconv.Itoa(701+j), fmt.Sprint(1000+i), "Event: dialog", "Expires: 600"))
			if res.StatusCode != 200 {
				b.Fatalf("SUBSCRIBE: %d", res.StatusCode)
			}
		}
		ps = append(ps, ph)
	}
	for _, ph := range ps {
		deadline := time.Now().Add(10 * time.Second)
		for len(ph.notifies()) < slots && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.ResetTimer()
	set := make([]time.Time, changes)
	for k := 0; k < changes; k++ {
		set[k] = time.Now()
		pres[k%slots].Set([]DialogEntry{{ID: "x", State: DialogConfirmed, RemoteDisplay: fmt.Sprintf("c%d", k), RemoteURI: "sip:caller@pbx.lan"}})
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	b.StopTimer()
	var lat []time.Duration
	missing := 0
	mu.Lock()
	for k := 0; k < changes; k++ {
		if len(arrived[k]) < phones {
			missing += phones - len(arrived[k])
		}
		for _, at := range arrived[k] {
			lat = append(lat, at.Sub(set[k]))
		}
	}
	mu.Unlock()
	if len(lat) == 0 {
		b.Fatal("no NOTIFY arrived")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	over := 0
	for _, l := range lat {
		if l > 50*time.Millisecond {
			over++
		}
	}
	b.ReportMetric(q(0.5).Seconds()*1000, "p50-ms")
	b.ReportMetric(q(0.99).Seconds()*1000, "p99-ms")
	b.ReportMetric(lat[len(lat)-1].Seconds()*1000, "max-ms")
	b.ReportMetric(float64(over), "over-50ms")
	b.Logf("%d NOTIFYs (%d missing) to %d phones x %d slots: change to NOTIFY p50 %v, p99 %v, max %v, %d over 50 ms",
		len(lat), missing, phones, slots, q(0.5), q(0.99), lat[len(lat)-1], over)
	if missing > 0 {
		b.Errorf("%d NOTIFYs never arrived", missing)
	}
}
