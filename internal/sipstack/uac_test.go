package sipstack

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TestRequestAndNotifyOwners: a request sent with Request leaves from the
// SIP port and answers a digest challenge; the NOTIFYs that come back go to
// the first owner that takes them, and to none once it is removed.
func TestRequestAndNotifyOwners(t *testing.T) {
	s := startStack(t, t.TempDir(), "")

	// The far end: challenges the first SUBSCRIBE, accepts the second.
	sources := make(chan string, 10)
	cli, pbxAddr := startPeer(t, "pbx", func(srv *sipgo.Server) {
		srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
			sources <- req.Source()
			if h := req.GetHeader("Authorization"); h == nil || !strings.Contains(h.Value(), `username="watcher"`) {
				res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
				res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="pbx", nonce="abc", algorithm=MD5`))
				_ = tx.Respond(res)
				return
			}
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		})
	})

	contact, err := s.Contact("watcher")
	if err != nil {
		t.Fatal(err)
	}
	if contact.User != "watcher" || contact.Host != "127.0.0.1" || contact.Port != int(s.Addr("udp").Port()) {
		t.Fatalf("contact %s, want sip:watcher@%s", contact.String(), s.Addr("udp"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: "701", Host: "127.0.0.1", Port: int(pbxAddr.Port())})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "watcher", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", "w1")
	callID := sip.CallIDHeader("uac-test")
	sub.AppendHeader(from)
	sub.AppendHeader(&sip.ToHeader{Address: sub.Recipient})
	sub.AppendHeader(&callID)
	sub.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.SUBSCRIBE})
	sub.AppendHeader(&sip.ContactHeader{Address: contact})
	sub.AppendHeader(sip.NewHeader("Event", "dialog"))
	res, err := s.Request(ctx, sub, sipgo.DigestAuth{Username: "watcher", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || sub.CSeq().SeqNo != 2 {
		t.Fatalf("status %d, CSeq %d: want 200 after the challenge, CSeq 2", res.StatusCode, sub.CSeq().SeqNo)
	}
	for range 2 {
		src := <-sources
		if ap, err := netip.ParseAddrPort(src); err != nil || ap.Port() != s.Addr("udp").Port() {
			t.Errorf("request from %s, want the SIP port %d", src, s.Addr("udp").Port())
		}
	}
	// Without credentials the challenge is the answer.
	sub.RemoveHeader("Authorization")
	if res, err := s.Request(ctx, sub, sipgo.DigestAuth{}); err != nil || res.StatusCode != 401 {
		t.Fatalf("no credentials: %v, %v; want the 401", res, err)
	}

	var declined, taken atomic.Int32
	removeDecliner := s.HandleNotify(func(*sip.Request, sip.ServerTransaction) bool { declined.Add(1); return false })
	defer removeDecliner()
	removeOwner := s.HandleNotify(func(req *sip.Request, tx sip.ServerTransaction) bool {
		if req.CallID().Value() != "uac-test" {
			return false
		}
		taken.Add(1)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		return true
	})
	notify := func() int {
		t.Helper()
		req := sip.NewRequest(sip.NOTIFY, contact)
		to := &sip.ToHeader{Address: contact, Params: sip.NewParams()}
		to.Params.Add("tag", "w1")
		callID := sip.CallIDHeader("uac-test")
		req.AppendHeader(to)
		req.AppendHeader(&callID)
		req.AppendHeader(sip.NewHeader("Event", "dialog"))
		res, err := cli.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	if code := notify(); code != 200 || taken.Load() != 1 || declined.Load() != 1 {
		t.Errorf("owned NOTIFY: %d, taken %d, declined %d; want 200, 1, 1", code, taken.Load(), declined.Load())
	}
	removeOwner()
	if code := notify(); code != 481 || taken.Load() != 1 {
		t.Errorf("after remove: %d, taken %d; want 481, 1", code, taken.Load())
	}
}
