package sipstack

import (
	"math"
	"net"
	"net/netip"
	"strconv"

	"github.com/VictoriaMetrics/metrics"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/authguard"
)

// authLocked is verifyGuarded's answer for a source locked out after
// failed logins: refused without checking its credentials.
const authLocked authResult = -1

// UseMetrics counts failed logins, lockouts, stateless answers and dropped
// datagrams in set; call before Run.
func (s *Stack) UseMetrics(set *metrics.Set) {
	s.metricSet = set
	s.defenses()
}

// defenses builds the failed-login guard and the UDP screen once.
func (s *Stack) defenses() {
	s.guardOnce.Do(func() {
		set := s.metricSet
		if set == nil {
			set = metrics.NewSet()
		}
		s.guard = authguard.New("sip", authguard.DefaultLimits, authguard.Options{Trusted: s.trustedAddr, Metrics: set, Logger: s.log})
		s.screen = newScreen(s, set)
	})
}

func (s *Stack) authGuard() *authguard.Guard {
	s.defenses()
	return s.guard
}

// screenedUDP is the UDP socket behind the screen (screen.go).
func (s *Stack) screenedUDP() net.PacketConn {
	s.defenses()
	return &screenedConn{PacketConn: s.udp, sc: s.screen, reading: s.markServing}
}

// trustedAddr reports whether a is in sip.trusted.
func (s *Stack) trustedAddr(a netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// verifyGuarded is aut.verify behind the per-source throttle: a request
// carrying credentials from a locked-out source is refused unchecked
// (authLocked), a wrong password or forged nonce counts as a failure, a
// valid one clears the source. Requests without credentials only get a
// challenge (stateless, cheap) and are not counted.
func (s *Stack) verifyGuarded(req *sip.Request) (string, authResult, string) {
	g := s.authGuard()
	src := sourceAddr(req).Addr()
	if req.GetHeader("Authorization") != nil || req.GetHeader("Proxy-Authorization") != nil {
		if ok, retry := g.Allow(src); !ok {
			return "", authLocked, strconv.Itoa(int(math.Ceil(retry.Seconds())))
		}
	}
	user, res := s.aut.verify(req, s.password)
	switch res {
	case authInvalid:
		g.Fail(src)
	case authOK:
		g.Succeed(src)
	}
	return user, res, ""
}

// respondLocked refuses a locked-out source's request.
func (s *Stack) respondLocked(req *sip.Request, tx sip.ServerTransaction, retry string) {
	s.respond(req, tx, 403, "Forbidden (too many failed attempts)", sip.NewHeader("Retry-After", retry))
}
