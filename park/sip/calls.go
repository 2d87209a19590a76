package parksip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/park"
)

// parked is the SIP side of a call in a slot: the caller's dialog and
// RTP leg. After a Replaces the dialog and leg are swapped for the new
// caller's; after pickup or an answered ring-back conn is set.
type parked struct {
	s  *Server
	id park.CallID

	mu          sync.Mutex
	dlg         *sipstack.Dialog
	leg         *media.Leg
	started     time.Time
	interval    time.Duration // RFC 4028 session interval (0: none)
	lastRefresh time.Time
	conn        *connection
	gone        bool
	// consult: the leg is the parker's own consultation call of an
	// attended transfer (parked without a parker), which an INVITE with
	// Replaces takes over; for any other parked leg such an INVITE is a
	// pickup (a phone picking up a BLF target by Replaces).
	consult bool
	// jkey is the call's record in the journal.
	jkey string
}

// connection is a bridged pair of legs (caller and retriever/answerer).
type connection struct {
	once sync.Once
	dlgs [2]*sipstack.Dialog
	legs [2]*media.Leg
	br   *media.Bridge
}

func (c *connection) teardown(s *Server) {
	c.once.Do(func() {
		if c.br != nil {
			c.br.Close()
		}
		for _, l := range c.legs {
			if l != nil {
				l.Close()
			}
		}
		for _, d := range c.dlgs {
			if d == nil {
				continue
			}
			s.goTracked(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = d.Hangup(ctx)
			})
		}
	})
}

func toParty(id sipstack.Identity) park.Party {
	return park.Party{Display: id.Display, URI: id.URI, User: id.User}
}

// callInfo collects what privacy rules look at.
func (s *Server) callInfo(call *sipstack.IncomingCall, caller park.Party) park.CallInfo {
	req := call.Request
	ci := park.CallInfo{Calling: caller.User, Source: call.Source.Addr(),
		Header: func(name string) []string { return sipstack.HeaderValues(req, name) }}
	// The number the caller dialled: P-Called-Party-ID, else the first
	// History-Info entry, else nothing (the park extension is not it).
	if id, ok := sipstack.HeaderIdentity(req, "P-Called-Party-ID"); ok {
		ci.Called = id.User
	} else if id, ok := sipstack.HeaderIdentity(req, "History-Info"); ok {
		ci.Called = id.User
	}
	return ci
}

// legFor makes the RTP leg for an incoming INVITE and its SDP answer (or
// our offer, for an INVITE without SDP). A non-zero code is the response
// to refuse the call with.
func (s *Server) legFor(call *sipstack.IncomingCall) (*media.Leg, []byte, int) {
	leg, err := s.media.NewLeg(media.LegOptions{})
	if err != nil {
		s.log.Error("no RTP port for a call", "error", err)
		return nil, nil, 503
	}
	body := call.Request.Body()
	if len(body) == 0 {
		return leg, leg.Offer(), 0 // late offer: the answer comes in the ACK
	}
	ans, err := leg.Answer(body)
	if err != nil {
		leg.Close()
		if errors.Is(err, media.ErrNoCodec) {
			return nil, nil, 488
		}
		return nil, nil, 400
	}
	return leg, ans, 0
}

// sessionTimer reads RFC 4028 Session-Expires from an INVITE. It returns
// the headers for the 2xx, the interval to watch, or a 422 refusal.
func (s *Server) sessionTimer(req *sip.Request) (hdrs []sip.Header, interval time.Duration, reject []sip.Header) {
	vals := sipstack.HeaderValues(req, "Session-Expires")
	if len(vals) == 0 {
		return nil, 0, nil
	}
	num, _, _ := strings.Cut(vals[0], ";")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n <= 0 {
		return nil, 0, nil
	}
	minSE := int(s.opt.MinSE.Seconds())
	if n < minSE {
		return nil, 0, []sip.Header{sip.NewHeader("Min-SE", strconv.Itoa(minSE))}
	}
	if !sipstack.HasToken(req, "Supported", "timer") {
		return nil, 0, nil // the caller cannot refresh; do without a timer
	}
	d := time.Duration(n) * time.Second
	return []sip.Header{
		sip.NewHeader("Session-Expires", strconv.Itoa(n)+";refresher=uac"),
		sip.NewHeader("Require", "timer"),
	}, d, nil
}

