package parksip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/journal"
	"github.com/parkpage/parkpage/internal/media"
	"github.com/parkpage/parkpage/internal/sipstack"
	"github.com/parkpage/parkpage/park"
)

// callRecord is a parked call in the journal: everything a restarted
// parkpage needs to take it over (SIP dialog, RTP leg, slot and timers).
type callRecord struct {
	Saved   time.Time            `json:"saved"`
	Dialog  sipstack.DialogState `json:"dialog"`
	Media   media.LegState       `json:"media"`
	Park    park.Resumable       `json:"park"`
	Session time.Duration        `json:"session_interval,omitempty"`
	Consult bool                 `json:"consult,omitempty"`
}

func (r *callRecord) check() error {
	switch {
	case r.Dialog.CallID == "" || r.Dialog.LocalTag == "" || r.Dialog.RemoteTag == "":
		return errors.New("no SIP dialog")
	case r.Media.Port <= 0 || r.Media.Port > 65535:
		return fmt.Errorf("RTP port %d", r.Media.Port)
	case r.Park.Slot == "":
		return errors.New("no slot")
	case r.Saved.IsZero():
		return errors.New("no time saved")
	}
	return nil
}

// aliveKey is the journal record with the time parkpage last ran: a call
// counts as old from the later of its own record and this.
const aliveKey = "~alive"

type aliveRecord struct {
	At time.Time `json:"at"`
}

func newJournalKey() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// journalCall writes call id's current state to the journal, or deletes
// its record once it is no longer parked here (hung up, connected). The
// state is read under the journal's lock, so of concurrent writes for one
// call the last one on disk is the newest. It returns once the change is
// on disk; the wait for the disk is outside the lock, so calls changing
// at once share its syncs.
func (s *Server) journalCall(id park.CallID) {
	if s.jr == nil {
		return
	}
	began := time.Now()
	s.jmu.Lock()
	if s.jclosed {
		s.jmu.Unlock()
		return
	}
	rec, key, live := s.callRecord(id)
	var (
		wait func() error
		err  error
		what = "write"
	)
	if !live {
		if key == "" {
			s.jmu.Unlock()
			return
		}
		what = "delete"
		wait, err = s.jr.StageDelete(key)
		delete(s.jkeys, id)
	} else {
		wait, err = s.jr.Stage(key, rec)
		if err == nil {
			s.jkeys[id] = key
		}
	}
	s.jmu.Unlock()
	if err == nil {
		err = wait()
	}
	if err != nil {
		s.log.Error("call journal: "+what+" failed", "slot", rec.Park.Slot, "error", err)
		return
	}
	if d := time.Since(began); d > slowJournal {
		// A park waits for this before its 200 OK: say where the time went.
		s.log.Warn("call journal: the disk was slow", "slot", rec.Park.Slot, "took", d.Round(time.Millisecond))
	}
}

// slowJournal is a journal write worth a warning: a caller hears ringing
// (or nothing) for that long before the park completes.
const slowJournal = 500 * time.Millisecond

