package blfwatch

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/sipstack"
)

func doc(version, state string, dialogs ...string) *sipstack.DialogInfo {
	info, err := sipstack.ParseDialogInfo([]byte(`<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="` + version +
		`" state="` + state + `" entity="sip:704@pbx">` + concat(dialogs) + `</dialog-info>`))
	if err != nil {
		panic(err)
	}
	return &info
}

func concat(ss []string) (s string) {
	for _, x := range ss {
		s += x
	}
	return s
}

func dlg(id, state, caller string) string {
	remote := ""
	if caller != "" {
		remote = `<remote><identity display="Caller ` + caller + `">sip:` + caller + `@pbx</identity></remote>`
	}
	return `<dialog id="` + id + `"><state>` + state + `</state>` + remote + `</dialog>`
}

// TestApply runs documents through one subscription (or a new one, after
// "resubscribe") and checks the events and the requests for full state.
func TestApply(t *testing.T) {
	type step struct {
		info        *sipstack.DialogInfo // nil: a new subscription (PBX restart)
		want        pbxevents.Kind
		caller      string
		wantFullReq bool
	}
	const none = pbxevents.Kind("")
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"capture: terminated, confirmed, stale repeat", []step{
			{info: doc("0", "full", dlg("704", "terminated", ""))},
			{info: doc("1", "full", dlg("704", "confirmed", "")), want: pbxevents.Parked},
			{info: doc("1", "full", dlg("704", "confirmed", ""))},
			{info: doc("2", "full"), want: pbxevents.Retrieved},
		}},
		{"stale older document ignored", []step{
			{info: doc("5", "full", dlg("704", "confirmed", "201")), want: pbxevents.Parked, caller: "Caller 201 <sip:201@pbx>"},
			{info: doc("4", "full")},
			{info: doc("6", "full"), want: pbxevents.Retrieved, caller: "Caller 201 <sip:201@pbx>"},
		}},
		{"early counts as occupied", []step{
			{info: doc("0", "full", dlg("a", "early", "300")), want: pbxevents.Parked, caller: "Caller 300 <sip:300@pbx>"},
			{info: doc("1", "partial", dlg("a", "confirmed", "300"))},
			{info: doc("2", "partial", dlg("a", "terminated", "")), want: pbxevents.Retrieved, caller: "Caller 300 <sip:300@pbx>"},
		}},
		{"partial updates, two dialogs", []step{
			{info: doc("0", "full")},
			{info: doc("1", "partial", dlg("a", "confirmed", "201")), want: pbxevents.Parked, caller: "Caller 201 <sip:201@pbx>"},
			{info: doc("2", "partial", dlg("b", "confirmed", "202"))},
			{info: doc("3", "partial", dlg("a", "terminated", ""))},
			{info: doc("4", "partial", dlg("b", "terminated", "")), want: pbxevents.Retrieved, caller: "Caller 201 <sip:201@pbx>"},
		}},
		{"partial with a gap asks for full state", []step{
			{info: doc("0", "full")},
			{info: doc("2", "partial", dlg("a", "confirmed", "")), wantFullReq: true},
			{info: doc("3", "full", dlg("a", "confirmed", "")), want: pbxevents.Parked},
		}},
		{"partial first asks for full state", []step{
			{info: doc("9", "partial", dlg("a", "confirmed", "")), wantFullReq: true},
			{info: doc("10", "full", dlg("a", "confirmed", "")), want: pbxevents.Parked},
		}},
		{"restart: new subscription, still parked, no second Parked", []step{
			{info: doc("3", "full", dlg("704", "confirmed", "201")), want: pbxevents.Parked, caller: "Caller 201 <sip:201@pbx>"},
			{info: nil},
			{info: doc("0", "full", dlg("704", "confirmed", "201"))},
			{info: doc("1", "full"), want: pbxevents.Retrieved, caller: "Caller 201 <sip:201@pbx>"},
		}},
		{"restart: slot emptied while the PBX was away", []step{
			{info: doc("3", "full", dlg("704", "confirmed", "")), want: pbxevents.Parked},
			{info: nil},
			{info: doc("0", "full", dlg("704", "terminated", "")), want: pbxevents.Retrieved},
		}},
		{"unknown state is not a call", []step{
			{info: doc("0", "full", dlg("a", "ringing-ish", ""))},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Watcher{log: slog.New(slog.DiscardHandler), subs: map[string]*subscription{}}
			s := &slot{ext: "704", local: "714"}
			sub := &subscription{slot: s}
			for i, st := range tc.steps {
				if st.info == nil {
					sub = &subscription{slot: s}
					continue
				}
				evs := w.apply(sub, *st.info)
				if sub.needFull != st.wantFullReq {
					t.Errorf("step %d: needFull %v", i, sub.needFull)
				}
				sub.needFull = false
				if st.want == none {
					if len(evs) != 0 {
						t.Errorf("step %d: events %+v, want none", i, evs)
					}
					continue
				}
				if len(evs) != 1 {
					t.Fatalf("step %d: events %+v, want one %s", i, evs, st.want)
				}
				e := evs[0]
				if e.Kind != st.want || e.Caller != st.caller || e.Slot != "714" || e.ExternalSlot != "704" ||
					e.Source != "blf" || e.Time.IsZero() || e.Retriever != "" || e.Parker != "" {
					t.Errorf("step %d: %+v, want %s caller %q", i, e, st.want, st.caller)
				}
			}
		})
	}
}

