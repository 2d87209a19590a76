package sipstack

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Presence is the dialog state of one extension (a park slot or a park
// extension) that phones watch with SUBSCRIBE Event: dialog (BLF keys).
// Every Set is sent to each subscriber in a NOTIFY at once; NOTIFYs of
// one subscription are serialised and carry increasing versions, and a
// subscriber that falls behind gets the newest state, never a stale one.
type Presence struct {
	s   *Stack
	ext string

	mu      sync.Mutex
	dialogs []DialogEntry
	subs    map[*subscription]struct{}
}

// Presence returns the presence of ext, creating it (with no dialogs:
// idle) on first use. SUBSCRIBEs to extensions without a presence get 404.
func (s *Stack) Presence(ext string) *Presence {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.presences[ext]
	if p == nil {
		p = &Presence{s: s, ext: ext, subs: map[*subscription]struct{}{}}
		s.presences[ext] = p
	}
	return p
}

// RemovePresence ends every subscription to ext and forgets it.
func (s *Stack) RemovePresence(ext string) {
	s.mu.Lock()
	p := s.presences[ext]
	delete(s.presences, ext)
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	subs := make([]*subscription, 0, len(p.subs))
	for sub := range p.subs {
		subs = append(subs, sub)
	}
	p.mu.Unlock()
	for _, sub := range subs {
		sub.terminate("noresource")
	}
}

// Set replaces the dialogs of the extension and notifies every subscriber.
func (p *Presence) Set(dialogs []DialogEntry) {
	p.mu.Lock()
	p.dialogs = append([]DialogEntry(nil), dialogs...)
	subs := make([]*subscription, 0, len(p.subs))
	for sub := range p.subs {
		subs = append(subs, sub)
	}
	p.mu.Unlock()
	for _, sub := range subs {
		sub.kick()
	}
}

// Subscribers is the number of active subscriptions.
func (p *Presence) Subscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs)
}

// Dialogs returns the dialogs last set (what a new subscriber is told).
func (p *Presence) Dialogs() []DialogEntry { return p.current() }

func (p *Presence) current() []DialogEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]DialogEntry(nil), p.dialogs...)
}

// subscription is one SUBSCRIBE dialog. Its goroutine sends NOTIFYs one at
// a time, each with the state current when it is built.
type subscription struct {
	p         *Presence
	key       string
	callID    string
	localTag  string
	remoteTag string
	local     sip.Uri // entity URI (From of our NOTIFYs)
	remote    sip.ToHeader
	target    sip.Uri // Contact of the subscriber
	routes    []string
	transport string
	source    string

	mu      sync.Mutex
	expires time.Time
	cseq    uint32
	version uint32
	ending  string // reason once terminating
	dirty   chan struct{}
	done    chan struct{}
}

func (sub *subscription) kick() {
	select {
	case sub.dirty <- struct{}{}:
	default:
	}
}

func (sub *subscription) terminate(reason string) {
	sub.mu.Lock()
	if sub.ending == "" {
		sub.ending = reason
	}
	sub.mu.Unlock()
	sub.kick()
}