// identityHeaders show the caller to a retriever or answerer.
func identityHeaders(c park.Party) []sip.Header {
	if c.URI == "" {
		return nil
	}
	id := sipstack.Identity{Display: c.Display, URI: c.URI}
	return []sip.Header{sip.NewHeader("P-Asserted-Identity", id.String()), sip.NewHeader("Remote-Party-ID", id.String()+";party=calling;screen=yes;privacy=off")}
}

func (s *Server) onInvite(call *sipstack.IncomingCall) {
	req := call.Request
	cfg := s.cfg.Load()
	caller := toParty(sipstack.CallerIdentity(req))
	info := s.callInfo(call, caller)
	if rh := req.GetHeader("Replaces"); rh != nil {
		s.onReplaces(call, rh.Value(), caller, info)
		return
	}
	parkerID, hasParker := sipstack.HeaderIdentity(req, "Referred-By")
	if !hasParker && cfg.SIP.ParkerHeader != "" {
		parkerID, hasParker = sipstack.HeaderIdentity(req, cfg.SIP.ParkerHeader)
	}
	r := park.ParkRequest{Ext: call.Ext, Caller: caller, Info: info}
	if hasParker {
		r.Parker = toParty(parkerID)
	}
	switch s.park.Kind(call.Ext) {
	case park.ExtLot:
		// Without Referred-By this is either the parker's consultation
		// call of an attended transfer or a PBX that dropped the header:
		// either way the call is parked, and hears its slot number.
		s.parkCall(call, r, !hasParker)
	case park.ExtSlot:
		if hasParker {
			s.parkCall(call, r, false)
			return
		}
		if st, _ := s.park.Slot(call.Ext); st.State != park.StateFree {
			s.pickup(call)
			return
		}
		if s.justRetrieved(call.Ext) {
			// A retriever that lost a race (or pressed a key twice): the
			// call is gone, not a consultation.
			if s.bus != nil {
				s.bus.Publish(events.Event{Type: events.CallRefused, Slot: call.Ext,
					Retriever: toParty(sipstack.CallerIdentity(req)).String(), Reason: park.ErrEmpty.Error() + " (already picked up)"})
			}
			_ = call.Respond(404, "Call Already Picked Up")
			return
		}
		if s.park.OnEmptyConsult(call.Ext) {
			s.consultCall(call, caller)
			return
		}
		_ = call.Respond(404, "No Call Parked")
	default:
		_ = call.Respond(404, "")
	}
}

// parkCall parks an incoming call. attended: the caller may be a parker
// consulting (speak the slot, and speak refusals in early media).
func (s *Server) parkCall(call *sipstack.IncomingCall, r park.ParkRequest, attended bool) {
	hdrs, interval, reject := s.sessionTimer(call.Request)
	if reject != nil {
		_ = call.Respond(422, "Session Interval Too Small", reject...)
		return
	}
	leg, ans, code := s.legFor(call)
	if code != 0 {
		_ = call.Respond(code, "")
		return
	}
	c, err := s.park.Park(r)
	if err != nil {
		code := park.SIPStatus(err)
		if attended && len(call.Request.Body()) > 0 {
			if text := errPrompt(err); text != "" {
				s.earlyPrompt(call, leg, ans, text)
			}
		}
		leg.Close()
		_ = call.Respond(code, strings.ToUpper(reasonOf(err)[:1])+reasonOf(err)[1:])
		s.log.Info("park refused", "ext", r.Ext, "caller", r.Caller.String(), "status", code, "reason", reasonOf(err))
		return
	}
	now := time.Now()
	p := &parked{s: s, id: c.ID, dlg: call.Dialog, leg: leg, started: now, interval: interval, lastRefresh: now, consult: attended, jkey: newJournalKey()}
	s.mu.Lock()
	s.calls[c.ID] = p
	s.mu.Unlock()
	p.attach(call.Dialog, leg)
	s.journalCall(c.ID) // on disk before the 200 OK
	if err := call.Answer(ans, hdrs...); err != nil {
		p.ended(call.Dialog, "not answered: "+err.Error())
		return
	}
	leg.PlayMusic()
	// After the music: a late answer's new timeout is journaled, and the
	// caller must not wait on that flush in silence.
	s.park.Answered(c.ID)
	s.log.Info("call parked", "slot", c.Slot, "caller", c.Caller.String(), "parker", c.Parker.String())
	if attended {
		s.sayOn(leg, announce.SpeakNumber(c.Slot))
	}
}

