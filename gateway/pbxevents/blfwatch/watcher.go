package blfwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// Defaults for Options and config.BLFWatch.
const (
	// DefaultExpires is the subscription lifetime asked for when
	// external.blf.expires is unset.
	DefaultExpires        = 600 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultNotifyTimeout  = 10 * time.Second
	DefaultMinRetry       = 2 * time.Second
	DefaultMaxRetry       = 2 * time.Minute
	// MaxSlots bounds external.blf.slots: each slot is a subscription.
	MaxSlots = 200
)

// Requester sends the watcher's SUBSCRIBEs and returns their final
// responses, answering a digest challenge with auth when auth.Username is
// set (then req carries the CSeq it was resent with). It must send from the
// transport on which the PBX's NOTIFYs arrive. *sipstack.Stack is one.
type Requester interface {
	Request(ctx context.Context, req *sip.Request, auth sipgo.DigestAuth) (*sip.Response, error)
}

// Options configures a Watcher beyond config.BLFWatch.
type Options struct {
	// SIP sends the SUBSCRIBEs; required.
	SIP Requester
	// Contact is where the PBX sends NOTIFYs (our Contact header), an IP
	// address the PBX can reach; required.
	Contact sip.Uri
	// Sink receives the park events; required. See pbxevents.Sink.
	Sink pbxevents.Sink
	// Mapper maps the PBX's slots to local ones; nil: identity.
	Mapper *pbxevents.SlotMapper
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// RequestTimeout bounds one SUBSCRIBE, digest retry included; a PBX
	// that does not answer a refresh within it is taken for dead. Default
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// NotifyTimeout is how long after an accepted SUBSCRIBE the PBX may take
	// to send its NOTIFY (RFC 6665 wants one at once). Default
	// DefaultNotifyTimeout.
	NotifyTimeout time.Duration
	// MinRetry and MaxRetry bound the wait before a failed or ended
	// subscription is replaced: it doubles per consecutive failure and is
	// jittered to between half and all of that. Defaults DefaultMinRetry,
	// DefaultMaxRetry.
	MinRetry, MaxRetry time.Duration
}

// Watcher subscribes to a PBX's park slots. Create it with New, run it with
// Run, and route NOTIFYs to OnNotify or HandleNotify.
type Watcher struct {
	cfg     config.BLFWatch
	opts    Options
	log     *slog.Logger
	dest    string // host:port of cfg.Server, where out-of-dialog SUBSCRIBEs go
	from    sip.Uri
	expires time.Duration
	slots   []*slot
	running atomic.Bool

	// emitMu orders NOTIFY processing with the Sink calls it causes, so
	// events reach the Sink in the order the PBX reported them.
	emitMu sync.Mutex
	mu     sync.Mutex
	subs   map[string]*subscription // live subscriptions by Call-ID
}

// slot is one watched park slot.
type slot struct {
	ext, local string
	uri        sip.Uri       // Request-URI and To of the first SUBSCRIBE
	wake       chan struct{} // the NOTIFY handler asks the slot's loop to look at its subscription
	logUp      int           // last logged state: 0 none, 1 up, -1 down; slot loop only

	// Under Watcher.mu. The slot's state outlives its subscriptions.
	occupied bool
	caller   string
}

// subscription is one SUBSCRIBE dialog (one Call-ID). Its fields are under
// Watcher.mu.
type subscription struct {
	slot      *slot
	callID    string
	localTag  string
	remoteTag string
	cseq      uint32
	target    *sip.Uri  // remote target (the PBX's Contact); nil until known
	routes    []sip.Uri // route set from the 2xx's Record-Route
	routed    bool      // route set taken

	notified    bool // a NOTIFY arrived since the last SUBSCRIBE went out
	everNotify  bool
	haveVersion bool
	version     uint64
	dialogs     map[string]sipstack.DialogEntry // active dialogs, by id
	needFull    bool                            // a partial NOTIFY skipped a version: refresh for full state
	expiresAt   time.Time                       // from the last NOTIFY's Subscription-State
	ended       error                           // set by a terminating NOTIFY
}

