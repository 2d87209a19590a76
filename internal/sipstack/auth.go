package sipstack

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// authenticator is the UAS side of SIP digest authentication (RFC 3261
// 22, RFC 2617 MD5 with qop=auth). Nonces are stateless: a timestamp
// signed with a per-process key, valid for nonceLife.
type authenticator struct {
	realm string
	key   [32]byte
	now   func() time.Time
}

const nonceLife = 5 * time.Minute

func newAuthenticator(realm string) *authenticator {
	a := &authenticator{realm: realm, now: time.Now}
	_, _ = rand.Read(a.key[:])
	return a
}

func (a *authenticator) nonce() string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.now().Unix()))
	m := hmac.New(sha256.New, a.key[:])
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// nonceState: 0 ok, 1 stale (ours but expired), 2 invalid.
func (a *authenticator) checkNonce(n string) int {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 24 {
		return 2
	}
	m := hmac.New(sha256.New, a.key[:])
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil)[:16], b[8:]) {
		return 2
	}
	age := a.now().Sub(time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0))
	if age < -time.Minute || age > nonceLife {
		return 1
	}
	return 0
}

func (a *authenticator) challenge(stale bool) string {
	c := digest.Challenge{Realm: a.realm, Nonce: a.nonce(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return c.String()
}

// authResult is the outcome of checking a request's credentials.
type authResult int

const (
	authNone    authResult = iota // no credentials for our realm
	authOK                        // valid
	authStale                     // valid but for an expired nonce: re-challenge with stale=true
	authInvalid                   // wrong password, unknown user, forged nonce
)

// verify checks the Authorization header of req against passwords
// (user -> password). It returns the authenticated user on authOK.
func (a *authenticator) verify(req *sip.Request, passwords func(user string) (string, bool)) (string, authResult) {
	var hdr string
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		if h := req.GetHeader(name); h != nil {
			hdr = h.Value()
			break
		}
	}
	if hdr == "" {
		return "", authNone
	}
	cr, err := digest.ParseCredentials(hdr)
	if err != nil || cr.Realm != a.realm {
		return "", authNone
	}
	pw, ok := passwords(cr.Username)
	if !ok {
		return "", authInvalid
	}
	ns := a.checkNonce(cr.Nonce)
	if ns == 2 {
		return "", authInvalid
	}
	alg := cr.Algorithm
	if alg != "" && !strings.EqualFold(alg, "MD5") {
		return "", authInvalid
	}
	chal := &digest.Challenge{Realm: cr.Realm, Nonce: cr.Nonce, Algorithm: cr.Algorithm, Opaque: cr.Opaque}
	if cr.QOP != "" {
		chal.QOP = []string{cr.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: req.Method.String(), URI: cr.URI, Username: cr.Username,
		Password: pw, Cnonce: cr.Cnonce, Count: cr.Nc})
	if err != nil {
		return "", authInvalid
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(want.Response)), []byte(strings.ToLower(cr.Response))) != 1 {
		return "", authInvalid
	}
	if ns == 1 {
		return cr.Username, authStale
	}
	return cr.Username, authOK
}
