// Package authguard throttles failed logins per source address: a few
// failures are free, then the source is locked out for a time that doubles
// with each further failure, up to a cap. A locked-out source's attempts
// are refused before any password is checked, so a guessing attacker costs
// no bcrypt or digest work and learns nothing. Trusted sources (the LAN)
// have a short cap, so an attacker sharing their address cannot keep their
// correct credentials out for long. The table of sources is bounded.
//
// It counts failures, lockouts and refused attempts in Prometheus metrics
// and logs one line per lockout, never one per attempt.
package authguard

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Limits are the documented throttling limits (README, "Failed logins").
type Limits struct {
	// Free is the number of failures a source may make before a lockout.
	Free int
	// First is the first lockout; each further failure doubles it.
	First time.Duration
	// Max caps an untrusted source's lockout.
	Max time.Duration
	// MaxTrusted caps a trusted source's lockout.
	MaxTrusted time.Duration
	// Forget drops a source this long after its last failure (its count
	// starts again from zero).
	Forget time.Duration
	// Sources bounds the table; when full the stalest entry goes.
	Sources int
	// Grace lets one attempt per Grace from a locked-out trusted source be
	// checked (a correct credential then ends the lockout).
	Grace time.Duration
}

// DefaultLimits are parkpage's limits.
var DefaultLimits = Limits{
	Free:       5,
	First:      time.Second,
	Max:        15 * time.Minute,
	MaxTrusted: 10 * time.Second,
	Forget:     15 * time.Minute,
	Sources:    4096,
	Grace:      time.Second,
}

// Guard tracks failures per source for one service ("api", "sip").
type Guard struct {
	service string
	lim     Limits
	trusted func(netip.Addr) bool
	log     *slog.Logger
	now     func() time.Time

	mu  sync.Mutex
	src map[netip.Addr]*entry

	failures *metrics.Counter
	lockouts *metrics.Counter
	refused  *metrics.Counter
}

type entry struct {
	fails  int       // failures since the last success or forget
	until  time.Time // locked out until
	last   time.Time // last failure
	locked bool      // the current lockout has been logged
	grace  time.Time // last attempt let through a trusted lockout
}

// Options configure a Guard.
type Options struct {
	// Trusted says whether a source is trusted (short lockouts); nil: none.
	Trusted func(netip.Addr) bool
	// Metrics receives the guard's counters; nil: a private set.
	Metrics *metrics.Set
	// Logger gets one line per lockout; nil: discarded.
	Logger *slog.Logger
	// Now replaces the clock in tests.
	Now func() time.Time
}

// New returns a guard for service with limits lim.
func New(service string, lim Limits, o Options) *Guard {
	if o.Trusted == nil {
		o.Trusted = func(netip.Addr) bool { return false }
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Guard{service: service, lim: lim, trusted: o.Trusted, log: o.Logger, now: o.Now, src: map[netip.Addr]*entry{}}
	label := fmt.Sprintf(`{service=%q}`, service)
	g.failures = o.Metrics.GetOrCreateCounter("parkpage_auth_failures_total" + label)
	g.lockouts = o.Metrics.GetOrCreateCounter("parkpage_auth_lockouts_total" + label)
	g.refused = o.Metrics.GetOrCreateCounter("parkpage_auth_refused_total" + label)
	o.Metrics.GetOrCreateGauge("parkpage_auth_locked_sources"+label, func() float64 { return float64(g.Locked()) })
	return g
}

// SetTrusted replaces the trusted-source test (on reload).
func (g *Guard) SetTrusted(f func(netip.Addr) bool) {
	g.mu.Lock()
	g.trusted = f
	g.mu.Unlock()
}

// Allow reports whether an attempt from src may be checked now; when not,
// retry says when it may, and the attempt is counted as refused. A
// locked-out trusted source is let through once per Limits.Grace, so its
// correct credentials get in at once while its guesses stay throttled.
func (g *Guard) Allow(src netip.Addr) (ok bool, retry time.Duration) {
	src = src.Unmap()
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.src[src]
	if e == nil || !now.Before(e.until) {
		return true, 0
	}
	if g.lim.Grace > 0 && g.trusted(src) && now.Sub(e.grace) >= g.lim.Grace {
		e.grace = now
		return true, 0
	}
	g.refused.Inc()
	return false, e.until.Sub(now)
}

// Fail records a failed attempt from src; it returns the lockout it
// started, if any.
func (g *Guard) Fail(src netip.Addr) time.Duration {
	src = src.Unmap()
	now := g.now()
	g.failures.Inc()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.src[src]
	if e != nil && now.Sub(e.last) > g.lim.Forget {
		e = nil
	}
	if e == nil {
		if len(g.src) >= g.lim.Sources {
			g.evictLocked(now)
		}
		e = &entry{}
		g.src[src] = e
	}
	e.fails++
	e.last = now
	over := e.fails - g.lim.Free
	if over <= 0 {
		return 0
	}
	limit := g.lim.Max
	trusted := g.trusted(src)
	if trusted {
		limit = g.lim.MaxTrusted
	}
	d := g.lim.First
	for i := 1; i < over && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	e.until = now.Add(d)
	// One line and one count per lockout: a source that keeps failing
	// right after each lockout ends is one lockout until it stops.
	if !e.locked {
		e.locked = true
		g.lockouts.Inc()
		g.log.Warn("auth: source locked out after failed logins", "service", g.service, "source", src.String(),
			"failures", e.fails, "lockout", d.String(), "trusted", trusted)
	}
	return d
}

// Succeed records a successful login from src: its failures are forgotten.
func (g *Guard) Succeed(src netip.Addr) {
	src = src.Unmap()
	g.mu.Lock()
	delete(g.src, src)
	g.mu.Unlock()
}

// Locked is the number of sources locked out now.
func (g *Guard) Locked() int {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, e := range g.src {
		if now.Before(e.until) {
			n++
		}
	}
	return n
}

// evictLocked drops forgotten entries, else the one whose last failure is
// oldest; g.mu held.
func (g *Guard) evictLocked(now time.Time) {
	var oldest netip.Addr
	var ot time.Time
	for a, e := range g.src {
		if now.Sub(e.last) > g.lim.Forget {
			delete(g.src, a)
			continue
		}
		if ot.IsZero() || e.last.Before(ot) {
			oldest, ot = a, e.last
		}
	}
	if len(g.src) >= g.lim.Sources {
		delete(g.src, oldest)
	}
}