// New checks cfg and returns a Watcher; it sends nothing until Run.
func New(cfg config.BLFWatch, opts Options) (*Watcher, error) {
	if opts.SIP == nil {
		return nil, errors.New("blf: no sip stack")
	}
	if ip := net.ParseIP(opts.Contact.Host); ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("blf: contact %q: need the IP address the pbx can reach, not a name or a wildcard", opts.Contact.Host)
	}
	if opts.Sink == nil {
		return nil, errors.New("blf: no sink")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	setDefault(&opts.RequestTimeout, DefaultRequestTimeout)
	setDefault(&opts.NotifyTimeout, DefaultNotifyTimeout)
	setDefault(&opts.MinRetry, DefaultMinRetry)
	setDefault(&opts.MaxRetry, DefaultMaxRetry)
	if opts.MaxRetry < opts.MinRetry {
		opts.MaxRetry = opts.MinRetry
	}

	server, err := parseServer(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("blf: server %q: %w", cfg.Server, err)
	}
	if cfg.Slots.Last < cfg.Slots.First || (cfg.Slots.First == 0 && cfg.Slots.Last == 0) {
		return nil, errors.New("blf: no slots")
	}
	if cfg.Slots.Len() > MaxSlots {
		return nil, fmt.Errorf("blf: %d slots, at most %d", cfg.Slots.Len(), MaxSlots)
	}
	tmpl := cfg.URI
	if tmpl == "" {
		tmpl = "sip:{slot}@" + server.Host
		if server.Port > 0 {
			tmpl += ":" + strconv.Itoa(server.Port)
		}
	}
	w := &Watcher{
		cfg:     cfg,
		opts:    opts,
		log:     opts.Logger.With("source", pbxevents.SourceBLF),
		dest:    net.JoinHostPort(server.Host, strconv.Itoa(portOr(server.Port, 5060))),
		expires: cfg.Expires.D(),
		subs:    map[string]*subscription{},
	}
	if w.expires <= 0 {
		w.expires = DefaultExpires
	}
	w.expires = max(w.expires.Round(time.Second), time.Second)
	for n := cfg.Slots.First; n <= cfg.Slots.Last; n++ {
		ext := strconv.Itoa(n)
		var uri sip.Uri
		if err := sip.ParseUri(strings.ReplaceAll(tmpl, "{slot}", ext), &uri); err != nil || uri.Host == "" {
			return nil, fmt.Errorf("blf: uri %q for slot %s: not a sip uri", tmpl, ext)
		}
		w.slots = append(w.slots, &slot{ext: ext, local: opts.Mapper.Local(ext), uri: uri, wake: make(chan struct{}, 1)})
	}
	user := cfg.Username
	if user == "" {
		user = "parkpage"
	}
	w.from = sip.Uri{Scheme: "sip", User: user, Host: w.slots[0].uri.Host}
	return w, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func portOr(p, def int) int {
	if p > 0 {
		return p
	}
	return def
}

// parseServer reads "sip:pbx.lan:5060", "pbx.lan:5060" or "pbx.lan".
func parseServer(s string) (sip.Uri, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return sip.Uri{}, errors.New("empty")
	}
	if !strings.HasPrefix(strings.ToLower(s), "sip:") {
		s = "sip:" + s
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return sip.Uri{}, err
	}
	if u.Host == "" {
		return sip.Uri{}, errors.New("no host")
	}
	return u, nil
}

// Run subscribes to every slot and keeps the subscriptions alive until ctx
// ends; it then unsubscribes (best effort, briefly) and returns nil. Failures
// are retried forever, logged once per slot and change of state.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("blf: run called twice")
	}
	var wg sync.WaitGroup
	for _, s := range w.slots {
		wg.Go(func() { w.runSlot(ctx, s) })
	}
	wg.Wait()
	return nil
}

