package media

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// resumeBindWait is how long the legs resumed after a restart wait, in
// all, for their ports to come free. A process that has just ended can
// hold its sockets for a while after its exit (the kernel releases an
// io_uring's registered files from a worker, after the process is
// gone), and parkpage is started again at once. 5 s was not enough with
// the cores loaded (two busy loops beside the -race suite: every call of
// a kill -9 restart given up with "address already in use"); a caller
// waiting 20 s in silence is better than a call lost. A variable for tests.
var resumeBindWait = 20 * time.Second

// LegState is what another process needs to take a leg over: its port,
// its SDP session, what the remote negotiated, and where its outgoing
// stream stands. See Leg.State and Engine.ResumeLeg.
type LegState struct {
	Port      int            `json:"port"`
	Advertise netip.Addr     `json:"advertise"`
	SessID    uint64         `json:"sess_id"`
	SessVer   uint64         `json:"sess_ver"`
	Remote    netip.AddrPort `json:"remote,omitzero"`
	Codec     string         `json:"codec,omitempty"`
	PT        uint8          `json:"pt"`
	// RemoteSDP is the remote's last accepted offer, or its answer to our
	// offer when RemoteAnswer (replayed on resume to negotiate the same).
	RemoteSDP    string `json:"remote_sdp,omitempty"`
	RemoteAnswer bool   `json:"remote_answer,omitempty"`
	// The outgoing stream: SSRC, last sequence number and timestamp sent,
	// and when (wall clock).
	SSRC uint32    `json:"ssrc"`
	Seq  uint16    `json:"seq"`
	TS   uint32    `json:"ts"`
	Last time.Time `json:"last,omitzero"`
	Sent bool      `json:"sent,omitempty"`
	// Music is true while hold music is the leg's background sound.
	Music bool `json:"music,omitempty"`
}

func (l *Leg) keepRemote(sdp []byte, answer bool) {
	l.mu.Lock()
	l.remoteSDP, l.remoteAnswer = append([]byte(nil), sdp...), answer
	l.mu.Unlock()
}

// State returns the leg's state for a journal.
func (l *Leg) State() LegState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := LegState{Port: l.port, Advertise: l.local.Addr(), SessID: l.w.sessID, SessVer: l.w.sessVer,
		RemoteSDP: string(l.remoteSDP), RemoteAnswer: l.remoteAnswer,
		SSRC: l.out.ssrc, Seq: l.out.seq, TS: l.out.ts, Sent: l.out.sent, Music: l.music != nil}
	if l.out.sent {
		st.Last = l.out.last.Round(0)
	}
	if l.negotiated {
		st.Remote, st.Codec, st.PT = l.neg.Remote, string(l.neg.Codec.Name), l.neg.PT
	}
	return st
}

// ResumeLeg opens a leg on st's port (an earlier process's leg, taken
// over after a restart) with the same SDP session and negotiation, and
// continues its outgoing stream: same SSRC, and sequence numbers and
// timestamps that go on as if the stream had kept running through the
// gap (a receiver sees the gap as lost packets, never as a new stream or
// a jump back). Hold music restarts when st.Music.
func (e *Engine) ResumeLeg(st LegState) (*Leg, error) {
	conn, err := e.ports.listenPort(st.Port)
	for err != nil && errors.Is(err, syscall.EADDRINUSE) && e.ports.waitBusy() {
		conn, err = e.ports.listenPort(st.Port)
	}
	if err != nil {
		return nil, fmt.Errorf("media: resume rtp port %d: %w", st.Port, err)
	}
	o := LegOptions{}
	if st.Advertise.IsValid() {
		o.Advertise = st.Advertise
	}
	l := e.newLeg(o, conn, st.Port)
	l.mu.Lock()
	l.w.sessID, l.w.sessVer = st.SessID, st.SessVer
	l.out.ssrc, l.out.seq, l.out.ts, l.out.sent = st.SSRC, st.Seq, st.TS, st.Sent
	if st.Sent && !st.Last.IsZero() {
		// Packets of the gap count as sent (lost on the way): the next
		// paced packet's sequence number and timestamp both follow the
		// time that passed since st.Last (outStream.advance).
		l.out.last, l.out.resumed = st.Last, true
	}
	l.mu.Unlock()
	if st.RemoteSDP != "" {
		if st.RemoteAnswer {
			err = l.SetAnswer([]byte(st.RemoteSDP))
		} else {
			_, err = l.Answer([]byte(st.RemoteSDP))
		}
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("media: resume rtp port %d: remote SDP: %w", st.Port, err)
		}
	}
	if st.Music {
		l.PlayMusic()
	}
	return l, nil
}

// ReservePorts keeps ports from new legs until ResumeLeg takes them or
// ReleaseReserved: a restarted process reserves every journalled leg's
// port first, so a leg opened meanwhile (a ring-back due at once) cannot
// take a port a parked caller still sends to.
func (e *Engine) ReservePorts(ports []int) {
	e.ports.mu.Lock()
	defer e.ports.mu.Unlock()
	if e.ports.reserved == nil {
		e.ports.reserved = map[int]bool{}
	}
	for _, p := range ports {
		e.ports.reserved[p] = true
	}
	e.ports.busyUntil = time.Time{}
}

// waitBusy pauses a resume whose port is still held: true (after a
// short sleep) until resumeBindWait has passed since the first such port
// of this resume.
func (p *portPool) waitBusy() bool {
	p.mu.Lock()
	if p.busyUntil.IsZero() {
		p.busyUntil = time.Now().Add(resumeBindWait)
	}
	left := time.Until(p.busyUntil)
	p.mu.Unlock()
	if left <= 0 {
		return false
	}
	time.Sleep(min(left, 20*time.Millisecond))
	return true
}

// ReleaseReserved gives the reserved ports not resumed back to the range.
func (e *Engine) ReleaseReserved() {
	e.ports.mu.Lock()
	e.ports.reserved = nil
	e.ports.mu.Unlock()
}
