package labelrec

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/labels"
	"github.com/parkpage/parkpage/internal/media"
)

func info(ct, body string) *sip.Request {
	req := sip.NewRequest(sip.INFO, sip.Uri{User: "x", Host: "127.0.0.1"})
	if ct != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ct))
	}
	req.SetBody([]byte(body))
	return req
}

func TestInfoDigit(t *testing.T) {
	for _, tc := range []struct {
		ct, body string
		want     media.Digit
		ok       bool
	}{
		{"application/dtmf-relay", "Signal=#\r\nDuration=160\r\n", '#', true},
		{"application/dtmf-relay", "Signal= 1\nDuration=100", '1', true},
		{"Application/DTMF-Relay", "signal=*", '*', true},
		{"application/dtmf", "5", '5', true},
		{"application/dtmf-relay", "Signal=a", 'A', true},
		{"application/dtmf-relay", "Signal=11", 0, false},
		{"application/dtmf-relay", "Signal=x", 0, false},
		{"application/dtmf-relay", "Duration=100", 0, false},
		{"text/plain", "Signal=1", 0, false},
		{"", "Signal=1", 0, false},
	} {
		d, ok := InfoDigit(info(tc.ct, tc.body))
		if d != tc.want || ok != tc.ok {
			t.Errorf("%q %q: %q %v, want %q %v", tc.ct, tc.body, d, ok, tc.want, tc.ok)
		}
	}
}

func FuzzInfoDigit(f *testing.F) {
	f.Add("application/dtmf-relay", "Signal=#\r\nDuration=160\r\n")
	f.Add("application/dtmf", "5")
	f.Fuzz(func(t *testing.T, ct, body string) {
		d, ok := InfoDigit(info(ct, body))
		if ok {
			if _, valid := media.EventCode(rune(d)); !valid {
				t.Fatalf("invalid digit %q accepted", d)
			}
		}
	})
}

func TestExtensions(t *testing.T) {
	cfg := &config.Config{Labels: config.Labels{RecordPrefix: "*7", AnnouncementPrefix: "off"}}
	cfg.Park.Lots = []*config.Lot{{Slots: config.Range{First: 701, Last: 703}}}
	got := Extensions(cfg)
	if len(got) != 3 || got["*7702"] != (Target{"702", labels.KindLabel}) {
		t.Fatalf("%v", got)
	}
	cfg.Labels.AnnouncementPrefix = "*8"
	if got := Extensions(cfg); len(got) != 6 || got["*8703"] != (Target{"703", labels.KindAnnouncement}) {
		t.Fatalf("%v", got)
	}
}