// attach makes p own dialog d and leg: re-INVITEs renegotiate the leg,
// refreshes restart the session timer, and the end of the dialog ends the
// parked call (unless p has moved to another dialog meanwhile).
func (p *parked) attach(d *sipstack.Dialog, leg *media.Leg) {
	d.SetHandler(sipstack.DialogHandler{
		Reinvite: func(req *sip.Request) sipstack.Reply {
			rep := p.s.reinvite(req, leg, func() { p.refreshed() })
			if len(req.Body()) > 0 {
				p.s.journalCall(p.id) // the remote's address or codec may have changed
			}
			return rep
		},
		Request: p.s.inDialogRequest,
		Ack:     func(req *sip.Request) { lateAnswer(req, leg) },
		Ended:   func(reason string) { p.ended(d, reason) },
	})
}

func lateAnswer(req *sip.Request, leg *media.Leg) {
	if len(req.Body()) > 0 {
		if _, ok := leg.Negotiated(); !ok {
			_ = leg.SetAnswer(req.Body())
		}
	}
}

func (p *parked) refreshed() {
	p.mu.Lock()
	p.lastRefresh = time.Now()
	p.mu.Unlock()
}

// reinvite answers a re-INVITE/UPDATE on a leg we hold.
func (s *Server) reinvite(req *sip.Request, leg *media.Leg, refreshed func()) sipstack.Reply {
	if refreshed != nil {
		refreshed()
	}
	var hdrs []sip.Header
	if vals := sipstack.HeaderValues(req, "Session-Expires"); len(vals) > 0 {
		num, _, _ := strings.Cut(vals[0], ";")
		if n, err := strconv.Atoi(strings.TrimSpace(num)); err == nil && n > 0 {
			hdrs = append(hdrs, sip.NewHeader("Session-Expires", strconv.Itoa(n)+";refresher=uac"))
			if sipstack.HasToken(req, "Supported", "timer") {
				hdrs = append(hdrs, sip.NewHeader("Require", "timer"))
			}
		}
	}
	body := req.Body()
	if len(body) == 0 {
		if req.Method == sip.UPDATE {
			return sipstack.Reply{Code: 200, Headers: hdrs}
		}
		return sipstack.Reply{Code: 200, SDP: leg.CurrentAnswer(), Headers: hdrs}
	}
	ans, err := leg.Answer(body)
	if err != nil {
		return sipstack.Reply{Code: 488}
	}
	return sipstack.Reply{Code: 200, SDP: ans, Headers: hdrs}
}

// inDialogRequest answers INFO (DTMF relays are ignored), and refuses
// REFER from a parked or bridged leg: parkpage does not transfer.
func (s *Server) inDialogRequest(req *sip.Request) sipstack.Reply {
	if req.Method == sip.REFER {
		return sipstack.Reply{Code: 403, Reason: "Forbidden (parkpage does not accept REFER)"}
	}
	return sipstack.Reply{Code: 200}
}

// ended handles the end of dialog d of p.
func (p *parked) ended(d *sipstack.Dialog, reason string) {
	p.mu.Lock()
	if p.dlg != d || p.gone {
		p.mu.Unlock()
		return
	}
	conn := p.conn
	p.gone = true
	leg := p.leg
	p.mu.Unlock()
	if conn != nil {
		conn.teardown(p.s)
		return
	}
	p.s.mu.Lock()
	delete(p.s.calls, p.id)
	p.s.mu.Unlock()
	why := "caller hung up"
	if reason != "remote hangup" {
		why = "caller gone: " + reason
	}
	p.s.park.Hangup(p.id, why)
	leg.Close()
}

// hangup ends a parked call from our side.
func (p *parked) hangup(ctx context.Context, reason string) {
	p.mu.Lock()
	if p.gone {
		conn := p.conn
		p.mu.Unlock()
		if conn != nil {
			conn.teardown(p.s)
		}
		return
	}
	p.gone = true
	d, leg := p.dlg, p.leg
	p.mu.Unlock()
	p.s.mu.Lock()
	delete(p.s.calls, p.id)
	p.s.mu.Unlock()
	p.s.park.Hangup(p.id, reason)
	leg.Close()
	_ = d.Hangup(ctx)
}

