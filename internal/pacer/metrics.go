package pacer

import (
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// counters are the loop's running totals: written by the loop thread,
// read by anyone.
type counters struct {
	wakeups     atomic.Uint64
	lateWakeups atomic.Uint64
	packets     atomic.Uint64
	bytes       atomic.Uint64
	latePackets atomic.Uint64
	dropped     atomic.Uint64
	errors      atomic.Uint64
	maxLate     atomic.Int64 // ns
	maxWork     atomic.Int64 // ns
	streams     atomic.Int64
	ahead       atomic.Uint64
	passes      atomic.Uint64 // loop passes, sending or not (tests: an idle loop makes none)
}

// Counters are the Pacer's totals since it was made, over every stream.
type Counters struct {
	// Wakeups counts wake-ups that sent at least one packet; an idle
	// Pacer does not wake.
	Wakeups uint64
	// LateWakeups counts wake-ups whose earliest due packet went out more
	// than the late threshold after its due time (the loop woke late).
	LateWakeups uint64
	Packets     uint64 // packets sent
	Bytes       uint64 // UDP payload bytes sent
	LatePackets uint64 // packets sent more than the late threshold after their due time
	Dropped     uint64 // packets the kernel refused for lack of buffer space
	Errors      uint64 // packets the kernel refused for any other reason
	// MaxLate is the worst lateness of a packet; MaxWork the longest
	// time one wake-up took from waking to its last send.
	MaxLate, MaxWork time.Duration
	Streams          int // streams playing
	// Ahead counts packets queued in the kernel before their due time and
	// sent by it at that time (Ahead streams; included in Packets).
	Ahead uint64
}

// Counters returns the Pacer's totals.
func (p *Pacer) Counters() Counters {
	return Counters{
		Wakeups:     p.c.wakeups.Load(),
		LateWakeups: p.c.lateWakeups.Load(),
		Packets:     p.c.packets.Load(),
		Bytes:       p.c.bytes.Load(),
		LatePackets: p.c.latePackets.Load(),
		Dropped:     p.c.dropped.Load(),
		Errors:      p.c.errors.Load(),
		MaxLate:     time.Duration(p.c.maxLate.Load()),
		MaxWork:     time.Duration(p.c.maxWork.Load()),
		Streams:     int(p.c.streams.Load()),
		Ahead:       p.c.ahead.Load(),
	}
}

// RegisterMetrics adds the Pacer's counters to set, under parkpage_pacer_*.
// They cover every stream the box sends: hold music, prompts and RTP to
// amplifiers on call legs, and multicast pages.
func (p *Pacer) RegisterMetrics(set *metrics.Set) {
	u := func(v *atomic.Uint64) func() float64 { return func() float64 { return float64(v.Load()) } }
	secs := func(v *atomic.Int64) func() float64 {
		return func() float64 { return time.Duration(v.Load()).Seconds() }
	}
	set.NewGauge("parkpage_pacer_streams", func() float64 { return float64(p.c.streams.Load()) })
	set.NewGauge("parkpage_pacer_realtime", func() float64 {
		if p.Realtime() {
			return 1
		}
		return 0
	})
	set.NewGauge("parkpage_pacer_wakeups_total", u(&p.c.wakeups))
	set.NewGauge("parkpage_pacer_late_wakeups_total", u(&p.c.lateWakeups))
	set.NewGauge("parkpage_pacer_packets_total", u(&p.c.packets))
	set.NewGauge("parkpage_pacer_bytes_total", u(&p.c.bytes))
	set.NewGauge("parkpage_pacer_late_packets_total", u(&p.c.latePackets))
	set.NewGauge("parkpage_pacer_dropped_packets_total", u(&p.c.dropped))
	set.NewGauge("parkpage_pacer_send_errors_total", u(&p.c.errors))
	set.NewGauge("parkpage_pacer_max_late_seconds", secs(&p.c.maxLate))
	set.NewGauge("parkpage_pacer_max_wakeup_seconds", secs(&p.c.maxWork))
	set.NewGauge("parkpage_pacer_ahead_packets_total", u(&p.c.ahead))
}
