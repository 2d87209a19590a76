package sipstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/atomicfile"
)

// SubscriptionState is a BLF subscription as kept in the state directory,
// so that phones' BLF keys go on being told of their slots after parkpage
// restarts (a phone re-subscribes only when its subscription expires,
// up to an hour later).
type SubscriptionState struct {
	Ext       string    `json:"ext"`
	CallID    string    `json:"call_id"`
	LocalTag  string    `json:"local_tag"`
	RemoteTag string    `json:"remote_tag"`
	Local     string    `json:"local"`  // entity URI (From of our NOTIFYs)
	Remote    string    `json:"remote"` // the subscriber (To of our NOTIFYs, with its tag)
	Target    string    `json:"target"` // its Contact
	Routes    []string  `json:"routes,omitempty"`
	Transport string    `json:"transport"`
	Source    string    `json:"source"`
	Expires   time.Time `json:"expires"`
	CSeq      uint32    `json:"cseq"`
	Version   uint32    `json:"version"`
}

// subsMargin is added to a resumed subscription's CSeq and version: the
// NOTIFYs sent after the last save (at most a second's worth) must not
// outnumber the next one.
const subsMargin = 1000

// KeepSubscriptions takes over the BLF subscriptions saved in path by an
// earlier process (each subscriber is sent a NOTIFY with the state as it
// is now: call it once the presences are set) and from then on keeps the
// file current (written at most once a second while subscriptions
// change). Subscriptions to extensions without a presence, or expired,
// are dropped. It returns how many were resumed.
func (s *Stack) KeepSubscriptions(path string) (int, error) {
	var saved []SubscriptionState
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &saved); err != nil {
			s.log.Warn("blf: saved subscriptions unreadable, starting without them", "file", path, "error", err)
			saved = nil
		}
	case !errors.Is(err, os.ErrNotExist):
		s.log.Warn("blf: saved subscriptions unreadable, starting without them", "file", path, "error", err)
	}
	n := 0
	for _, st := range saved {
		if err := s.resumeSubscription(st); err != nil {
			s.log.Info("blf: saved subscription not resumed", "ext", st.Ext, "reason", err.Error())
			continue
		}
		n++
	}
	s.mu.Lock()
	s.subsPath = path
	s.mu.Unlock()
	s.subsChanged()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			case <-s.subsKick:
			}
			if s.subsDirty.Swap(false) {
				if err := s.saveSubscriptions(path); err != nil {
					s.log.Warn("blf: subscriptions not saved", "error", err)
				}
			}
		}
	}()
	return n, nil
}

// subsChanged saves the subscriptions soon (a new one, a refresh, an end);
// NOTIFYs only mark them dirty for the next tick.
func (s *Stack) subsChanged() {
	s.subsDirty.Store(true)
	select {
	case s.subsKick <- struct{}{}:
	default:
	}
}

// saveSubscriptionsNow is Close's last save, while the subscriptions are
// all still there.
func (s *Stack) saveSubscriptionsNow() {
	s.mu.Lock()
	path := s.subsPath
	s.mu.Unlock()
	if path == "" || s.ctx.Err() != nil {
		return
	}
	if err := s.saveSubscriptions(path); err != nil {
		s.log.Warn("blf: subscriptions not saved", "error", err)
	}
}

func (s *Stack) resumeSubscription(st SubscriptionState) error {
	if time.Until(st.Expires) <= 0 {
		return errors.New("expired")
	}
	s.mu.Lock()
	p := s.presences[st.Ext]
	s.mu.Unlock()
	if p == nil {
		return errors.New("no such extension now")
	}
	sub := &subscription{p: p, callID: st.CallID, localTag: st.LocalTag, remoteTag: st.RemoteTag,
		routes: st.Routes, transport: st.Transport, source: st.Source, expires: st.Expires,
		cseq: st.CSeq + subsMargin, version: st.Version + subsMargin,
		dirty: make(chan struct{}, 1), done: make(chan struct{})}
	if err := sip.ParseUri(st.Local, &sub.local); err != nil {
		return fmt.Errorf("entity %q: %w", st.Local, err)
	}
	if err := sip.ParseUri(st.Target, &sub.target); err != nil {
		return fmt.Errorf("contact %q: %w", st.Target, err)
	}
	sub.remote.Params = sip.NewParams()
	dn, err := sip.ParseAddressValue(st.Remote, &sub.remote.Address, &sub.remote.Params)
	if err != nil {
		return fmt.Errorf("subscriber %q: %w", st.Remote, err)
	}
	sub.remote.DisplayName = dn
	sub.key = dialogKey(sub.callID, sub.localTag, sub.remoteTag)
	if _, dup := s.subs.LoadOrStore(sub.key, sub); dup {
		return errors.New("already subscribed")
	}
	p.mu.Lock()
	p.subs[sub] = struct{}{}
	p.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// The state as it is now, once the stack serves: before, sipgo
		// cannot send from the listening socket, and start-up may take a
		// while (a loaded box) before Run.
		select {
		case <-s.serving:
			sub.kick()
		case <-s.ctx.Done():
		}
		sub.run(s)
	}()
	return nil
}

// Subscriptions returns the live BLF subscriptions' state.
func (s *Stack) Subscriptions() []SubscriptionState {
	var out []SubscriptionState
	s.subs.Range(func(_, v any) bool {
		sub := v.(*subscription)
		sub.mu.Lock()
		st := SubscriptionState{Ext: sub.p.ext, CallID: sub.callID, LocalTag: sub.localTag, RemoteTag: sub.remoteTag,
			Local: sub.local.String(), Remote: sub.remote.Value(), Target: sub.target.String(), Routes: sub.routes,
			Transport: sub.transport, Source: sub.source, Expires: sub.expires.Round(0), CSeq: sub.cseq, Version: sub.version}
		ending := sub.ending
		sub.mu.Unlock()
		if ending == "" {
			out = append(out, st)
		}
		return true
	})
	return out
}

// saveSubscriptions writes the subscriptions to path (a new file renamed
// over the old one: a crash leaves one or the other).
func (s *Stack) saveSubscriptions(path string) error {
	s.subsSaveMu.Lock()
	defer s.subsSaveMu.Unlock()
	subs := s.Subscriptions()
	if s.ctx.Err() != nil {
		return nil // stopping: the subscriptions are ending here, not for the subscriber
	}
	data, err := json.Marshal(subs)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