// connect bridges the parked caller to another leg (retriever or
// answerer). It fails if the caller has gone meanwhile.
func (p *parked) connect(other *media.Leg, otherDlg *sipstack.Dialog) (*connection, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return nil, errors.New("the parked caller hung up")
	}
	// NewBridge stops the music itself once the bridge stands; stopping it
	// here first left a caller whose bridge failed in silence.
	br, err := media.NewBridge(p.leg, other)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	c := &connection{dlgs: [2]*sipstack.Dialog{p.dlg, otherDlg}, legs: [2]*media.Leg{p.leg, other}, br: br}
	p.conn = c
	p.s.mu.Lock()
	delete(p.s.calls, p.id)
	p.s.mu.Unlock()
	return c, nil
}

// pickup connects a plain INVITE to an occupied slot with the parked call.
func (s *Server) pickup(call *sipstack.IncomingCall) { s.pickupSlot(call, call.Ext) }

// pickupSlot connects call with the call parked in slot.
func (s *Server) pickupSlot(call *sipstack.IncomingCall, slot string) {
	retr := toParty(sipstack.CallerIdentity(call.Request))
	if call.AuthUser != "" {
		retr.User = call.AuthUser
	}
	leg, ans, code := s.legFor(call)
	if code != 0 {
		_ = call.Respond(code, "")
		return
	}
	c, err := s.park.Retrieve(slot, retr)
	if err != nil {
		leg.Close()
		code := park.SIPStatus(err)
		_ = call.Respond(code, "")
		s.log.Info("pickup refused", "slot", slot, "retriever", retr.String(), "status", code, "reason", reasonOf(err))
		return
	}
	s.mu.Lock()
	p := s.calls[c.ID]
	s.mu.Unlock()
	if p == nil {
		leg.Close()
		s.park.Unretrieve(c.ID, "parked leg missing")
		_ = call.Respond(480, "")
		s.log.Warn("pickup refused: parked leg missing", "slot", c.Slot, "retriever", retr.String())
		return
	}
	var conn *connection
	var connMu sync.Mutex
	// acked is closed once the ACK has been handled: its SDP is the
	// answer to a late offer, which the bridge needs. The stack confirms
	// the dialog (Answer returns) before it runs the Ack handler.
	acked := make(chan struct{})
	var ackOnce sync.Once
	call.SetHandler(sipstack.DialogHandler{
		Reinvite: func(req *sip.Request) sipstack.Reply { return s.reinvite(req, leg, nil) },
		Request:  s.inDialogRequest,
		Ack: func(req *sip.Request) {
			lateAnswer(req, leg)
			ackOnce.Do(func() { close(acked) })
		},
		Ended: func(string) {
			connMu.Lock()
			cn := conn
			connMu.Unlock()
			if cn != nil {
				cn.teardown(s)
			}
		},
	})
	// fail handles every failure once the 200 OK has gone to the
	// retriever: the retriever is told (BYE; nothing is sent if its dialog
	// already ended), the caller goes back to its slot with hold music, and
	// the reason is logged.
	fail := func(reason string) {
		leg.Close()
		s.hangupLater(call.Dialog)
		p.backToMusic()
		s.park.Unretrieve(c.ID, reason)
		s.log.Warn("pickup failed after answering the retriever", "slot", c.Slot, "caller", c.Caller.String(),
			"retriever", retr.String(), "reason", reason)
	}
	err = call.Answer(ans, identityHeaders(c.Caller)...)
	if err == nil && s.opt.pickupAnswered != nil {
		err = s.opt.pickupAnswered(call)
	}
	if err != nil {
		fail("retriever's answer not completed: " + err.Error())
		return
	}
	if _, ok := leg.Negotiated(); !ok {
		select {
		case <-acked:
		case <-call.Done():
		case <-time.After(5 * time.Second):
		}
	}
	cn, err := p.connect(leg, call.Dialog)
	if err != nil {
		fail(err.Error())
		return
	}
	connMu.Lock()
	conn = cn
	connMu.Unlock()
	select {
	case <-call.Done(): // the retriever hung up while we were connecting
		cn.teardown(s)
	default:
	}
	s.park.Retrieved(c.ID)
	s.markRetrieved(c.Slot)
	s.log.Info("call retrieved", "slot", c.Slot, "caller", c.Caller.String(), "retriever", retr.String())
}

