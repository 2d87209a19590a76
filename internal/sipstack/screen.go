package sipstack

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/emiago/sipgo/sip"
)

// The UDP screen sits between the socket and sipgo. Every datagram is
// parsed once here; one that does not parse is dropped (and logged at most
// once per source and kind per badLogEvery, truncated). Requests from
// sources outside sip.trusted that would only earn a challenge or a
// refusal (no credentials, a locked-out source, an in-dialog request for
// no dialog) are answered statelessly: one response per request, no
// transaction, no retransmission, nothing kept. What such a source may
// pass on to sipgo is rate-limited per source and in total, so a flood,
// even from spoofed addresses, costs a bounded amount of memory and CPU.
// TCP and TLS peers cannot spoof their address and get no retransmissions,
// so they go to sipgo directly.

// Screen limits.
const (
	srcRate        = 20  // datagrams per second an untrusted source may send
	srcBurst       = 40  // ... in a burst
	passRate       = 300 // untrusted requests per second passed to sipgo in total
	statelessRate  = 500 // stateless responses per second in total
	screenSources  = 4096
	badLogEvery    = 10 * time.Second
	badLogSources  = 1024
	badPayloadShow = 120 // bytes of an unparseable datagram shown in the log
)

// bucket is a token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

type badKey struct {
	src  netip.Addr
	kind string
}

type badLog struct {
	last       time.Time
	suppressed int
}

// screen is the UDP screen's state.
type screen struct {
	s   *Stack
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	sources   map[netip.Addr]*bucket
	pass      bucket
	stateless bucket
	bad       map[badKey]*badLog

	statelessSent *metrics.Counter
	dropped       *metrics.Counter
	badDatagrams  *metrics.Counter
}

func newScreen(s *Stack, set *metrics.Set) *screen {
	return &screen{
		s: s, log: s.log, now: time.Now,
		sources:       map[netip.Addr]*bucket{},
		bad:           map[badKey]*badLog{},
		statelessSent: set.GetOrCreateCounter("parkpage_sip_stateless_responses_total"),
		dropped:       set.GetOrCreateCounter(`parkpage_sip_dropped_total{reason="rate"}`),
		badDatagrams:  set.GetOrCreateCounter("parkpage_sip_unparseable_datagrams_total"),
	}
}

// screenedConn is the UDP socket as sipgo sees it: ReadFrom returns only
// datagrams the screen passes.
type screenedConn struct {
	net.PacketConn
	sc *screen
	// reading is called before every read: sipgo reads only once the
	// socket is in its pool.
	reading func()
}

func (c *screenedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.reading != nil {
		c.reading()
	}
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || c.sc.admit(c.PacketConn, p[:n], addr) {
			return n, addr, err
		}
	}
}

// admit decides a datagram's fate: true passes it to sipgo; false means
// it was dropped or answered here.
func (sc *screen) admit(conn net.PacketConn, data []byte, addr net.Addr) bool {
	if len(bytes.Trim(data, "\r\n\x00")) == 0 {
		return true // keep-alive
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return true
	}
	src := ua.AddrPort().Addr().Unmap()
	trusted := sc.s.trustedAddr(src)
	now := sc.now()
	if !trusted && !sc.takeSource(src, now) {
		sc.dropped.Inc()
		return false
	}
	msg, err := sip.ParseMessage(data)
	if err != nil {
		sc.unparseable(src, "unparseable", data, err)
		return false
	}
	if trusted {
		return true
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return sc.takePass(now) // a response to one of our requests
	}
	if req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		sc.unparseable(src, "incomplete", data, fmt.Errorf("missing Via, From, To, Call-ID or CSeq"))
		return false
	}
	if req.SipVersion != "SIP/2.0" {
		sc.unparseable(src, "version", data, fmt.Errorf("SIP version %q", req.SipVersion))
		return false
	}
	req.SetSource(ua.String())
	switch {
	case req.Method == sip.ACK || req.Method == sip.CANCEL:
		return sc.takePass(now)
	case req.To().Params.Has("tag"):
		if sc.s.lookupDialog(req) == nil {
			sc.reply(conn, ua, req, 481, "Call/Transaction Does Not Exist")
			return false
		}
		return sc.takePass(now)
	case req.GetHeader("Authorization") != nil || req.GetHeader("Proxy-Authorization") != nil:
		if ok, retry := sc.s.authGuard().Allow(src); !ok {
			sc.reply(conn, ua, req, 403, "Forbidden (too many failed attempts)", sip.NewHeader("Retry-After", strconv.Itoa(int(retry.Seconds())+1)))
			return false
		}
		return sc.takePass(now)
	case req.Method == sip.OPTIONS:
		sc.reply(conn, ua, req, 200, "OK", sc.s.allowHeader(), sip.NewHeader("Accept", "application/sdp"))
		return false
	}
	sc.s.mu.Lock()
	haveUsers := len(sc.s.users) > 0
	sc.s.mu.Unlock()
	if !haveUsers {
		sc.reply(conn, ua, req, 403, "Forbidden (source not trusted)")
		return false
	}
	sc.reply(conn, ua, req, 401, "Unauthorized", sip.NewHeader("WWW-Authenticate", sc.s.aut.challenge(false)))
	return false
}

