package sipstack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Reply is a response to an in-dialog request chosen by a dialog's owner.
type Reply struct {
	Code    int
	Reason  string // default: the standard phrase
	SDP     []byte // body (application/sdp) for 200 to re-INVITE/UPDATE
	Headers []sip.Header
}

// DialogHandler is how a dialog's owner handles what arrives in it. Nil
// fields get defaults: re-INVITE/UPDATE 488, other requests 200 (INFO,
// NOTIFY) or 403 (REFER).
type DialogHandler struct {
	// Reinvite answers a re-INVITE or UPDATE (offer in req.Body(), possibly
	// empty for a session refresh).
	Reinvite func(req *sip.Request) Reply
	// Request answers INFO, REFER, NOTIFY, MESSAGE and OPTIONS in the dialog.
	Request func(req *sip.Request) Reply
	// Ack is told of each ACK (its body is the answer to a late offer).
	Ack func(req *sip.Request)
	// Ended is called once when the dialog ends, with why.
	Ended func(reason string)
}

// Dialog is an INVITE dialog parkpage is a party to, as UAS (a call it
// answered) or UAC (a call it placed). The stack keeps them in a map
// keyed by Call-ID and tags and routes in-dialog requests to them.
type Dialog struct {
	s         *Stack
	key       string
	CallID    string
	LocalTag  string
	RemoteTag string
	// Invite is the initial INVITE (received or sent).
	Invite *sip.Request
	// Remote is the other party: From of a received INVITE, To of a sent one.
	Remote Identity
	// Source is where the remote's requests come from (UAS) or where the
	// INVITE was sent (UAC).
	Source netip.AddrPort

	uas *sipgo.DialogServerSession
	// answered is set (after sipgo's InviteResponse) once a 2xx goes to a
	// received INVITE: only then may Hangup send a BYE. sipgo's Bye reads
	// InviteResponse without a check, and before the answer it is nil.
	answered atomic.Bool
	uac      *sipgo.DialogClientSession
	res      *resumedDialog // taken over from an earlier process (resume.go)

	mu      sync.Mutex
	h       DialogHandler
	done    chan struct{}
	endOnce sync.Once
	reason  string
}

func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "\x00" + localTag + "\x00" + remoteTag
}

// Key identifies the dialog (for maps of calls).
func (d *Dialog) Key() string { return d.key }

// SetHandler installs the owner's handlers.
func (d *Dialog) SetHandler(h DialogHandler) {
	d.mu.Lock()
	d.h = h
	d.mu.Unlock()
	select {
	case <-d.done:
		if h.Ended != nil {
			h.Ended(d.Reason())
		}
	default:
	}
}

func (d *Dialog) handler() DialogHandler {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.h
}

// Done is closed when the dialog has ended.
func (d *Dialog) Done() <-chan struct{} { return d.done }

// Reason says why the dialog ended ("" while it lasts).
func (d *Dialog) Reason() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reason
}

// end marks the dialog ended, removes it from the map and tells the owner.
func (d *Dialog) end(reason string) {
	d.finish(reason, true)
}

// finish marks the dialog ended and tells the owner; unmap also removes
// it from the stack's map (Hangup keeps it there until its BYE is out).
func (d *Dialog) finish(reason string, unmap bool) {
	d.endOnce.Do(func() {
		d.mu.Lock()
		d.reason = reason
		h := d.h
		d.mu.Unlock()
		if unmap {
			d.s.dialogs.Delete(d.key)
		}
		close(d.done)
		if h.Ended != nil {
			h.Ended(reason)
		}
	})
}