// runSlot keeps one slot subscribed: each pass is one subscription (one
// Call-ID), replaced after a delay when it ends.
func (w *Watcher) runSlot(ctx context.Context, s *slot) {
	failures := 0
	for {
		sub := w.newSubscription(s)
		start := time.Now()
		err := w.hold(ctx, sub)
		w.mu.Lock()
		delete(w.subs, sub.callID)
		worked := sub.everNotify
		w.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if worked && time.Since(start) >= w.opts.MaxRetry {
			// A subscription that lasted: start again from MinRetry. One
			// the PBX ends at once keeps backing off, so a flapping PBX is
			// not hammered.
			failures = 0
		}
		delay := pbxevents.Backoff(failures, w.opts.MinRetry, w.opts.MaxRetry)
		failures++
		if ra := retryAfter(err); ra > delay {
			delay = ra
		}
		w.logState(s, -1, "blf subscription lost; resubscribing", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// logState logs msg when the slot's state changes and at debug level when
// it does not.
func (w *Watcher) logState(s *slot, up int, msg string, args ...any) {
	level := slog.LevelWarn
	if up > 0 {
		level = slog.LevelInfo
	}
	if s.logUp == up {
		level = slog.LevelDebug
	}
	s.logUp = up
	w.log.Log(context.Background(), level, msg, append([]any{"slot", s.ext}, args...)...)
}

func (w *Watcher) newSubscription(s *slot) *subscription {
	sub := &subscription{
		slot:     s,
		callID:   sip.GenerateTagN(24) + "@parkpage",
		localTag: sip.GenerateTagN(16),
		cseq:     rand.Uint32N(10000) + 1,
	}
	w.mu.Lock()
	w.subs[sub.callID] = sub // before the SUBSCRIBE: its NOTIFY may beat its 2xx
	w.mu.Unlock()
	return sub
}

// hold establishes sub and keeps it refreshed until it fails or ctx ends.
func (w *Watcher) hold(ctx context.Context, sub *subscription) error {
	granted, err := w.subscribe(ctx, sub, w.expires)
	if err != nil {
		return err
	}
	w.logState(sub.slot, 1, "blf subscribed", "uri", sub.slot.uri.String(), "expires", granted)
	refreshAt := time.Now().Add(refreshDelay(granted))
	refresh := time.NewTimer(time.Until(refreshAt))
	defer refresh.Stop()
	noNotify := time.NewTimer(w.opts.NotifyTimeout)
	defer noNotify.Stop()
	for {
		select {
		case <-ctx.Done():
			w.unsubscribe(ctx, sub)
			return ctx.Err()
		case <-sub.slot.wake:
			w.mu.Lock()
			ended, needFull, expiresAt := sub.ended, sub.needFull, sub.expiresAt
			sub.needFull = false
			w.mu.Unlock()
			if ended != nil {
				return ended
			}
			at := refreshAt
			if needFull {
				at = time.Now()
			} else if !expiresAt.IsZero() {
				// The NOTIFY's expires: the notifier may shorten the lifetime.
				at = time.Now().Add(refreshDelay(time.Until(expiresAt)))
			}
			if at.Before(refreshAt) {
				refreshAt = at
				refresh.Reset(time.Until(refreshAt))
			}
		case <-refresh.C:
			granted, err := w.subscribe(ctx, sub, w.expires)
			if err != nil {
				return fmt.Errorf("refresh: %w", err)
			}
			refreshAt = time.Now().Add(refreshDelay(granted))
			refresh.Reset(time.Until(refreshAt))
			noNotify.Reset(w.opts.NotifyTimeout)
		case <-noNotify.C:
			w.mu.Lock()
			notified := sub.notified
			w.mu.Unlock()
			if !notified {
				return ErrNoNotify
			}
		}
	}
}

// refreshDelay is when to refresh a subscription granted for d: halfway
// for short ones, a minute before the end for long ones.
func refreshDelay(d time.Duration) time.Duration {
	if d > 2*time.Minute {
		return d - time.Minute
	}
	return max(d/2, 0)
}

// subscribe sends one SUBSCRIBE on sub (the first one, or an in-dialog
// refresh) and returns the granted lifetime.
func (w *Watcher) subscribe(ctx context.Context, sub *subscription, expires time.Duration) (time.Duration, error) {
	for tries := 0; ; tries++ {
		req := w.request(sub, expires)
		rctx, cancel := context.WithTimeout(ctx, w.opts.RequestTimeout)
		res, err := w.send(rctx, sub, req)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("subscribe %s: %w", sub.slot.uri.Addr(), err)
		}
		switch {
		case (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) && w.cfg.Username == "":
			return 0, ErrNoCredentials
		case res.IsSuccess():
			return w.accepted(sub, res, expires), nil
		case res.StatusCode == sip.StatusCallTransactionDoesNotExists:
			return 0, ErrGone
		case res.StatusCode == sip.StatusIntervalToBrief && tries == 0:
			if h := res.GetHeader("Min-Expires"); h != nil {
				if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
					expires = time.Duration(n) * time.Second
					continue
				}
			}
		}
		return 0, fmt.Errorf("subscribe %s: %d %s", sub.slot.uri.Addr(), res.StatusCode, res.Reason)
	}
}

// send sends req, a SUBSCRIBE of sub, answering a digest challenge with
// the configured user.
func (w *Watcher) send(ctx context.Context, sub *subscription, req *sip.Request) (*sip.Response, error) {
	res, err := w.opts.SIP.Request(ctx, req, sipgo.DigestAuth{Username: w.cfg.Username, Password: w.cfg.Password})
	w.mu.Lock()
	sub.cseq = max(sub.cseq, req.CSeq().SeqNo) // an answered challenge resent it with the next CSeq
	w.mu.Unlock()
	return res, err
}

// request builds the next SUBSCRIBE of sub: out of dialog until the PBX
// has answered, then in its dialog (RFC 6665 §4.1.2.1).
func (w *Watcher) request(sub *subscription, expires time.Duration) *sip.Request {
	w.mu.Lock()
	defer w.mu.Unlock()
	sub.cseq++
	sub.notified = false
	recipient := sub.slot.uri
	if sub.remoteTag != "" && sub.target != nil {
		recipient = *sub.target
	}
	req := sip.NewRequest(sip.SUBSCRIBE, *recipient.Clone())
	for _, r := range sub.routes {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	from := &sip.FromHeader{Address: *w.from.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", sub.localTag)
	to := &sip.ToHeader{Address: *sub.slot.uri.Clone(), Params: sip.NewParams()}
	if sub.remoteTag != "" {
		to.Params.Add("tag", sub.remoteTag)
	}
	callID := sip.CallIDHeader(sub.callID)
	maxFwd := sip.MaxForwardsHeader(70)
	exp := sip.ExpiresHeader(uint32(expires / time.Second))
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: sub.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(&maxFwd)
	req.AppendHeader(&sip.ContactHeader{Address: *w.opts.Contact.Clone()})
	req.AppendHeader(sip.NewHeader("Event", "dialog"))
	req.AppendHeader(sip.NewHeader("Accept", sipstack.ContentTypeDialogInfo))
	req.AppendHeader(&exp)
	if len(sub.routes) == 0 {
		// Like a phone with an outbound proxy: everything goes to the
		// configured server, whatever the PBX's Contact says (it may be an
		// address behind NAT).
		req.SetDestination(w.dest)
	}
	return req
}

// accepted records what a 2xx to a SUBSCRIBE establishes and returns the
// granted lifetime.
func (w *Watcher) accepted(sub *subscription, res *sip.Response, asked time.Duration) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if to := res.To(); to != nil && sub.remoteTag == "" {
		sub.remoteTag, _ = to.Params.Get("tag")
	}
	if c := res.Contact(); c != nil {
		sub.target = c.Address.Clone()
	}
	if !sub.routed {
		sub.routed = true
		rr := res.GetHeaders("Record-Route")
		for _, h := range slices.Backward(rr) {
			if r, ok := h.(*sip.RecordRouteHeader); ok {
				sub.routes = append(sub.routes, *r.Address.Clone())
			}
		}
	}
	granted := asked
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			granted = time.Duration(n) * time.Second
		}
	}
	return max(granted, time.Second)
}