// handleSubscribe serves SUBSCRIBE (new or refresh).
func (s *Stack) handleSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	to := req.To()
	if to == nil || req.From() == nil || req.CallID() == nil {
		s.respond(req, tx, 400, "")
		return
	}
	toTag, _ := to.Params.Get("tag")
	fromTag, _ := req.From().Params.Get("tag")
	if toTag != "" {
		// Refresh or unsubscribe of an existing subscription.
		v, ok := s.subs.Load(dialogKey(req.CallID().Value(), toTag, fromTag))
		if !ok {
			s.respond(req, tx, 481, "")
			return
		}
		sub := v.(*subscription)
		exp := s.subExpires(req)
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(exp)))
		res.AppendHeader(s.contactHeader(req.Transport()))
		_ = tx.Respond(res)
		if exp == 0 {
			sub.terminate("timeout")
			return
		}
		sub.mu.Lock()
		sub.expires = time.Now().Add(time.Duration(exp) * time.Second)
		sub.mu.Unlock()
		s.subsChanged()
		sub.kick() // RFC 6665: a NOTIFY follows every accepted SUBSCRIBE
		return
	}
	if !s.allowed(req, tx) {
		return
	}
	if !eventIsDialog(req) {
		res := sip.NewResponseFromRequest(req, 489, "Bad Event", nil)
		res.AppendHeader(sip.NewHeader("Allow-Events", "dialog"))
		_ = tx.Respond(res)
		return
	}
	if !acceptsDialogInfo(req) {
		s.respond(req, tx, 406, "Not Acceptable")
		return
	}
	ext := req.Recipient.User
	s.mu.Lock()
	p := s.presences[ext]
	s.mu.Unlock()
	if p == nil {
		s.respond(req, tx, 404, "")
		return
	}
	contact := req.Contact()
	if contact == nil {
		s.respond(req, tx, 400, "")
		return
	}
	exp := s.subExpires(req)
	localTag := sip.GenerateTagN(16)
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.To().Params.Add("tag", localTag)
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(exp)))
	res.AppendHeader(s.contactHeader(req.Transport()))
	if err := tx.Respond(res); err != nil {
		return
	}
	sub := &subscription{
		p: p, callID: req.CallID().Value(), localTag: localTag, remoteTag: fromTag,
		local:     sip.Uri{Scheme: "sip", User: ext, Host: s.domain()},
		remote:    req.From().AsTo(),
		target:    contact.Address,
		transport: req.Transport(),
		source:    req.Source(),
		expires:   time.Now().Add(time.Duration(exp) * time.Second),
		dirty:     make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	sub.target = *contact.Address.Clone()
	for _, rr := range req.GetHeaders("Record-Route") {
		sub.routes = append(sub.routes, rr.Value())
	}
	sub.key = dialogKey(sub.callID, localTag, fromTag)
	if exp == 0 {
		// A fetch: one NOTIFY with the state, then terminated.
		sub.ending = "timeout"
	}
	s.subs.Store(sub.key, sub)
	p.mu.Lock()
	p.subs[sub] = struct{}{}
	p.mu.Unlock()
	s.subsChanged()
	sub.kick()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sub.run(s)
	}()
}

func eventIsDialog(req *sip.Request) bool {
	for _, v := range headerValues(req, "Event") {
		name, _, _ := strings.Cut(v, ";")
		if strings.EqualFold(strings.TrimSpace(name), "dialog") {
			return true
		}
	}
	return false
}

func acceptsDialogInfo(req *sip.Request) bool {
	acc := req.GetHeaders("Accept")
	if len(acc) == 0 {
		return true
	}
	for _, h := range acc {
		for _, t := range strings.Split(h.Value(), ",") {
			t, _, _ = strings.Cut(t, ";")
			t = strings.ToLower(strings.TrimSpace(t))
			if t == ContentTypeDialogInfo || t == "*/*" || t == "application/*" {
				return true
			}
		}
	}
	return false
}

// subExpires is the granted lifetime: the requested one clamped to
// [minSubExpires, park.blf.max_expires]; 0 stays 0 (unsubscribe/fetch).
func (s *Stack) subExpires(req *sip.Request) int {
	exp := 3600
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			exp = n
		}
	}
	if exp == 0 {
		return 0
	}
	s.mu.Lock()
	maxExp := s.maxSubExpires
	s.mu.Unlock()
	return max(minSubExpires, min(exp, maxExp))
}

// minSubExpires is the shortest subscription granted (a var so tests can
// watch an expiry without waiting half a minute).
var minSubExpires = 30

// notifyTimeout bounds one NOTIFY transaction (UDP retransmits inside).
const notifyTimeout = 8 * time.Second

func (sub *subscription) run(s *Stack) {
	defer close(sub.done)
	defer func() {
		s.subsChanged()
		s.subs.Delete(sub.key)
		sub.p.mu.Lock()
		delete(sub.p.subs, sub)
		sub.p.mu.Unlock()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		sub.mu.Lock()
		until := time.Until(sub.expires)
		sub.mu.Unlock()
		if until <= 0 {
			sub.terminate("timeout")
		} else {
			timer.Reset(until)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-timer.C:
			sub.terminate("timeout")
			continue
		case <-sub.dirty:
		}
		sub.mu.Lock()
		ending := sub.ending
		sub.mu.Unlock()
		if !sub.notify(s, ending) || ending != "" {
			return
		}
	}
}