func TestParseSubscriptionState(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want subscriptionState
	}{
		{"active;expires=299", subscriptionState{expires: 299 * time.Second}},
		{"active", subscriptionState{expires: -1}},
		{"pending;expires=30", subscriptionState{expires: 30 * time.Second}},
		{"terminated", subscriptionState{terminated: true, expires: -1}},
		{"Terminated ; reason=Timeout", subscriptionState{terminated: true, reason: "timeout", expires: -1}},
		{"terminated;reason=probation;retry-after=30", subscriptionState{terminated: true, reason: "probation", expires: -1, retryAfter: 30 * time.Second}},
		{"active;expires=soon", subscriptionState{expires: -1}},
		{"active;expires=-5", subscriptionState{expires: -1}},
	} {
		if got := parseSubscriptionState(sip.NewHeader("Subscription-State", tc.in)); got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if got := parseSubscriptionState(nil); got != (subscriptionState{expires: -1}) {
		t.Errorf("no header: %+v", got)
	}
}

func TestRefreshDelay(t *testing.T) {
	for _, tc := range []struct{ granted, want time.Duration }{
		{2 * time.Second, time.Second},
		{60 * time.Second, 30 * time.Second},
		{120 * time.Second, 60 * time.Second},
		{600 * time.Second, 540 * time.Second},
		{3600 * time.Second, 3540 * time.Second},
		{-time.Second, 0},
	} {
		if got := refreshDelay(tc.granted); got != tc.want {
			t.Errorf("refreshDelay(%v) = %v, want %v", tc.granted, got, tc.want)
		}
	}
}

// requesterFunc adapts a func to Requester.
type requesterFunc func(ctx context.Context, req *sip.Request, auth sipgo.DigestAuth) (*sip.Response, error)

func (f requesterFunc) Request(ctx context.Context, req *sip.Request, auth sipgo.DigestAuth) (*sip.Response, error) {
	return f(ctx, req, auth)
}