// ended reports whether the dialog has ended.
func (d *Dialog) ended() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Hangup ends the dialog with a BYE (waiting for its response at most
// until ctx ends) and reports the dialog ended either way.
func (d *Dialog) Hangup(ctx context.Context) error {
	select {
	case <-d.done:
		return nil
	default:
	}
	// The dialog stays in the map until the BYE is out: a call hung up
	// before its ACK arrived (the front desk, a millisecond after the
	// answer) must still route that ACK to sipgo, which holds the BYE
	// until the dialog is confirmed (RFC 3261 15: not before the ACK).
	d.finish("local hangup", false)
	defer d.s.dialogs.CompareAndDelete(d.key, d)
	var err error
	switch {
	case d.uas != nil && !d.answered.Load():
		// Not answered yet (a pickup torn down while it was being set
		// up): end the INVITE with a final response, not a BYE. sipgo
		// waits for its ACK, which a broken peer never sends: wait at most
		// until ctx ends; the goroutine ends with the transaction (the ACK
		// or its 32 s timeout).
		done := make(chan error, 1)
		go func() { done <- d.uas.Respond(487, "Request Terminated", nil) }()
		select {
		case err = <-done:
		case <-ctx.Done():
		}
	case d.uas != nil:
		err = d.uas.Bye(ctx)
	case d.uac != nil:
		err = d.uac.Bye(ctx)
	case d.res != nil:
		var res *sip.Response
		if res, err = d.resumedDo(ctx, sip.NewRequest(sip.BYE, sip.Uri{})); err == nil && !res.IsSuccess() {
			err = &StatusError{Code: res.StatusCode, Reason: res.Reason}
		}
	}
	return err
}

// Request sends an in-dialog request (e.g. INFO, NOTIFY) and returns the
// final response.
func (d *Dialog) Request(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	switch {
	case d.uas != nil:
		return d.uas.Do(ctx, req)
	case d.uac != nil:
		return d.uac.Do(ctx, req)
	case d.res != nil:
		return d.resumedDo(ctx, req)
	}
	return nil, errors.New("sip: dialog has no session")
}

// IncomingCall is an INVITE received for an extension. The handler must
// send a final response (Respond or Answer) before returning.
type IncomingCall struct {
	*Dialog
	Request *sip.Request
	// Ext is the dialled extension (user part of the Request-URI).
	Ext string
	// Trusted is true when the source is in sip.trusted.
	Trusted bool
	// AuthUser is the digest-authenticated user, when the source was not
	// trusted and authenticated as a configured user.
	AuthUser string

	tx    sip.ServerTransaction
	final bool
}

// Respond sends a provisional or final non-2xx response.
func (c *IncomingCall) Respond(code int, reason string, hdrs ...sip.Header) error {
	if code >= 200 && code < 300 {
		return errors.New("sip: use Answer for 2xx")
	}
	if reason == "" {
		reason = statusText(code)
	}
	err := c.uas.Respond(code, reason, nil, hdrs...)
	if code >= 300 {
		c.final = true
		c.end(fmt.Sprintf("rejected %d", code))
	}
	return err
}

// Progress sends 183 Session Progress with early media SDP.
func (c *IncomingCall) Progress(sdp []byte) error {
	return c.uas.Respond(183, "Session Progress", sdp, sip.NewHeader("Content-Type", "application/sdp"))
}

// Answer sends 200 OK with sdp and waits for the ACK (the INVITE's final
// response is then complete).
func (c *IncomingCall) Answer(sdp []byte, hdrs ...sip.Header) error {
	res := sip.NewSDPResponseFromRequest(c.uas.InviteRequest, sdp)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	res.AppendHeader(c.s.allowHeader())
	c.final = true
	// sipgo sets InviteResponse in WriteResponse, which then waits for the
	// ACK; a Hangup meanwhile needs it (BYE), so set it first.
	c.uas.Dialog.InviteResponse = res
	c.answered.Store(true)
	if err := c.uas.WriteResponse(res); err != nil {
		c.end("answer failed: " + err.Error())
		return fmt.Errorf("sip: answer: %w", err)
	}
	return nil
}

// Answered reports whether a final response was sent.
func (c *IncomingCall) Answered() bool { return c.final }

// StatusError is a final non-2xx response to a request parkpage sent.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Reason) }

// StatusCode returns the SIP status of err (0 if none).
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

var statusTexts = map[int]string{
	180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
	403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
	408: "Request Timeout", 415: "Unsupported Media Type", 420: "Bad Extension", 422: "Session Interval Too Small",
	423: "Interval Too Brief", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
	486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event",
	491: "Request Pending", 500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline",
}

func statusText(code int) string {
	if t, ok := statusTexts[code]; ok {
		return t
	}
	return "Unknown"
}
