package parksip

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/park"
)

// Ring places a ring-back or fallback call (park.Actions). The target is
// reached only at a registered contact, through sip.pbx, or (fallback) at
// the URI written in config: see sipstack.Stack.Route.
func (s *Server) Ring(r park.Ring) {
	ctx, cancel := context.WithCancel(s.ctx)
	s.mu.Lock()
	if _, gone := s.ringCancelled[r.Attempt]; gone {
		// Cancelled before it started (the park actions of two goroutines
		// ran in the other order): do not ring anyone.
		delete(s.ringCancelled, r.Attempt)
		s.mu.Unlock()
		cancel()
		return
	}
	s.rings[r.Attempt] = cancel
	s.mu.Unlock()
	s.goTracked(func() {
		defer func() {
			s.mu.Lock()
			delete(s.rings, r.Attempt)
			s.mu.Unlock()
			cancel()
		}()
		s.ring(ctx, r)
	})
}

// CancelRing abandons a ring attempt (park.Actions). It may arrive before
// the Ring it cancels; the attempt is then remembered so Ring does nothing.
func (s *Server) CancelRing(r park.Ring) {
	s.mu.Lock()
	cancel := s.rings[r.Attempt]
	if cancel == nil {
		now := time.Now()
		for a, at := range s.ringCancelled {
			if now.Sub(at) > time.Minute { // its Ring finished long ago
				delete(s.ringCancelled, a)
			}
		}
		s.ringCancelled[r.Attempt] = now
	}
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (s *Server) ring(ctx context.Context, r park.Ring) {
	fail := func(why string) { s.park.RingFailed(r.Call, r.Attempt, why) }
	leg, err := s.media.NewLeg(media.LegOptions{})
	if err != nil {
		fail("no RTP port: " + err.Error())
		return
	}
	fromUser := r.Caller.User
	if fromUser == "" {
		fromUser = "park" + r.Slot
	}
	dctx, dcancel := context.WithTimeout(ctx, r.Timeout+2*time.Second)
	defer dcancel()
	dlg, ans, err := s.stack.Dial(dctx, sipstack.DialRequest{
		Target: r.Target, Configured: r.Kind == park.RingFallback,
		FromUser: fromUser, FromDisplay: r.Display, SDP: leg.Offer(),
		Headers: []sip.Header{sip.NewHeader("Alert-Info", "<http://127.0.0.1/Bellcore-dr2>;info=alert-autoanswer-off")},
	})
	if err != nil {
		leg.Close()
		if ctx.Err() == nil {
			s.log.Info("ring failed", "kind", r.Kind, "slot", r.Slot, "target", r.Target, "error", err)
			fail(err.Error())
		}
		return
	}
	hangup := func() {
		leg.Close()
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hcancel()
		_ = dlg.Hangup(hctx)
	}
	if err := leg.SetAnswer(ans); err != nil {
		hangup()
		fail(fmt.Sprintf("answer SDP: %v", err))
		return
	}
	answerer := toParty(dlg.Remote)
	c, ok := s.park.RingAnswered(r.Call, r.Attempt, answerer)
	if !ok {
		hangup() // cancelled meanwhile (retrieved, hung up, ring time over)
		return
	}
	s.mu.Lock()
	p := s.calls[r.Call]
	s.mu.Unlock()
	if p == nil {
		hangup()
		s.park.Unretrieve(r.Call, "parked leg missing")
		s.log.Warn("answered ring not connected", "kind", r.Kind, "slot", r.Slot, "by", answerer.String(), "reason", "parked leg missing")
		return
	}
	dlg.SetHandler(sipstack.DialogHandler{
		Reinvite: func(req *sip.Request) sipstack.Reply { return s.reinvite(req, leg, nil) },
		Request:  s.inDialogRequest,
	})
	// The whisper goes to the answerer only; the caller stays on music.
	if pcm := s.prompt(whisperText(s.cfg.Load().Park.Whisper, c)); len(pcm) > 0 {
		wctx, wcancel := context.WithTimeout(s.ctx, 15*time.Second)
		go func() {
			select {
			case <-dlg.Done():
				wcancel()
			case <-wctx.Done():
			}
		}()
		_ = leg.Play(wctx, pcm)
		wcancel()
	}
	select {
	case <-dlg.Done():
		leg.Close()
		s.park.Unretrieve(r.Call, string(r.Kind)+" answerer hung up during the whisper")
		s.log.Info("answered ring not connected", "kind", r.Kind, "slot", r.Slot, "by", answerer.String(), "reason", "answerer hung up during the whisper")
		return
	default:
	}
	conn, err := p.connect(leg, dlg)
	if err != nil {
		hangup()
		p.backToMusic()
		s.park.Unretrieve(r.Call, err.Error())
		s.log.Warn("answered ring not connected", "kind", r.Kind, "slot", r.Slot, "by", answerer.String(), "reason", err.Error())
		return
	}
	dlg.SetHandler(sipstack.DialogHandler{
		Reinvite: func(req *sip.Request) sipstack.Reply { return s.reinvite(req, leg, nil) },
		Request:  s.inDialogRequest,
		Ended:    func(string) { conn.teardown(s) },
	})
	s.park.Retrieved(r.Call)
	s.log.Info("parked call answered", "kind", r.Kind, "slot", r.Slot, "by", answerer.String())
}