func TestNewChecksConfig(t *testing.T) {
	unused := requesterFunc(func(context.Context, *sip.Request, sipgo.DigestAuth) (*sip.Response, error) {
		t.Error("New sent a request")
		return nil, context.Canceled
	})
	opts := Options{SIP: unused, Contact: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 5070}, Sink: func(pbxevents.ParkEvent) {}}
	good := config.BLFWatch{Server: "sip:pbx.lan:5080", Slots: config.Range{First: 701, Last: 703}}
	for _, tc := range []struct {
		name   string
		cfg    func(*config.BLFWatch)
		opts   func(*Options)
		ok     bool
		check  func(*testing.T, *Watcher)
		server string
	}{
		{name: "defaults", ok: true, check: func(t *testing.T, w *Watcher) {
			if len(w.slots) != 3 || w.slots[2].uri.String() != "sip:703@pbx.lan:5080" || w.dest != "pbx.lan:5080" ||
				w.expires != DefaultExpires || w.from.String() != "sip:parkpage@pbx.lan" {
				t.Errorf("slots %d, uri %s, dest %s, expires %v, from %s", len(w.slots), w.slots[2].uri.String(), w.dest, w.expires, w.from.String())
			}
		}},
		{name: "server without scheme or port, uri template, user", ok: true, cfg: func(c *config.BLFWatch) {
			c.Server, c.URI, c.Username, c.Expires = "10.0.0.5", "sip:park+{slot}@pbx.example.com", "201", config.Duration(30*time.Second)
		}, check: func(t *testing.T, w *Watcher) {
			if w.slots[0].uri.String() != "sip:park+701@pbx.example.com" || w.dest != "10.0.0.5:5060" ||
				w.from.String() != "sip:201@pbx.example.com" || w.expires != 30*time.Second {
				t.Errorf("uri %s, dest %s, from %s, expires %v", w.slots[0].uri.String(), w.dest, w.from.String(), w.expires)
			}
		}},
		{name: "slot map", ok: true, opts: func(o *Options) { o.Mapper = pbxevents.NewSlotMapper(map[string]string{"702": "712"}) },
			check: func(t *testing.T, w *Watcher) {
				if w.slots[1].local != "712" || w.slots[0].local != "701" {
					t.Errorf("locals %s %s", w.slots[0].local, w.slots[1].local)
				}
			}},
		{name: "no server", cfg: func(c *config.BLFWatch) { c.Server = "" }},
		{name: "no slots", cfg: func(c *config.BLFWatch) { c.Slots = config.Range{} }},
		{name: "too many slots", cfg: func(c *config.BLFWatch) { c.Slots = config.Range{First: 1, Last: MaxSlots + 1} }},
		{name: "bad uri template", cfg: func(c *config.BLFWatch) { c.URI = "{slot}" }},
		{name: "no sip stack", opts: func(o *Options) { o.SIP = nil }},
		{name: "no contact", opts: func(o *Options) { o.Contact = sip.Uri{} }},
		// The PBX sends its NOTIFYs to the Contact: a wildcard or a name
		// it may not resolve will not do.
		{name: "contact 0.0.0.0", opts: func(o *Options) { o.Contact.Host = "0.0.0.0" }},
		{name: "contact ::", opts: func(o *Options) { o.Contact.Host = "::" }},
		{name: "contact localhost", opts: func(o *Options) { o.Contact.Host = "localhost" }},
		{name: "contact nonsense", opts: func(o *Options) { o.Contact.Host = "nonsense" }},
		{name: "no sink", opts: func(o *Options) { o.Sink = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, o := good, opts
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if tc.opts != nil {
				tc.opts(&o)
			}
			w, err := New(cfg, o)
			if tc.ok != (err == nil) {
				t.Fatalf("New: %v", err)
			}
			if tc.check != nil {
				tc.check(t, w)
			}
		})
	}
}

// TestStackRefusesUnknownNotify: a NOTIFY for no subscription of ours
// (one we dropped, or never made) that reaches the SIP stack gets 481 so
// the PBX stops sending them, with and without a watcher asked about it.
func TestStackRefusesUnknownNotify(t *testing.T) {
	stack := startStack(t, slog.New(slog.DiscardHandler))
	contact, err := stack.Contact("parkpage")
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(config.BLFWatch{Server: "sip:127.0.0.1:9", Slots: config.Range{First: 701, Last: 701}},
		Options{SIP: stack, Contact: contact, Sink: func(pbxevents.ParkEvent) { t.Error("event from a stray NOTIFY") }})
	if err != nil {
		t.Fatal(err)
	}

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("pbx"))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	pbx, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	notify := func() int {
		req := sip.NewRequest(sip.NOTIFY, contact)
		req.AppendHeader(sip.NewHeader("Event", "dialog"))
		req.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=60"))
		req.AppendHeader(sip.NewHeader("Content-Type", sipstack.ContentTypeDialogInfo))
		req.SetBody([]byte(`<dialog-info version="1" state="full" entity="sip:701@pbx"><dialog id="1"><state>confirmed</state></dialog></dialog-info>`))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := pbx.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	if code := notify(); code != 481 {
		t.Errorf("no handler: %d, want 481", code)
	}
	remove := stack.HandleNotify(w.HandleNotify)
	defer remove()
	if code := notify(); code != 481 {
		t.Errorf("watcher handler: %d, want 481", code)
	}
}
