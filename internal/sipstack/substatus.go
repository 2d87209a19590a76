package sipstack

import (
	"slices"
	"strings"
	"time"
)

// Watcher is one BLF subscription as the Status page shows it: which
// phone watches which extension.
type Watcher struct {
	Ext        string    `json:"ext"`        // watched extension (a park slot)
	Subscriber string    `json:"subscriber"` // the phone's identity (From of its SUBSCRIBE)
	User       string    `json:"user"`       // its user part
	Source     string    `json:"source"`     // ip:port the SUBSCRIBE came from
	Transport  string    `json:"transport"`
	Expires    time.Time `json:"expires"`
}

// Watchers lists the active dialog subscriptions, by extension then
// subscriber.
func (s *Stack) Watchers() []Watcher {
	s.mu.Lock()
	ps := make([]*Presence, 0, len(s.presences))
	for _, p := range s.presences {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	var out []Watcher
	for _, p := range ps {
		p.mu.Lock()
		subs := make([]*subscription, 0, len(p.subs))
		for sub := range p.subs {
			subs = append(subs, sub)
		}
		p.mu.Unlock()
		for _, sub := range subs {
			sub.mu.Lock()
			w := Watcher{Ext: p.ext, Subscriber: sub.remote.Address.String(), User: sub.remote.Address.User,
				Source: sub.source, Transport: strings.ToLower(sub.transport), Expires: sub.expires}
			ending := sub.ending != ""
			sub.mu.Unlock()
			if sub.remote.DisplayName != "" {
				w.Subscriber = `"` + sub.remote.DisplayName + `" <` + w.Subscriber + `>`
			}
			if !ending {
				out = append(out, w)
			}
		}
	}
	slices.SortFunc(out, func(a, b Watcher) int {
		if c := strings.Compare(a.Ext, b.Ext); c != 0 {
			return c
		}
		return strings.Compare(a.Subscriber, b.Subscriber)
	})
	return out
}