// unsubscribe ends sub at the PBX (Expires: 0) so it stops sending
// NOTIFYs to a box that went away; best effort, bounded.
func (w *Watcher) unsubscribe(ctx context.Context, sub *subscription) {
	w.mu.Lock()
	established := sub.remoteTag != ""
	w.mu.Unlock()
	if !established {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(w.opts.RequestTimeout, time.Second))
	defer cancel()
	res, err := w.send(uctx, sub, w.request(sub, 0))
	if err != nil {
		w.log.Debug("blf unsubscribe", "slot", sub.slot.ext, "err", err)
		return
	}
	w.log.Debug("blf unsubscribed", "slot", sub.slot.ext, "status", res.StatusCode)
}

// OnNotify is a sipgo request handler for NOTIFY: it handles the
// watcher's subscriptions and answers any other NOTIFY 481 (RFC 6665
// §4.1.3: the notifier then drops the subscription we no longer hold).
func (w *Watcher) OnNotify(req *sip.Request, tx sip.ServerTransaction) {
	if w.HandleNotify(req, tx) {
		return
	}
	respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist")
}

// HandleNotify handles req if it belongs to one of the watcher's
// subscriptions, answering it, and reports whether it did; otherwise it
// leaves req and tx untouched for another owner.
func (w *Watcher) HandleNotify(req *sip.Request, tx sip.ServerTransaction) bool {
	callID, to, from := req.CallID(), req.To(), req.From()
	if callID == nil || to == nil || from == nil {
		return false
	}
	toTag, _ := to.Params.Get("tag")
	fromTag, _ := from.Params.Get("tag")

	w.emitMu.Lock()
	defer w.emitMu.Unlock()
	w.mu.Lock()
	sub := w.subs[string(*callID)]
	if sub == nil || toTag != sub.localTag || (sub.remoteTag != "" && fromTag != sub.remoteTag) {
		w.mu.Unlock()
		return false
	}
	if ev := req.GetHeader("Event"); ev == nil || !isDialogEvent(ev.Value()) {
		w.mu.Unlock()
		respond(tx, req, 489, "Bad Event") // RFC 6665 §8.3.1
		return true
	}
	if sub.remoteTag == "" {
		sub.remoteTag = fromTag // the NOTIFY beat the 2xx
	}
	if c := req.Contact(); c != nil {
		sub.target = c.Address.Clone() // a NOTIFY may move the remote target
	}
	sub.notified, sub.everNotify = true, true
	state := parseSubscriptionState(req.GetHeader("Subscription-State"))

	var evs []pbxevents.ParkEvent
	if body := req.Body(); len(body) > 0 {
		if ct := req.ContentType(); ct == nil || !isDialogInfo(ct.Value()) {
			w.log.Debug("blf notify body of another type ignored", "slot", sub.slot.ext)
		} else if info, err := sipstack.ParseDialogInfo(body); err != nil {
			// Answered 200 all the same: refusing it would only make the PBX
			// drop the subscription, and a later document may be fine.
			w.log.Warn("blf notify body unreadable", "slot", sub.slot.ext, "err", err)
		} else {
			evs = w.apply(sub, info)
		}
	}
	wake := sub.needFull
	switch {
	case state.terminated:
		sub.ended = &terminatedError{reason: state.reason, retryAfter: state.retryAfter}
		delete(w.subs, sub.callID)
		wake = true
	case state.expires >= 0:
		sub.expiresAt = time.Now().Add(state.expires)
		wake = true
	}
	w.mu.Unlock()

	// Answer first: the PBX is waiting. emitMu, still held, keeps the next
	// NOTIFY's events behind these.
	respond(tx, req, sip.StatusOK, "OK")
	for _, e := range evs {
		w.opts.Sink(e)
	}
	if wake {
		select {
		case sub.slot.wake <- struct{}{}:
		default:
		}
	}
	return true
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

// apply folds a dialog-info document into sub's dialogs (RFC 4235 §4.1
// version rules) and returns the events the slot's new state causes.
// Called with w.mu held.
func (w *Watcher) apply(sub *subscription, info sipstack.DialogInfo) []pbxevents.ParkEvent {
	if sub.haveVersion && info.Version <= sub.version {
		w.log.Debug("blf stale dialog-info ignored", "slot", sub.slot.ext, "version", info.Version, "have", sub.version)
		return nil
	}
	if info.State == "partial" {
		if !sub.haveVersion || info.Version > sub.version+1 {
			// A change against a base we do not have: ask for full state.
			sub.needFull = true
			return nil
		}
	} else {
		sub.dialogs = nil
	}
	if sub.dialogs == nil {
		sub.dialogs = map[string]sipstack.DialogEntry{}
	}
	for _, d := range info.Dialogs {
		if d.Active() {
			sub.dialogs[d.ID] = d
		} else {
			delete(sub.dialogs, d.ID)
		}
	}
	sub.version, sub.haveVersion = info.Version, true
	return w.settle(sub.slot, sub.dialogs)
}

// settle moves the slot to the state its active dialogs say: busy or idle.
// Called with w.mu held.
func (w *Watcher) settle(s *slot, dialogs map[string]sipstack.DialogEntry) []pbxevents.ParkEvent {
	occupied := len(dialogs) > 0
	caller := callerOf(dialogs)
	if occupied == s.occupied {
		if occupied && s.caller == "" {
			s.caller = caller
		}
		return nil
	}
	ev := pbxevents.ParkEvent{
		Kind:         pbxevents.Parked,
		Slot:         s.local,
		ExternalSlot: s.ext,
		Caller:       caller,
		Source:       pbxevents.SourceBLF,
		Time:         time.Now(),
	}
	if !occupied {
		ev.Kind, ev.Caller = pbxevents.Retrieved, s.caller
	}
	s.occupied, s.caller = occupied, caller
	return []pbxevents.ParkEvent{ev}
}

// callerOf names the parked party: the remote identity of a confirmed
// dialog, else of any, in dialog-id order so the choice is stable.
func callerOf(dialogs map[string]sipstack.DialogEntry) string {
	ids := make([]string, 0, len(dialogs))
	for id := range dialogs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	caller := ""
	for _, id := range ids {
		d := dialogs[id]
		p := pbxevents.Party(d.RemoteDisplay, d.RemoteURI)
		if p == "" {
			continue
		}
		if d.State == "confirmed" {
			return p
		}
		if caller == "" {
			caller = p
		}
	}
	return caller
}

func isDialogEvent(v string) bool {
	pkg, _, _ := strings.Cut(v, ";")
	return strings.EqualFold(strings.TrimSpace(pkg), "dialog")
}

func isDialogInfo(v string) bool {
	t, _, _ := strings.Cut(v, ";")
	return strings.EqualFold(strings.TrimSpace(t), sipstack.ContentTypeDialogInfo)
}

// subscriptionState is a parsed Subscription-State header (RFC 6665 §8.2.3).
type subscriptionState struct {
	terminated bool
	reason     string
	expires    time.Duration // -1: absent
	retryAfter time.Duration
}

func parseSubscriptionState(h sip.Header) subscriptionState {
	st := subscriptionState{expires: -1}
	if h == nil {
		return st // none: take it as active
	}
	parts := strings.Split(h.Value(), ";")
	st.terminated = strings.EqualFold(strings.TrimSpace(parts[0]), "terminated")
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		n, err := strconv.Atoi(v)
		switch {
		case k == "reason":
			st.reason = strings.ToLower(v)
		case k == "expires" && err == nil && n >= 0:
			st.expires = time.Duration(n) * time.Second
		case k == "retry-after" && err == nil && n >= 0:
			st.retryAfter = time.Duration(n) * time.Second
		}
	}
	return st
}

// terminatedError is a subscription the PBX ended.
type terminatedError struct {
	reason     string
	retryAfter time.Duration
}

func (e *terminatedError) Error() string {
	if e.reason == "" {
		return ErrTerminated.Error()
	}
	return ErrTerminated.Error() + ": " + e.reason
}

func (e *terminatedError) Unwrap() error { return ErrTerminated }

func retryAfter(err error) time.Duration {
	var te *terminatedError
	if errors.As(err, &te) {
		return te.retryAfter
	}
	return 0
}