// backToMusic restarts the hold music of a caller whose connection to a
// retriever or answerer failed (it is still parked unless it hung up).
func (p *parked) backToMusic() {
	p.mu.Lock()
	leg, gone := p.leg, p.gone || p.conn != nil
	p.mu.Unlock()
	if !gone {
		leg.PlayMusic()
	}
}

func (s *Server) hangupLater(d *sipstack.Dialog) {
	s.goTracked(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Hangup(ctx)
	})
}

// consult is the consultation leg of an attended transfer to an empty slot.
type consult struct {
	dlg  *sipstack.Dialog
	leg  *media.Leg
	slot string
	from park.Party
}

// consultCall answers a plain call to an empty slot: the parker hears
// "seven oh four is free"; completing the transfer (INVITE with Replaces
// naming this dialog) parks the caller there.
func (s *Server) consultCall(call *sipstack.IncomingCall, from park.Party) {
	leg, ans, code := s.legFor(call)
	if code != 0 {
		_ = call.Respond(code, "")
		return
	}
	cs := &consult{dlg: call.Dialog, leg: leg, slot: call.Ext, from: from}
	s.mu.Lock()
	s.consults[call.Key()] = cs
	s.mu.Unlock()
	call.SetHandler(sipstack.DialogHandler{
		Reinvite: func(req *sip.Request) sipstack.Reply { return s.reinvite(req, leg, nil) },
		Request:  s.inDialogRequest,
		Ack:      func(req *sip.Request) { lateAnswer(req, leg) },
		Ended: func(string) {
			s.mu.Lock()
			delete(s.consults, call.Key())
			s.mu.Unlock()
			leg.Close()
		},
	})
	if err := call.Answer(ans); err != nil {
		return
	}
	s.sayOn(leg, announce.SpeakNumber(cs.slot)+" is free")
}

// onReplaces completes an attended transfer: the INVITE's caller takes
// the place of the parker's consultation leg (a call parked via the park
// extension, or a consultation of an empty slot), and that leg is hung up.
func (s *Server) onReplaces(call *sipstack.IncomingCall, value string, caller park.Party, info park.CallInfo) {
	rep, err := sipstack.ParseReplaces(value)
	if err != nil {
		_ = call.Respond(400, "Bad Replaces Header")
		return
	}
	d, ok := s.stack.FindDialog(rep)
	if !ok {
		_ = call.Respond(481, "")
		return
	}
	var p *parked
	s.mu.Lock()
	for _, x := range s.calls {
		x.mu.Lock()
		if x.dlg == d && !x.gone {
			p = x
		}
		x.mu.Unlock()
	}
	cs := s.consults[d.Key()]
	s.mu.Unlock()
	if p == nil && cs == nil {
		_ = call.Respond(481, "")
		return
	}
	if p != nil {
		p.mu.Lock()
		isConsult := p.consult
		p.mu.Unlock()
		if !isConsult {
			// Replaces naming a parked caller's own dialog: a phone picking
			// the call up (as from a BLF key), never a reason to drop it.
			if c, ok := s.park.Call(p.id); ok {
				s.pickupSlot(call, c.Slot)
				return
			}
			_ = call.Respond(481, "")
			return
		}
	}
	hdrs, interval, reject := s.sessionTimer(call.Request)
	if reject != nil {
		_ = call.Respond(422, "Session Interval Too Small", reject...)
		return
	}
	leg, ans, code := s.legFor(call)
	if code != 0 {
		_ = call.Respond(code, "")
		return
	}
	refuse := func(err error, heard *media.Leg) {
		leg.Close()
		if text := errPrompt(err); text != "" && heard != nil {
			s.sayOn(heard, text) // the parker, still on the consultation leg, hears why
		}
		_ = call.Respond(park.SIPStatus(err), "")
		s.log.Info("attended park refused", "caller", caller.String(), "reason", reasonOf(err))
	}
	now := time.Now()
	if p != nil {
		p.mu.Lock()
		oldLeg := p.leg
		p.mu.Unlock()
		c, err := s.park.Replace(p.id, caller, info)
		if err != nil {
			refuse(err, oldLeg)
			return
		}
		p.mu.Lock()
		oldDlg := p.dlg
		p.dlg, p.leg, p.started, p.interval, p.lastRefresh = call.Dialog, leg, now, interval, now
		p.consult = false
		p.mu.Unlock()
		p.attach(call.Dialog, leg)
		s.journalCall(p.id)
		oldLeg.Close()
		s.hangupLater(oldDlg)
		if err := call.Answer(ans, hdrs...); err != nil {
			p.ended(call.Dialog, "not answered: "+err.Error())
			return
		}
		leg.PlayMusic()
		s.log.Info("call parked (attended)", "slot", c.Slot, "caller", c.Caller.String(), "parker", c.Parker.String())
		return
	}
	c, err := s.park.Park(park.ParkRequest{Ext: cs.slot, Caller: caller, Parker: cs.from, Info: info})
	if err != nil {
		refuse(err, cs.leg)
		return
	}
	np := &parked{s: s, id: c.ID, dlg: call.Dialog, leg: leg, started: now, interval: interval, lastRefresh: now, jkey: newJournalKey()}
	s.mu.Lock()
	s.calls[c.ID] = np
	s.mu.Unlock()
	np.attach(call.Dialog, leg)
	s.journalCall(c.ID)
	s.hangupLater(cs.dlg)
	if err := call.Answer(ans, hdrs...); err != nil {
		np.ended(call.Dialog, "not answered: "+err.Error())
		return
	}
	leg.PlayMusic()
	s.park.Answered(c.ID)
	s.log.Info("call parked (attended)", "slot", c.Slot, "caller", c.Caller.String(), "parker", c.Parker.String())
}

