package parksip

import (
	"context"
	"sort"
	"time"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/park"
)

// observe is the park Observer: it runs for every slot change, in order,
// under the park lock, and hands the new state to the slot's BLF presence
// and to its lot's (Presence.Set only records and wakes senders).
func (s *Server) observe(st park.SlotState) {
	cfg := s.cfg.Load()
	early := cfg.Park.BLF.Early
	s.blfMu.Lock()
	defer s.blfMu.Unlock()
	prev, had := s.slotView[st.Slot]
	if st.Lot == "" && st.State == park.StateFree {
		delete(s.slotView, st.Slot)
	} else {
		s.slotView[st.Slot] = st
	}
	if had {
		delete(s.lotBusy[prev.Lot], st.Slot)
	}
	if st.State != park.StateFree {
		busy := s.lotBusy[st.Lot]
		if busy == nil {
			busy = map[string]park.SlotState{}
			s.lotBusy[st.Lot] = busy
		}
		busy[st.Slot] = st
	}
	dom := s.stack.Domain()
	entry := func(x park.SlotState) sipstack.DialogEntry {
		state := sipstack.DialogConfirmed
		if early {
			state = sipstack.DialogEarly
		}
		return sipstack.DialogEntry{ID: x.Slot, State: state, Direction: "recipient",
			RemoteDisplay: displayFor(x), RemoteURI: x.CallerURI, LocalURI: "sip:" + x.Slot + "@" + dom}
	}
	if st.Lot != "" {
		var ds []sipstack.DialogEntry
		if st.State != park.StateFree {
			ds = append(ds, entry(st))
		}
		s.stack.Presence(st.Slot).Set(ds)
	}
	// The lot's extension shows every occupied slot of the lot.
	lots := []string{st.Lot}
	if had && prev.Lot != st.Lot {
		lots = append(lots, prev.Lot)
	}
	for _, lotName := range lots {
		ext := lotExt(cfg, lotName)
		if ext == "" {
			continue
		}
		busy := s.lotBusy[lotName]
		ds := make([]sipstack.DialogEntry, 0, len(busy))
		for _, x := range busy {
			ds = append(ds, entry(x))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID })
		s.stack.Presence(ext).Set(ds)
	}
}

// displayFor is what a BLF key shows for an occupied slot: the caller's
// name (or number), prefixed with the slot's label.
func displayFor(x park.SlotState) string {
	name := x.CallerName
	if name == "" {
		name = x.Caller
	}
	if x.Label != "" {
		return x.Label + ": " + name
	}
	return name
}

// lotExt is the park extension of the lot called name ("" if none).
func lotExt(cfg *config.Config, name string) string {
	if name == "" {
		return ""
	}
	for _, l := range cfg.Park.Lots {
		if l.Name == name || l.Name == "" && l.Extension == name {
			return l.Extension
		}
	}
	return ""
}

// housekeep cleans up parked legs whose RTP stopped or whose session
// timer lapsed.
func (s *Server) housekeep() {
	rtpTimeout := s.cfg.Load().Park.RTPTimeout.D()
	now := time.Now()
	s.mu.Lock()
	ps := make([]*parked, 0, len(s.calls))
	for _, p := range s.calls {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.mu.Lock()
		if p.gone || p.conn != nil {
			p.mu.Unlock()
			continue
		}
		leg, started, interval, refreshed := p.leg, p.started, p.interval, p.lastRefresh
		p.mu.Unlock()
		reason := ""
		if neg, ok := leg.Negotiated(); ok && neg.Sends() && rtpTimeout > 0 {
			last := leg.LastReceived()
			if last.Before(started) {
				last = started
			}
			if now.Sub(last) > rtpTimeout {
				reason = "no RTP for " + rtpTimeout.String()
			}
		}
		if interval > 0 && now.Sub(refreshed) > interval {
			reason = "session timer expired"
		}
		if reason == "" {
			continue
		}
		s.log.Info("cleaning up parked call", "call", p.id, "reason", reason)
		s.goTracked(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.hangup(ctx, reason)
		})
	}
}
