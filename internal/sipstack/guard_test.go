package sipstack

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/emiago/sipgo/sip"
)

// registerOnce sends one REGISTER as user: the challenge, then one answer
// with password. It returns the final response.
func (p *phone) registerOnce(s *Stack, user, password string) *sip.Response {
	p.t.Helper()
	req := p.request(sip.REGISTER, s, user, user, "Expires: 600")
	req.Recipient = sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(s.Addr("udp").Port())}
	res := p.do(req)
	if res.StatusCode != 401 {
		return res
	}
	return p.answerChallenge(req, res, user, password)
}

// Wrong passwords (and forged nonces) lock the source out: after five
// failures the registrar answers 403 with Retry-After at once, without
// checking, even a correct password from an untrusted source; metrics count it.
func TestRegistrarThrottlesFailedLogins(t *testing.T) {
	ms := metrics.NewSet()
	s := startStackLog(t, t.TempDir(), `trusted: ["10.0.0.0/8"]
users:
  "1001": {password: s3cret}`, io.Discard, ms)
	ph := newPhone(t)
	var codes []int
	for range 3 {
		codes = append(codes, ph.registerOnce(s, "1001", "wrong").StatusCode)
	}
	// Forged nonces count as failures too.
	for range 3 {
		req := ph.request(sip.REGISTER, s, "1001", "1001", "Expires: 600",
			`Authorization: Digest username="1001", realm="parkpage", nonce="Zm9yZ2VkLW5vbmNlLWZvcmdlZC1ub25jZQ", uri="sip:127.0.0.1", response="00000000000000000000000000000000", algorithm=MD5`)
		req.Recipient = sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(s.Addr("udp").Port())}
		codes = append(codes, ph.do(req).StatusCode)
	}
	if want := []int{403, 403, 403, 403, 403, 403}; fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("codes %v, want %v", codes, want)
	}
	res := ph.registerOnce(s, "1001", "s3cret")
	if res.StatusCode != 403 || res.GetHeader("Retry-After") == nil || !strings.Contains(res.Reason, "too many") {
		t.Errorf("correct password from a locked-out untrusted source: %d %q", res.StatusCode, res.Reason)
	}
	if len(s.Contacts("1001")) != 0 {
		t.Error("locked-out source registered")
	}
	var b bytes.Buffer
	ms.WritePrometheus(&b)
	for _, want := range []string{`parkpage_auth_failures_total{service="sip"} 6`, `parkpage_auth_lockouts_total{service="sip"} 1`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

// A trusted phone that shares its address with a guesser still registers
// within the documented grace.
func TestRegistrarLetsTrustedSourceIn(t *testing.T) {
	s := startStack(t, t.TempDir(), `trusted: ["127.0.0.0/8"]
users:
  "1001": {password: s3cret}`)
	ph := newPhone(t)
	for range 8 {
		ph.registerOnce(s, "1001", "wrong")
	}
	start := time.Now()
	for ph.registerOnce(s, "1001", "s3cret").StatusCode != 200 {
		if time.Since(start) > time.Minute {
			t.Fatal("trusted phone kept out")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
