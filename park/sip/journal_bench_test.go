package parksip

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/journal"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/park"
)

// benchRecord is a journal record of the size a real parked call has.
func benchRecord(i int, sinkSIP, sinkRTP netip.AddrPort, rtpPort int, now time.Time) callRecord {
	sdp := fmt.Sprintf("v=0\r\no=caller %d 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8 9 101\r\n"+
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n", i, sinkRTP.Port())
	caller := park.Party{Display: fmt.Sprintf("Caller %d", i), URI: fmt.Sprintf("sip:+1206555%04d@pbx.lan", i), User: fmt.Sprintf("+1206555%04d", i)}
	return callRecord{
		Saved: now,
		Dialog: sipstack.DialogState{CallID: fmt.Sprintf("%08x-bench-%d@pbx.lan", i, i), LocalTag: fmt.Sprintf("lt%012d", i), RemoteTag: fmt.Sprintf("rt%012d", i),
			Local: "<sip:700@127.0.0.1>", Remote: fmt.Sprintf(`"Caller %d" <sip:+1206555%04d@pbx.lan>`, i, i),
			Target: fmt.Sprintf("sip:caller%d@%s", i, sinkSIP), Transport: "UDP", Source: sinkSIP.String(), LocalCSeq: 1, RemoteCSeq: 1,
			Identity: sipstack.Identity{Display: caller.Display, URI: caller.URI, User: caller.User, Host: "pbx.lan"}},
		Media: media.LegState{Port: rtpPort, Advertise: netip.MustParseAddr("127.0.0.1"), SessID: uint64(i), SessVer: 1,
			Remote: sinkRTP, Codec: "PCMU", RemoteSDP: sdp, SSRC: uint32(i + 1), Seq: uint16(i * 7), TS: uint32(i * 1000),
			Last: now.Add(-time.Second), Sent: true, Music: true},
		Park: park.Resumable{Lot: "700", Slot: fmt.Sprint(1000 + i), Caller: caller, Parker: park.Party{URI: "sip:201@pbx.lan", User: "201"},
			Since: now.Add(-10 * time.Second), Due: now.Add(80 * time.Second)},
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkJournalWrite is the journal's cost per park: one record of a
// parked call's size written and fdatasynced (what a park waits for
// before its 200 OK), 2,000 parks over 20 slots with every other one
// retrieved (a delete), compaction included.
func BenchmarkJournalWrite(b *testing.B) {
	for range b.N {
		j, _, _, err := journal.Open(filepath.Join(b.TempDir(), "calls.journal"))
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		addr := netip.MustParseAddrPort("127.0.0.1:5070")
		var puts, dels []time.Duration
		for i := range 2000 {
			rec := benchRecord(i%20, addr, addr, 30000+2*(i%20), now)
			key := fmt.Sprint("call", i%20)
			t0 := time.Now()
			if err := j.Put(key, rec); err != nil {
				b.Fatal(err)
			}
			puts = append(puts, time.Since(t0))
			if i%2 == 1 {
				t0 = time.Now()
				if err := j.Delete(key); err != nil {
					b.Fatal(err)
				}
				dels = append(dels, time.Since(t0))
			}
		}
		j.Close()
		b.ReportMetric(float64(percentile(puts, 0.5).Microseconds()), "park-write-p50-µs")
		b.ReportMetric(float64(percentile(puts, 0.99).Microseconds()), "park-write-p99-µs")
		b.ReportMetric(float64(percentile(dels, 0.99).Microseconds()), "delete-p99-µs")
	}
}

// BenchmarkRestartToMusic is the time from a restarted park server's
// start (stack and server built, journal read, calls resumed) to the
// first hold-music packet of each of 100 or 1,000 journalled calls.
func BenchmarkRestartToMusic(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			for range b.N {
				benchRestart(b, n)
			}
		})
	}
}

func benchRestart(b *testing.B, n int) {
	dir := b.TempDir()
	base := 20000 + (rtpBase%100)*50
	lots := "" // at most 100 slots a lot
	for k := 0; k < n; k += 100 {
		lots += fmt.Sprintf("    - {extension: \"8%03d\", slots: %d-%d, timeout: 90s}\n", k/100, 1000+k, 1000+k+99)
	}
	yaml := fmt.Sprintf(`
state_dir: %s
sip:
  listen:
    - {transport: udp, address: "127.0.0.1:0"}
  rtp_ports: %d-%d
park:
  lots:
%s  rtp_timeout: 300s
`, dir, base, base+2*n+400, lots)
	cfg, _, err := config.Parse("bench.yaml", []byte(yaml))
	if err != nil {
		b.Fatalf("config: %v", err)
	}
	// One socket stands for every caller (SIP and RTP): it notes when each
	// SSRC's first packet arrives.
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	_ = sink.SetReadBuffer(8 << 20)
	sinkAddr := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	path := filepath.Join(dir, "calls.journal")
	j, _, _, err := journal.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range n {
		if err := j.Put(fmt.Sprint("call", i), benchRecord(i, sinkAddr, sinkAddr, base+2*i, now)); err != nil {
			b.Fatal(err)
		}
	}
	j.Close()

	var mu sync.Mutex
	first := map[uint32]time.Time{}
	all := make(chan struct{})
	go func() {
		buf := make([]byte, 1500)
		for {
			k, err := sink.Read(buf)
			if err != nil {
				return
			}
			if k < 12 || buf[0]>>6 != 2 {
				continue
			}
			ssrc := binary.BigEndian.Uint32(buf[8:12])
			mu.Lock()
			if _, ok := first[ssrc]; !ok {
				first[ssrc] = time.Now()
				if len(first) == n {
					close(all)
				}
			}
			mu.Unlock()
		}
	}()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if !testing.Verbose() {
		log = slog.New(slog.DiscardHandler)
	}
	// The built-in music is embedded as rendered PCM: nothing to warm.
	start := time.Now()
	stack, err := sipstack.New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	if err := stack.Listen(); err != nil {
		b.Fatal(err)
	}
	mc := MediaConfig(cfg, stack)
	mc.Realtime = false
	eng, err := media.NewEngine(mc, log)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, Options{Stack: stack, Bus: events.New(), Logger: log, Media: eng, Journal: path})
	if err != nil {
		b.Fatal(err)
	}
	resumed := time.Since(start)
	ctx, cancel := context.WithCancel(context.Background())
	lower, stopLower := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = stack.Run(lower); close(done) }()
	engDone := make(chan struct{})
	go func() { _ = eng.Run(lower); close(engDone) }()
	srvDone := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(srvDone) }()
	select {
	case <-all:
	case <-time.After(time.Minute):
		mu.Lock()
		got := len(first)
		mu.Unlock()
		b.Fatalf("music on %d of %d calls after a minute", got, n)
	}
	// Stopped as the appliance stops: the park server (which keeps the
	// calls), then the media engine and the SIP stack.
	cancel()
	<-srvDone
	stopLower()
	<-engDone
	<-done
	mu.Lock()
	var ds []time.Duration
	for _, t := range first {
		ds = append(ds, t.Sub(start))
	}
	mu.Unlock()
	b.ReportMetric(float64(resumed.Milliseconds()), "resume-ms")
	b.ReportMetric(float64(percentile(ds, 0.5).Milliseconds()), "to-music-p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.99).Milliseconds()), "to-music-p99-ms")
	b.ReportMetric(float64(percentile(ds, 1).Milliseconds()), "to-music-max-ms")
}
