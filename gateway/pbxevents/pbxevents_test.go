package pbxevents

import (
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

func TestSlotMapper(t *testing.T) {
	sm := NewSlotMapper(map[string]string{"71": "701", " 72 ": " 702", "73": ""})
	for _, tc := range []struct{ ext, want string }{
		{"71", "701"},
		{"72", "702"},
		{" 71 ", "701"},
		{"73", "73"}, // empty mapping keeps the number
		{"704", "704"},
		{"", ""},
	} {
		if got := sm.Local(tc.ext); got != tc.want {
			t.Errorf("Local(%q) = %q, want %q", tc.ext, got, tc.want)
		}
	}
	var nilMapper *SlotMapper
	if got := nilMapper.Local("705"); got != "705" {
		t.Errorf("nil mapper: Local(705) = %q", got)
	}
	if got := NewSlotMapper(nil).Local("706"); got != "706" {
		t.Errorf("empty mapper: Local(706) = %q", got)
	}
}

func TestParty(t *testing.T) {
	for _, tc := range []struct{ name, num, want string }{
		{"Phone 201", "201", "Phone 201 <201>"},
		{"", "201", "201"},
		{"Phone 201", "", "Phone 201"},
		{"<unknown>", "<unknown>", ""},
		{"<unknown>", "202", "202"},
		{"203", "203", "203"},
		{" ACME ", " sip:+1555@pbx.lan ", "ACME <sip:+1555@pbx.lan>"},
	} {
		if got := Party(tc.name, tc.num); got != tc.want {
			t.Errorf("Party(%q, %q) = %q, want %q", tc.name, tc.num, got, tc.want)
		}
	}
}

func TestKinds(t *testing.T) {
	for _, tc := range []struct {
		k    Kind
		ends bool
		typ  events.Type
	}{
		{Parked, false, events.CallParked},
		{Retrieved, true, events.CallRetrieved},
		{TimedOut, true, events.CallTimedOut},
		{Abandoned, true, events.CallAbandoned},
	} {
		if tc.k.Ends() != tc.ends {
			t.Errorf("%s.Ends() = %v", tc.k, !tc.ends)
		}
		if tc.k.EventType() != tc.typ {
			t.Errorf("%s.EventType() = %q, want %q", tc.k, tc.k.EventType(), tc.typ)
		}
	}
}

func TestBusEvent(t *testing.T) {
	now := time.Unix(1795604269, 0)
	e := ParkEvent{Kind: Retrieved, Slot: "712", ExternalSlot: "702", Lot: "default",
		Caller: "Phone 201 <201>", Parker: "PJSIP/201", Retriever: "Phone 202 <202>",
		Source: SourceAMI, Time: now}
	got := e.BusEvent()
	want := events.Event{Time: now, Type: events.CallRetrieved, Lot: "default", Slot: "712",
		Caller: "Phone 201 <201>", Parker: "PJSIP/201", Retriever: "Phone 202 <202>", Source: "ami"}
	if got.Time != want.Time || got.Type != want.Type || got.Lot != want.Lot || got.Slot != want.Slot ||
		got.Caller != want.Caller || got.Parker != want.Parker || got.Retriever != want.Retriever ||
		got.Source != want.Source {
		t.Errorf("BusEvent = %+v, want %+v", got, want)
	}
}
