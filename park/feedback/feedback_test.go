package feedback

import (
	"testing"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/sipstack"
)

func TestWhoIsTold(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    events.Event
		want string
	}{
		{"blind park", events.Event{Type: events.CallParked, Slot: "704", Parker: `"Anna" <sip:201@pbx.lan>`, Source: "local"}, "201"},
		{"no source", events.Event{Type: events.CallParked, Slot: "704", Parker: "<sip:201@pbx.lan>"}, "201"},
		{"attended: heard the slot", events.Event{Type: events.CallParked, Slot: "704", Parker: "<sip:201@pbx.lan>", Reason: "attended transfer"}, ""},
		{"a PBX's park", events.Event{Type: events.CallParked, Slot: "704", Parker: "<sip:201@pbx.lan>", Source: "ami"}, ""},
		{"parker unknown", events.Event{Type: events.CallParked, Slot: "704"}, ""},
		{"bare host", events.Event{Type: events.CallParked, Slot: "704", Parker: "<sip:pbx.lan>"}, ""},
		{"retrieved", events.Event{Type: events.CallRetrieved, Slot: "704", Parker: "<sip:201@pbx.lan>"}, ""},
	} {
		got, ok := parkerToTell(tc.e)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: %q %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestRequest(t *testing.T) {
	n := New(Options{Stack: nil})
	req, err := n.requestTo("park.lan", sipstack.Binding{User: "201", Contact: "sip:201@10.0.0.31:5062;transport=tcp", Transport: "tcp"}, "704")
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "MESSAGE" || string(req.Body()) != "Parked at 704" || req.Recipient.Host != "10.0.0.31" ||
		req.GetHeader("Content-Type").Value() != "text/plain;charset=UTF-8" || req.Transport() != "TCP" {
		t.Fatalf("request:\n%s", req)
	}
	if _, err := n.requestTo("park.lan", sipstack.Binding{User: "201", Contact: "not a uri"}, "704"); err == nil {
		t.Fatal("bad contact accepted")
	}
}
