package sipstack

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// This file lets other packages act as a user agent client through the
// stack (the BLF watcher's SUBSCRIBEs to another PBX): their requests
// leave from the SIP port, and the NOTIFYs of their subscriptions, which
// arrive there, are handed back to them. One port, one transport layer,
// one logger for all of parkpage's SIP.

// NotifyHandler is given a NOTIFY that belongs to no dialog of the stack.
// It reports whether the NOTIFY is one of its own subscriptions; if so it
// has answered it, else it must leave req and tx untouched.
type NotifyHandler func(req *sip.Request, tx sip.ServerTransaction) bool

// notifyOwners are the NotifyHandlers, asked in the order they were added.
type notifyOwners struct {
	mu   sync.Mutex
	next int
	hs   map[int]NotifyHandler
}

// HandleNotify adds h to the owners asked about NOTIFYs outside the
// stack's dialogs; remove takes it out again. A NOTIFY no owner takes is
// answered 481, so the notifier drops the subscription (RFC 6665 §4.1.3).
func (s *Stack) HandleNotify(h NotifyHandler) (remove func()) {
	o := &s.notify
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hs == nil {
		o.hs = map[int]NotifyHandler{}
	}
	id := o.next
	o.next++
	o.hs[id] = h
	return func() {
		o.mu.Lock()
		delete(o.hs, id)
		o.mu.Unlock()
	}
}

// routeNotify offers req to the NotifyHandlers and reports whether one
// took it.
func (s *Stack) routeNotify(req *sip.Request, tx sip.ServerTransaction) bool {
	o := &s.notify
	o.mu.Lock()
	var hs []NotifyHandler
	for _, id := range slices.Sorted(maps.Keys(o.hs)) {
		hs = append(hs, o.hs[id])
	}
	o.mu.Unlock()
	for _, h := range hs {
		if h(req, tx) {
			return true
		}
	}
	return false
}

// Request sends req, a complete request out of any dialog of the stack's
// (a SUBSCRIBE, or an in-dialog request of a subscription the caller
// keeps), from the SIP port, and returns its final response. A 401 or 407
// is answered once with auth when auth.Username is set; req then carries
// the Authorization and the CSeq it was resent with. Without credentials
// the challenge is returned as the response.
func (s *Stack) Request(ctx context.Context, req *sip.Request, auth sipgo.DigestAuth) (*sip.Response, error) {
	res, err := s.do(ctx, req)
	if err != nil || auth.Username == "" || (res.StatusCode != sip.StatusUnauthorized && res.StatusCode != sip.StatusProxyAuthRequired) {
		return res, err
	}
	// req has no Via (do sent a clone) and leaves from the SIP port
	// (bindLocal set its Laddr); sipgo adds the Authorization, the next
	// CSeq and a Via.
	return s.cli.DoDigestAuth(ctx, req, res, auth)
}

// Contact is the URI of user at the stack's address, for the Contact of
// requests sent with Request: UDP when the stack listens on UDP, else
// TCP. It fails until the stack listens.
func (s *Stack) Contact(user string) (sip.Uri, error) {
	if !s.localIP.IsValid() || (s.udpAddr.Port() == 0 && s.tcpAddr.Port() == 0) {
		return sip.Uri{}, errors.New("sip: stack is not listening")
	}
	u := s.contactHeader("udp").Address
	u.User = user
	return u, nil
}