// notify sends one NOTIFY with the current state; false means the
// subscriber is gone (481, timeout, transport error) and the subscription
// is dropped.
func (sub *subscription) notify(s *Stack, ending string) bool {
	sub.mu.Lock()
	sub.version++
	sub.cseq++
	version, cseq := sub.version, sub.cseq
	s.subsDirty.Store(true)
	remaining := int(time.Until(sub.expires).Seconds())
	sub.mu.Unlock()
	info := DialogInfo{Version: uint64(version), State: "full", Entity: sub.local.String(), Dialogs: sub.p.current()}
	if len(info.Dialogs) == 0 {
		// Idle: a terminated dialog, which every phone turns off.
		info.Dialogs = []DialogEntry{{ID: sub.p.ext, State: DialogTerminated, Direction: "recipient", LocalURI: sub.local.String()}}
	}
	req := sip.NewRequest(sip.NOTIFY, *sub.target.Clone())
	from := sip.FromHeader{Address: sub.local}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sub.localTag)
	to := sub.remote
	callID := sip.CallIDHeader(sub.callID)
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.NOTIFY})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, r := range sub.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.AppendHeader(s.contactHeader(sub.transport))
	req.AppendHeader(sip.NewHeader("Event", "dialog"))
	if ending != "" {
		req.AppendHeader(sip.NewHeader("Subscription-State", "terminated;reason="+ending))
	} else {
		req.AppendHeader(sip.NewHeader("Subscription-State", fmt.Sprintf("active;expires=%d", max(remaining, 1))))
	}
	req.AppendHeader(sip.NewHeader("Content-Type", ContentTypeDialogInfo))
	body := info.Marshal()
	if strings.EqualFold(sub.transport, "udp") {
		// sipgo refuses a UDP request within 200 bytes of the MTU (RFC
		// 3261 §18.1.1) and the subscription would be dropped: a lot's
		// extension with many occupied slots must still light the key.
		// The Via the transport adds is not in req yet: keep room for it.
		req.SetBody(nil)
		budget := sip.UDPMTUSize - 200 - len(req.String()) - udpViaRoom
		var trimmed bool
		if body, trimmed = fitDialogInfo(info, budget); trimmed {
			s.log.Debug("blf: NOTIFY body trimmed to fit UDP", "ext", sub.p.ext, "dialogs", len(info.Dialogs), "bytes", len(body))
		}
	}
	req.SetBody(body)
	req.SetTransport(sub.transport)
	if len(sub.routes) == 0 {
		// Send where the SUBSCRIBE came from: phones behind NAT and PBX
		// trunks expect the reply path.
		req.SetDestination(sub.source)
	}
	ctx, cancel := context.WithTimeout(s.ctx, notifyTimeout)
	defer cancel()
	res, err := s.do(ctx, req)
	if err != nil {
		s.log.Debug("blf: NOTIFY failed, dropping subscription", "ext", sub.p.ext, "error", err)
		return false
	}
	if res.StatusCode == 481 || res.StatusCode == 404 || res.StatusCode >= 500 && res.StatusCode != 503 {
		s.log.Debug("blf: subscriber refused NOTIFY, dropping subscription", "ext", sub.p.ext, "status", res.StatusCode)
		return false
	}
	return true
}

// udpViaRoom is kept free in a UDP NOTIFY for the Via header (and the
// Content-Length digits) the transport adds when it sends.
const udpViaRoom = 160

// fitDialogInfo marshals info within budget bytes: the full document if it
// fits; else every dialog without its remote and local identities (the key
// still lights and shows its state); else as many of those as fit, at
// least one. trimmed reports whether anything was left out.
func fitDialogInfo(info DialogInfo, budget int) (body []byte, trimmed bool) {
	body = info.Marshal()
	if len(body) <= budget {
		return body, false
	}
	bare := info
	bare.Dialogs = make([]DialogEntry, len(info.Dialogs))
	for i, d := range info.Dialogs {
		bare.Dialogs[i] = DialogEntry{ID: d.ID, State: d.State, Direction: d.Direction}
	}
	for n := len(bare.Dialogs); ; n-- {
		short := bare
		short.Dialogs = bare.Dialogs[:n]
		body = short.Marshal()
		if len(body) <= budget || n <= 1 {
			return body, true
		}
	}
}