// earlyPrompt plays text in early media (183) before a refusal, so an
// attended parker hears why while a blind transfer simply fails back.
func (s *Server) earlyPrompt(call *sipstack.IncomingCall, leg *media.Leg, ans []byte, text string) {
	pcm := s.prompt(text)
	if len(pcm) == 0 {
		return
	}
	if err := call.Progress(ans); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		select {
		case <-call.Done():
			cancel()
		case <-done:
		}
	}()
	_ = leg.Play(ctx, pcm)
	close(done)
}

// sayOn speaks text on a leg in front of its music, without waiting.
func (s *Server) sayOn(leg *media.Leg, text string) {
	s.goTracked(func() {
		if pcm := s.prompt(text); len(pcm) > 0 {
			_ = leg.Play(s.ctx, pcm)
		}
	})
}

// prompt synthesises text once and caches it.
func (s *Server) prompt(text string) []int16 {
	if s.speak == nil || text == "" {
		return nil
	}
	s.promptMu.Lock()
	defer s.promptMu.Unlock()
	if pcm, ok := s.prompts[text]; ok {
		return pcm
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	pcm, err := s.speak.Synthesize(ctx, text)
	if err != nil {
		s.log.Warn("prompt not synthesised", "text", text, "error", err)
		return nil
	}
	if len(s.prompts) > 256 {
		clear(s.prompts)
	}
	s.prompts[text] = pcm
	return pcm
}

// whisperText renders park.whisper for a call.
func whisperText(tmpl string, c *park.Call) string {
	if tmpl == "" {
		return ""
	}
	caller := c.Caller.Display
	if caller == "" {
		caller = c.Caller.User
	}
	parker := c.Parker.Display
	if parker == "" {
		parker = c.Parker.User
	}
	tmpl = strings.ReplaceAll(tmpl, "{lot}", c.Lot)
	out, err := announce.Phrase(tmpl, announce.Fields{Slot: c.Slot, Label: c.Label, Caller: caller, Parker: parker})
	if err != nil {
		return fmt.Sprintf("returning call from %s", announce.SpeakNumber(c.Slot))
	}
	return out
}

// lateRetrieveWindow is how long after a pickup a plain call to the
// emptied slot counts as a late retriever (404) rather than a consultation.
const lateRetrieveWindow = 5 * time.Second

func (s *Server) markRetrieved(slot string) {
	s.mu.Lock()
	s.retrievedAt[slot] = time.Now()
	s.mu.Unlock()
}

func (s *Server) justRetrieved(slot string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.retrievedAt[slot]
	if ok && time.Since(t) > lateRetrieveWindow {
		delete(s.retrievedAt, slot)
		return false
	}
	return ok
}