func (sc *screen) takeSource(src netip.Addr, now time.Time) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	b := sc.sources[src]
	if b == nil {
		if len(sc.sources) >= screenSources {
			// Drop the buckets that are full again (idle sources), else any.
			for a, ob := range sc.sources {
				if now.Sub(ob.last) > srcBurst*time.Second/srcRate {
					delete(sc.sources, a)
				}
			}
			for a := range sc.sources {
				if len(sc.sources) < screenSources {
					break
				}
				delete(sc.sources, a)
			}
		}
		b = &bucket{}
		sc.sources[src] = b
	}
	return b.take(now, srcRate, srcBurst)
}

func (sc *screen) takePass(now time.Time) bool {
	sc.mu.Lock()
	ok := sc.pass.take(now, passRate, passRate)
	sc.mu.Unlock()
	if !ok {
		sc.dropped.Inc()
	}
	return ok
}

// reply sends a stateless response (RFC 3261 8.2.6, 16.7): the To tag is
// derived from the request, so a retransmitted request gets the same
// answer.
func (sc *screen) reply(conn net.PacketConn, to *net.UDPAddr, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	sc.mu.Lock()
	ok := sc.stateless.take(sc.now(), statelessRate, statelessRate)
	sc.mu.Unlock()
	if !ok {
		sc.dropped.Inc()
		return
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if th := res.To(); th != nil && !th.Params.Has("tag") {
		sum := sha256.Sum256([]byte(req.CallID().Value() + "\x00" + req.Via().Params.GetOr("branch", "")))
		th.Params.Add("tag", hex.EncodeToString(sum[:6]))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if _, err := conn.WriteTo([]byte(res.String()), to); err == nil {
		sc.statelessSent.Inc()
	}
}

// unparseable counts a bad datagram and logs it at most once per source
// and kind per badLogEvery, with a truncated payload and how many were not
// logged since.
func (sc *screen) unparseable(src netip.Addr, kind string, data []byte, err error) {
	sc.badDatagrams.Inc()
	now := sc.now()
	k := badKey{src, kind}
	sc.mu.Lock()
	e := sc.bad[k]
	if e == nil {
		if len(sc.bad) >= badLogSources {
			for bk, be := range sc.bad {
				if now.Sub(be.last) > badLogEvery {
					delete(sc.bad, bk)
				}
			}
			if len(sc.bad) >= badLogSources {
				sc.mu.Unlock()
				return // counted; too many sources to log each
			}
		}
		e = &badLog{}
		sc.bad[k] = e
	}
	if !e.last.IsZero() && now.Sub(e.last) < badLogEvery {
		e.suppressed++
		sc.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.last, e.suppressed = now, 0
	sc.mu.Unlock()
	sc.log.Warn("sip: dropped a datagram that is not SIP", "kind", kind, "source", src.String(), "bytes", len(data),
		"start", truncate(string(data)), "error", truncate(err.Error()), "not_logged_since", suppressed)
}

// truncate shortens s for a log line (the parser's errors quote the payload).
func truncate(s string) string {
	if len(s) > badPayloadShow {
		return s[:badPayloadShow] + "…"
	}
	return s
}
