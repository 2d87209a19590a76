package ami

import (
	"reflect"
	"testing"
	"time"

	"github.com/parkpage/parkpage/gateway/pbxevents"
)

func TestParkEvent(t *testing.T) {
	now := time.Unix(1800000000, 0)
	sm := pbxevents.NewSlotMapper(map[string]string{"71": "701"})
	parkee := Message{
		{"ParkeeChannel", "PJSIP/trunk-00000007"},
		{"ParkeeCallerIDNum", "+15551234567"},
		{"ParkeeCallerIDName", "ACME Supply"},
		{"ParkerDialString", "PJSIP/201"},
		{"Parkinglot", "sales"},
		{"ParkingSpace", "71"},
	}
	ev := func(typ string, extra ...Field) Message {
		m := Message{{"Event", typ}, {"Privilege", "call,all"}}
		m = append(m, parkee...)
		return append(m, extra...)
	}
	base := pbxevents.ParkEvent{Slot: "701", ExternalSlot: "71", Lot: "sales", Caller: "ACME Supply <+15551234567>",
		Parker: "PJSIP/201", Source: "ami", Time: now}
	with := func(k pbxevents.Kind, f func(*pbxevents.ParkEvent)) pbxevents.ParkEvent {
		e := base
		e.Kind = k
		if f != nil {
			f(&e)
		}
		return e
	}
	for _, tc := range []struct {
		name string
		m    Message
		want *pbxevents.ParkEvent
	}{
		{"parked", ev("ParkedCall"), new(with(pbxevents.Parked, nil))},
		{"swap reports the new parkee", Message{{"Event", "ParkedCallSwap"}, {"ParkeeCallerIDNum", "204"},
			{"ParkeeCallerIDName", "Phone 204"}, {"ParkerDialString", "PJSIP/201"}, {"Parkinglot", "sales"},
			{"ParkingSpace", "71"}},
			new(with(pbxevents.Parked, func(e *pbxevents.ParkEvent) { e.Caller = "Phone 204 <204>" }))},
		{"unparked", ev("UnParkedCall", Field{"RetrieverCallerIDNum", "202"}, Field{"RetrieverCallerIDName", "Phone 202"}),
			new(with(pbxevents.Retrieved, func(e *pbxevents.ParkEvent) { e.Retriever = "Phone 202 <202>" }))},
		{"timeout", ev("ParkedCallTimeOut"), new(with(pbxevents.TimedOut, nil))},
		{"give up, event name in another case", ev("parkedcallgiveup"), new(with(pbxevents.Abandoned, nil))},
		{"parker caller id preferred to the dial string", ev("ParkedCall", Field{"ParkerCallerIDNum", "201"}),
			new(with(pbxevents.Parked, func(e *pbxevents.ParkEvent) { e.Parker = "201" }))},
		{"timestamp", ev("ParkedCall", Field{"Timestamp", "1795604261.775282"}),
			new(with(pbxevents.Parked, func(e *pbxevents.ParkEvent) { e.Time = time.Unix(1795604261, 775282000) }))},
		{"bad timestamp falls back to now", ev("ParkedCall", Field{"Timestamp", "soon"}), new(with(pbxevents.Parked, nil))},
		{"unknown caller", Message{{"Event", "ParkedCall"}, {"ParkeeCallerIDNum", "<unknown>"},
			{"ParkeeCallerIDName", "<unknown>"}, {"ParkingSpace", "702"}},
			&pbxevents.ParkEvent{Kind: pbxevents.Parked, Slot: "702", ExternalSlot: "702", Source: "ami", Time: now}},
		{"no space", Message{{"Event", "ParkedCall"}, {"Parkinglot", "default"}}, nil},
		{"other event", Message{{"Event", "Newchannel"}, {"ParkingSpace", "701"}}, nil},
		{"a response", Message{{"Response", "Success"}, {"Ping", "Pong"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parkEvent(tc.m, sm, now)
			if tc.want == nil {
				if ok {
					t.Fatalf("got %+v, want none", got)
				}
				return
			}
			if !ok || !reflect.DeepEqual(got, *tc.want) {
				t.Fatalf("got %+v (%v)\nwant %+v", got, ok, *tc.want)
			}
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1795604261.775282", time.Unix(1795604261, 775282000), true},
		{"1795604261", time.Unix(1795604261, 0), true},
		{"1795604261.1234567891234", time.Unix(1795604261, 123456789), true},
		{"1795604261.", time.Unix(1795604261, 0), true},
		{"", time.Time{}, false},
		{"-5.1", time.Time{}, false},
		{"12.x", time.Time{}, false},
	} {
		got, ok := parseTimestamp(tc.in)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseTimestamp(%q) = %v, %v", tc.in, got, ok)
		}
	}
}
