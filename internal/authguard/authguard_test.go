package authguard

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time        { return c.t }
func (c *clock) add(d time.Duration)   { c.t = c.t.Add(d) }
func newClock() *clock                 { return &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func metricText(s *metrics.Set) string { var b bytes.Buffer; s.WritePrometheus(&b); return b.String() }
func trustedLAN(a netip.Addr) bool     { return netip.MustParsePrefix("192.168.0.0/16").Contains(a) }
func addr(s string) netip.Addr         { return netip.MustParseAddr(s) }
func guard(c *clock, ms *metrics.Set, log *bytes.Buffer) *Guard {
	return New("api", DefaultLimits, Options{Trusted: trustedLAN, Metrics: ms, Now: c.now, Logger: slog.New(slog.NewTextHandler(log, nil))})
}

func TestLockoutDoublesUpToTheCap(t *testing.T) {
	c, ms, log := newClock(), metrics.NewSet(), &bytes.Buffer{}
	g := guard(c, ms, log)
	if !strings.Contains(metricText(ms), `parkpage_auth_lockouts_total{service="api"} 0`) {
		t.Errorf("counters not emitted from the start:\n%s", metricText(ms))
	}
	src := addr("203.0.113.9")
	for i := 0; i < DefaultLimits.Free; i++ {
		if ok, _ := g.Allow(src); !ok {
			t.Fatalf("attempt %d refused", i)
		}
		if d := g.Fail(src); d != 0 {
			t.Fatalf("free failure %d locked out %v", i, d)
		}
	}
	var got []time.Duration
	for range 14 {
		ok, retry := g.Allow(src)
		for !ok {
			c.add(retry)
			ok, retry = g.Allow(src)
		}
		got = append(got, g.Fail(src))
	}
	if got[0] != time.Second || got[1] != 2*time.Second || got[2] != 4*time.Second || got[13] != 15*time.Minute {
		t.Errorf("lockouts %v", got)
	}
	if ok, _ := g.Allow(src); ok {
		t.Error("locked-out source allowed")
	}
	if n := strings.Count(log.String(), "locked out"); n != 1 {
		t.Errorf("%d lockout log lines, want 1:\n%s", n, log)
	}
	txt := metricText(ms)
	for _, want := range []string{`parkpage_auth_failures_total{service="api"} 19`, `parkpage_auth_lockouts_total{service="api"} 1`,
		`parkpage_auth_refused_total{service="api"} 1`, `parkpage_auth_locked_sources{service="api"} 1`} {
		if !strings.Contains(txt, want) {
			t.Errorf("metrics lack %q:\n%s", want, txt)
		}
	}
	// Success forgets; so does time.
	g.Succeed(src)
	if ok, _ := g.Allow(src); !ok {
		t.Error("still locked after success")
	}
}

func TestTrustedSourceIsNotLockedOutForLong(t *testing.T) {
	c := newClock()
	g := guard(c, metrics.NewSet(), &bytes.Buffer{})
	lan := addr("192.168.1.20")
	// An attacker sharing the LAN address fails constantly.
	for range 50 {
		if ok, _ := g.Allow(lan); ok {
			if d := g.Fail(lan); d > DefaultLimits.MaxTrusted {
				t.Fatalf("trusted lockout %v", d)
			}
		}
		c.add(100 * time.Millisecond)
	}
	// The owner's attempt is checked within a second whatever the attacker does.
	c.add(DefaultLimits.Grace)
	if ok, _ := g.Allow(lan); !ok {
		t.Fatal("trusted source's attempt not checked after the grace interval")
	}
	if ok, _ := g.Allow(lan); ok {
		t.Error("two attempts in one grace interval")
	}
	// An untrusted one is not let through early.
	wan := addr("203.0.113.1")
	for range 10 {
		g.Fail(wan)
	}
	c.add(DefaultLimits.Grace)
	if ok, _ := g.Allow(wan); ok {
		t.Error("untrusted source let through a lockout")
	}
}

func TestTableIsBounded(t *testing.T) {
	c := newClock()
	lim := DefaultLimits
	lim.Sources = 100
	g := New("sip", lim, Options{Now: c.now})
	for i := range 10000 {
		g.Fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		c.add(time.Millisecond)
	}
	if n := len(g.src); n > 100 {
		t.Errorf("%d sources kept", n)
	}
}