// callRecord builds call id's record (with s.jmu held); live is false
// once the call is no longer parked here, key is its record's.
func (s *Server) callRecord(id park.CallID) (rec callRecord, key string, live bool) {
	s.mu.Lock()
	p := s.calls[id]
	s.mu.Unlock()
	key = s.jkeys[id]
	st, ok := s.park.Resumable(id)
	if !ok || p == nil {
		return rec, key, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone || p.conn != nil {
		return rec, key, false
	}
	dst, err := p.dlg.State()
	if err != nil {
		s.log.Warn("call journal: parked call not saved", "slot", st.Slot, "error", err)
		return rec, key, false
	}
	return callRecord{Saved: time.Now().Round(0), Dialog: dst, Media: p.leg.State(), Park: st,
		Session: p.interval, Consult: p.consult}, p.jkey, true
}

// journalAlive records that parkpage is running (resume_within is
// measured from the last such record).
func (s *Server) journalAlive(now time.Time) {
	if s.jr == nil {
		return
	}
	s.jmu.Lock()
	defer s.jmu.Unlock()
	if s.jclosed {
		return
	}
	every := min(5*time.Second, s.cfg.Load().Park.ResumeWithin.D()/5)
	if now.Sub(s.jalive) < every {
		return
	}
	if err := s.jr.Put(aliveKey, aliveRecord{At: now.Round(0)}); err != nil {
		s.log.Error("call journal: write failed", "error", err)
		return
	}
	s.jalive = now
}

// openJournal reads the journal and takes over the calls it holds.
// Nothing in the file stops the start: damaged entries are reported and
// skipped, calls that cannot be taken over get a BYE and call.abandoned.
func (s *Server) openJournal(path string) {
	began := time.Now()
	_ = os.MkdirAll(filepath.Dir(path), 0o750)
	j, recs, probs, err := journal.Open(path)
	for _, p := range probs {
		s.log.Warn("call journal: entry skipped", "file", path, "entry", p.Entry, "offset", p.Offset, "reason", p.Reason)
	}
	if err != nil {
		s.log.Error("call journal not writable: parked calls will not survive a restart", "file", path, "error", err)
		return
	}
	s.jr = j
	var alive time.Time
	for _, r := range recs {
		if r.Key == aliveKey {
			var a aliveRecord
			if json.Unmarshal(r.Value, &a) == nil {
				alive = a.At
			}
		}
	}
	within := s.cfg.Load().Park.ResumeWithin.D()
	resumed, dropped := 0, 0
	type entry struct {
		key string
		rec callRecord
	}
	var entries []entry
	var ports []int
	for _, r := range recs {
		if r.Key == aliveKey {
			continue
		}
		var rec callRecord
		err := json.Unmarshal(r.Value, &rec)
		if err == nil {
			err = rec.check()
		}
		if err != nil {
			s.log.Warn("call journal: entry skipped", "file", path, "key", r.Key, "reason", err.Error())
			_ = j.Delete(r.Key)
			dropped++
			continue
		}
		entries = append(entries, entry{r.Key, rec})
		ports = append(ports, rec.Media.Port)
	}
	s.media.ReservePorts(ports)
	defer s.media.ReleaseReserved()
	for _, e := range entries {
		r, rec := e, e.rec
		last := rec.Saved
		if alive.After(last) {
			last = alive
		}
		if age := time.Since(last); age > within {
			s.abandon(r.key, rec, fmt.Sprintf("not resumed after restart: parkpage was down %s, longer than park.resume_within (%s)", age.Round(time.Second), within))
			dropped++
			continue
		}
		if err := s.resumeCall(r.key, rec); err != nil {
			s.abandon(r.key, rec, "not resumed after restart: "+err.Error())
			dropped++
			continue
		}
		resumed++
	}
	s.jalive = time.Time{}
	s.journalAlive(time.Now())
	if resumed+dropped > 0 || len(probs) > 0 {
		s.log.Info("call journal read", "file", path, "resumed", resumed, "not_resumed", dropped, "damaged", len(probs), "took", time.Since(began).Round(time.Microsecond))
	}
}

// resumeCall takes over one parked call.
func (s *Server) resumeCall(key string, rec callRecord) error {
	now := time.Now()
	if !rec.Media.Sent || rec.Media.Last.IsZero() {
		// Saved before its first packet: the music started right after
		// (the 200 OK follows the write), so counting from the save never
		// reuses a sequence number the caller has heard.
		rec.Media.Sent, rec.Media.Last = true, rec.Saved
	}
	dlg, err := s.stack.ResumeDialog(rec.Dialog)
	if err != nil {
		return err
	}
	leg, err := s.media.ResumeLeg(rec.Media)
	if err != nil {
		dlg.Detach()
		return err
	}
	c, err := s.park.Resume(rec.Park)
	if err != nil {
		leg.Close()
		dlg.Detach()
		return err
	}
	p := &parked{s: s, id: c.ID, dlg: dlg, leg: leg, started: now, interval: rec.Session, lastRefresh: now, consult: rec.Consult, jkey: key}
	s.mu.Lock()
	s.calls[c.ID] = p
	s.mu.Unlock()
	p.attach(dlg, leg)
	leg.PlayMusic()
	// Its record stays as it is (nothing to write before the music: the
	// stream's sequence numbers and timestamps follow from its saved
	// ones and the time); the next transition rewrites it.
	s.jmu.Lock()
	s.jkeys[c.ID] = key
	s.jmu.Unlock()
	s.log.Info("call resumed", "slot", c.Slot, "caller", c.Caller.String(), "rtp", rec.Media.Port, "parked_at", c.Since)
	return nil
}

// abandon ends a journalled call that is not taken over: a BYE to the
// caller (through its dialog, resumed for the purpose), call.abandoned
// with the reason, and its record deleted.
func (s *Server) abandon(key string, rec callRecord, reason string) {
	s.log.Warn("parked call abandoned", "slot", rec.Park.Slot, "caller", rec.Park.Caller.String(), "reason", reason)
	if s.bus != nil {
		s.bus.Publish(events.Event{Type: events.CallAbandoned, Time: time.Now(), Lot: rec.Park.Lot, Slot: rec.Park.Slot,
			Label: rec.Park.Label, Caller: rec.Park.Caller.String(), Parker: rec.Park.Parker.String(), Reason: reason})
	}
	if err := s.jr.Delete(key); err != nil {
		s.log.Error("call journal: delete failed", "error", err)
	}
	dlg, err := s.stack.ResumeDialog(rec.Dialog)
	if err != nil {
		return
	}
	s.goTracked(func() {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		if err := dlg.Hangup(ctx); err != nil {
			s.log.Info("BYE to an abandoned parked call failed", "slot", rec.Park.Slot, "error", err)
		}
	})
}

// detachAll is the shutdown of a server with a journal: every parked
// call's state is written once more and the journal closed, then its leg
// closed and its dialog forgotten without a BYE. The next start takes
// the calls over.
func (s *Server) detachAll() {
	s.mu.Lock()
	var ps []*parked
	for _, p := range s.calls {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	// One write for all: a thousand parked calls must not cost a
	// thousand flushes on the way out.
	s.jmu.Lock()
	all := map[string]any{aliveKey: aliveRecord{At: time.Now().Round(0)}}
	for _, p := range ps {
		if rec, key, live := s.callRecord(p.id); live {
			all[key] = rec
		}
	}
	if err := s.jr.PutAll(all); err != nil {
		s.log.Error("call journal: write failed", "error", err)
	}
	s.jclosed = true
	_ = s.jr.Close()
	s.jmu.Unlock()
	for _, p := range ps {
		p.mu.Lock()
		if p.gone || p.conn != nil {
			p.mu.Unlock()
			continue
		}
		p.gone = true
		d, leg := p.dlg, p.leg
		p.mu.Unlock()
		d.Detach()
		leg.Close()
		s.mu.Lock()
		delete(s.calls, p.id)
		s.mu.Unlock()
	}
	if len(ps) > 0 {
		s.log.Info("parked calls kept for the next start (no BYE)", "calls", len(ps), "journal", s.jr.Path())
	}
}
