// Package feedback tells a parker where the call went: after a blind park
// (a phone transferred the call to 700, so the parker never heard the
// slot), it sends a SIP MESSAGE "Parked at 704" to every contact the
// parker has registered with parkpage. Phones show it as a text message
// (Yealink "Text Message", Poly instant message: inferred, see README).
//
// It follows the event bus (call.parked from the local park server) and
// sends through the SIP stack; it knows nothing of calls.
package feedback

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/sipstack"
)

// Stack is what the notifier needs from the SIP stack.
type Stack interface {
	Contacts(user string) []sipstack.Binding
	Request(ctx context.Context, req *sip.Request, auth sipgo.DigestAuth) (*sip.Response, error)
	Domain() string
}

// Options configure a Notifier.
type Options struct {
	Stack  Stack
	Bus    *events.Bus
	Logger *slog.Logger
	// Enabled is asked before each message (nil: always).
	Enabled func() bool
	// Timeout bounds one MESSAGE transaction. Default 5s.
	Timeout time.Duration
}

// Notifier sends the park feedback.
type Notifier struct {
	o  Options
	wg sync.WaitGroup
}

// New returns a notifier; Run starts it.
func New(o Options) *Notifier {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return &Notifier{o: o}
}

// Text is the message for a park in slot: "Parked at 704".
func Text(slot string) string { return "Parked at " + slot }

// Run sends a message for every blind park until ctx ends, then waits
// for the messages in flight.
func (n *Notifier) Run(ctx context.Context) error {
	sub := n.o.Bus.Subscribe(256)
	defer sub.Close()
	defer n.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sub.C():
			if !ok {
				return nil
			}
			if user, ok := parkerToTell(e); ok && (n.o.Enabled == nil || n.o.Enabled()) {
				n.wg.Add(1)
				go func() {
					defer n.wg.Done()
					n.send(ctx, user, e)
				}()
			}
		}
	}
}

// parkerToTell returns the parker's user for a blind park by a local
// parker (an attended transfer's parker heard the slot already; a PBX's
// own parks are not ours to announce).
func parkerToTell(e events.Event) (string, bool) {
	if e.Type != events.CallParked || e.Parker == "" || e.Reason == "attended transfer" {
		return "", false
	}
	if e.Source != "" && e.Source != "local" {
		return "", false
	}
	id, err := sipstack.ParseIdentity(e.Parker)
	if err != nil || id.User == "" {
		return "", false
	}
	return id.User, true
}

// send messages every registered contact of user.
func (n *Notifier) send(ctx context.Context, user string, e events.Event) {
	bs := n.o.Stack.Contacts(user)
	if len(bs) == 0 {
		n.o.Logger.Debug("park feedback: parker not registered here; no message", "parker", user, "slot", e.Slot)
		return
	}
	for _, b := range bs {
		req, err := n.requestTo(n.o.Stack.Domain(), b, e.Slot)
		if err != nil {
			n.o.Logger.Warn("park feedback: bad contact", "parker", user, "contact", b.Contact, "error", err)
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
		res, err := n.o.Stack.Request(tctx, req, sipgo.DigestAuth{})
		cancel()
		switch {
		case err != nil:
			n.o.Logger.Info("park feedback: message not delivered", "parker", user, "contact", b.Contact, "slot", e.Slot, "error", err)
		case !res.IsSuccess():
			n.o.Logger.Info("park feedback: message refused", "parker", user, "contact", b.Contact, "slot", e.Slot, "status", res.StatusCode)
		default:
			n.o.Logger.Debug("park feedback: message delivered", "parker", user, "contact", b.Contact, "slot", e.Slot)
		}
	}
}

// requestTo builds the MESSAGE (RFC 3428) to one contact.
func (n *Notifier) requestTo(domain string, b sipstack.Binding, slot string) (*sip.Request, error) {
	var target sip.Uri
	if err := sip.ParseUri(b.Contact, &target); err != nil || target.Host == "" {
		return nil, fmt.Errorf("contact %q: not a SIP URI", b.Contact)
	}
	req := sip.NewRequest(sip.MESSAGE, *target.Clone())
	from := &sip.FromHeader{DisplayName: "Park", Address: sip.Uri{Scheme: "sip", User: "park", Host: domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: b.User, Host: domain}}
	callID := sip.CallIDHeader(sip.GenerateTagN(24) + "@parkpage")
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	req.AppendHeader(&maxFwd)
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
	if tr := strings.ToUpper(b.Transport); tr != "" && !strings.EqualFold(tr, "udp") {
		req.SetTransport(tr)
	}
	req.SetBody([]byte(Text(slot)))
	return req, nil
}
