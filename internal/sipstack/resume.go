package sipstack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
)

// DialogState is what another process needs to take over an INVITE
// dialog parkpage answered (a parked caller's): the dialog's identifiers,
// both parties' URIs, the remote target and route set, the transport, and
// the CSeqs. See Dialog.State and Stack.ResumeDialog.
type DialogState struct {
	CallID    string `json:"call_id"`
	LocalTag  string `json:"local_tag"`
	RemoteTag string `json:"remote_tag"`
	// Local is our party (To of the INVITE, without tag), Remote the
	// remote's From (without tag): the From and To of our requests.
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// Target is the remote target (the Contact of its last request);
	// Routes the route set (Record-Route of the INVITE, in order).
	Target    string   `json:"target"`
	Routes    []string `json:"routes,omitempty"`
	Transport string   `json:"transport"`
	// Source is where the remote's requests came from.
	Source string `json:"source"`
	// LocalCSeq is the last CSeq we used in the dialog, RemoteCSeq the
	// remote's last.
	LocalCSeq  uint32 `json:"local_cseq"`
	RemoteCSeq uint32 `json:"remote_cseq"`
	// Identity is the remote party as shown (P-Asserted-Identity or From).
	Identity Identity `json:"identity"`
}

// resumedDialog is the dialog layer for a dialog taken over from an
// earlier process: sipgo never saw its INVITE, so requests in it are
// built here from the saved state.
type resumedDialog struct {
	st   DialogState
	cseq atomic.Uint32
}

// cseqMargin is added to a resumed dialog's saved local CSeq: requests the
// earlier process sent after its last journal write (none for a parked
// call, in practice) must not be outnumbered.
const cseqMargin = 100

// State returns the dialog's state for a journal (UAS dialogs only: the
// INVITE dialogs parkpage answered, or ones it resumed).
func (d *Dialog) State() (DialogState, error) {
	if d.res != nil {
		st := d.res.st
		st.LocalCSeq = d.res.cseq.Load()
		return st, nil
	}
	if d.uas == nil || d.Invite == nil {
		return DialogState{}, errors.New("sip: only an answered INVITE dialog can be saved")
	}
	req := d.Invite
	from, to, contact := req.From(), req.To(), req.Contact()
	if from == nil || to == nil || contact == nil || req.CSeq() == nil {
		return DialogState{}, errors.New("sip: INVITE lacks From, To, Contact or CSeq")
	}
	st := DialogState{CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: d.RemoteTag,
		Local: nameAddr(to.DisplayName, to.Address), Remote: nameAddr(from.DisplayName, from.Address),
		Target: contact.Address.String(), Transport: req.Transport(), Source: d.Source.String(),
		LocalCSeq: d.uas.CSEQ(), RemoteCSeq: req.CSeq().SeqNo, Identity: d.Remote}
	for _, rr := range req.GetHeaders("Record-Route") {
		st.Routes = append(st.Routes, rr.Value())
	}
	return st, nil
}

func nameAddr(display string, u sip.Uri) string {
	if display == "" {
		return "<" + u.String() + ">"
	}
	return quoteDisplay(display) + " <" + u.String() + ">"
}

// ResumeDialog takes over a dialog from its saved state: in-dialog
// requests for it (BYE, re-INVITE, UPDATE, INFO) are routed to its
// handler as for any dialog, and Hangup and Request build their requests
// from the state.
func (s *Stack) ResumeDialog(st DialogState) (*Dialog, error) {
	if st.CallID == "" || st.LocalTag == "" || st.RemoteTag == "" {
		return nil, errors.New("sip: resume: dialog state lacks Call-ID or tags")
	}
	var u sip.Uri
	if err := sip.ParseUri(st.Target, &u); err != nil || u.Host == "" {
		return nil, fmt.Errorf("sip: resume: remote target %q is not a SIP URI", st.Target)
	}
	for _, h := range []string{st.Local, st.Remote} {
		var ha sip.Uri
		hp := sip.NewParams()
		if _, err := sip.ParseAddressValue(h, &ha, &hp); err != nil {
			return nil, fmt.Errorf("sip: resume: %q is not a SIP address", h)
		}
	}
	src, _ := netip.ParseAddrPort(st.Source)
	d := &Dialog{s: s, CallID: st.CallID, LocalTag: st.LocalTag, RemoteTag: st.RemoteTag,
		Remote: st.Identity, Source: src, done: make(chan struct{}), res: &resumedDialog{st: st}}
	d.res.cseq.Store(st.LocalCSeq + cseqMargin)
	d.key = dialogKey(d.CallID, d.LocalTag, d.RemoteTag)
	if _, dup := s.dialogs.LoadOrStore(d.key, d); dup {
		return nil, fmt.Errorf("sip: resume: dialog %s already exists", st.CallID)
	}
	return d, nil
}

// Resumed reports whether the dialog was taken over from an earlier process.
func (d *Dialog) Resumed() bool { return d.res != nil }

// Detach forgets the dialog without ending it: no BYE, no Ended handler
// (the process is stopping and a later one resumes the dialog).
func (d *Dialog) Detach() {
	d.mu.Lock()
	d.h = DialogHandler{}
	d.mu.Unlock()
	d.s.dialogs.CompareAndDelete(d.key, d)
}

// request fills in a request in a resumed dialog (RFC 3261 12.2.1.1).
func (r *resumedDialog) request(s *Stack, req *sip.Request) error {
	st := r.st
	var target sip.Uri
	if err := sip.ParseUri(st.Target, &target); err != nil {
		return err
	}
	req.Recipient = target
	if req.From() == nil {
		from := &sip.FromHeader{Params: sip.NewParams()}
		dn, err := sip.ParseAddressValue(st.Local, &from.Address, &from.Params)
		if err != nil {
			return err
		}
		from.DisplayName = dn
		from.Params.Add("tag", st.LocalTag)
		req.AppendHeader(from)
	}
	if req.To() == nil {
		to := &sip.ToHeader{Params: sip.NewParams()}
		dn, err := sip.ParseAddressValue(st.Remote, &to.Address, &to.Params)
		if err != nil {
			return err
		}
		to.DisplayName = dn
		to.Params.Add("tag", st.RemoteTag)
		req.AppendHeader(to)
	}
	if req.CallID() == nil {
		id := sip.CallIDHeader(st.CallID)
		req.AppendHeader(&id)
	}
	if req.CSeq() == nil {
		req.AppendHeader(&sip.CSeqHeader{SeqNo: r.cseq.Add(1), MethodName: req.Method})
	}
	if req.MaxForwards() == nil {
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
	}
	for _, rt := range st.Routes {
		req.AppendHeader(sip.NewHeader("Route", rt))
	}
	if req.Contact() == nil {
		req.AppendHeader(s.contactHeader(st.Transport))
	}
	req.SetTransport(st.Transport)
	if len(st.Routes) > 0 {
		var ru sip.Uri
		hp := sip.NewParams()
		if _, err := sip.ParseAddressValue(st.Routes[0], &ru, &hp); err == nil {
			req.SetDestination(ru.HostPort())
		}
	}
	return nil
}

// resumedDo sends a request in a resumed dialog and returns its final response.
func (d *Dialog) resumedDo(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if err := d.res.request(d.s, req); err != nil {
		return nil, fmt.Errorf("sip: resumed dialog %s: %w", d.CallID, err)
	}
	return d.s.do(ctx, req)
}
