// Package pbxevents is the common language of the sources that report park
// events held by another PBX (issue 7, "park events from elsewhere"): the
// Asterisk AMI client (package ami), the BLF watcher (package blfwatch) and
// the webhook. Each source turns what it hears into a ParkEvent whose Slot is
// already mapped to parkpage's own slot configuration, and hands it to a Sink.
// Sources runs the configured sources (config section external), restarts
// them when it changes, and takes the webhook; the wiring hands it the
// sources' constructors (ami.Source, blfwatch.Source).
//
// This package must not import the sources, the gateway or any SIP code.
package pbxevents

import (
	"strings"
	"time"

	"github.com/parkpage/parkpage/internal/events"
)

// Kind says what happened to a parked call.
type Kind string

// Kinds of park event.
const (
	// Parked: a call entered a slot. A Parked event for a slot that is
	// already occupied (AMI ParkedCallSwap) replaces its caller.
	Parked Kind = "parked"
	// Retrieved: someone picked the call up. The BLF watcher cannot tell a
	// pickup from a give-up or a timeout (the slot just goes idle), so from
	// Source "blf" it means only "the slot is free again" and Retriever is
	// empty.
	Retrieved Kind = "retrieved"
	// TimedOut: the park timeout expired and the PBX rang the parker back.
	TimedOut Kind = "timed_out"
	// Abandoned: the parked caller hung up.
	Abandoned Kind = "abandoned"
)

// Ends reports whether k ends a park: the slot is free afterwards and any
// announcement for it must stop.
func (k Kind) Ends() bool { return k == Retrieved || k == TimedOut || k == Abandoned }

// EventType is the bus event type for k.
func (k Kind) EventType() events.Type {
	switch k {
	case Parked:
		return events.CallParked
	case Retrieved:
		return events.CallRetrieved
	case TimedOut:
		return events.CallTimedOut
	case Abandoned:
		return events.CallAbandoned
	}
	return events.Type("call." + string(k))
}

// Sources of park events, as in ParkEvent.Source and events.Event.Source.
const (
	SourceAMI     = "ami"
	SourceBLF     = "blf"
	SourceWebhook = "webhook"
)

// ParkEvent is one park event reported by another PBX.
type ParkEvent struct {
	Kind Kind
	// Slot is the local slot number (after the SlotMapper), ExternalSlot the
	// PBX's own.
	Slot         string
	ExternalSlot string
	// Lot is the PBX's parking lot name, when it says ("default").
	Lot string
	// Caller is the parked party, "Name <number-or-uri>" when both are known.
	Caller string
	// Parker is who parked the call (AMI: the parker's dial string,
	// "PJSIP/201"); often empty.
	Parker string
	// Retriever is who picked it up (AMI UnParkedCall only).
	Retriever string
	// Source is SourceAMI, SourceBLF or SourceWebhook.
	Source string
	// Time is when the PBX says it happened, or when it was heard.
	Time time.Time
}

// BusEvent converts e to an event for the events bus.
func (e ParkEvent) BusEvent() events.Event {
	return events.Event{
		Time:      e.Time,
		Type:      e.Kind.EventType(),
		Lot:       e.Lot,
		Slot:      e.Slot,
		Caller:    e.Caller,
		Parker:    e.Parker,
		Retriever: e.Retriever,
		Source:    e.Source,
	}
}

// Sink receives park events. A source calls its Sink from one goroutine at a
// time, in the order the events happened, and waits for it to return: a Sink
// must not block (hand the event to a buffered channel or the events bus and
// return) and must not call back into the source.
type Sink func(ParkEvent)

// Party formats a caller ID as "Name <number>", or whichever half is known.
// Asterisk's "<unknown>" placeholders count as unknown.
func Party(name, number string) string {
	name, number = clean(name), clean(number)
	switch {
	case name == "" || name == number:
		return number
	case number == "":
		return name
	}
	return name + " <" + number + ">"
}

func clean(s string) string {
	s = strings.TrimSpace(s)
	if s == "<unknown>" {
		return ""
	}
	return s
}

// SlotMapper maps a PBX's slot numbers to local slots. The zero value and a
// nil *SlotMapper map every slot to itself.
type SlotMapper struct {
	m map[string]string
}

// NewSlotMapper builds a mapper from config.External.SlotMap ("71": "701").
// Slots missing from m keep their number.
func NewSlotMapper(m map[string]string) *SlotMapper {
	sm := &SlotMapper{m: make(map[string]string, len(m))}
	for ext, local := range m {
		sm.m[strings.TrimSpace(ext)] = strings.TrimSpace(local)
	}
	return sm
}

// Local returns the local slot for the PBX's slot external.
func (sm *SlotMapper) Local(external string) string {
	external = strings.TrimSpace(external)
	if sm != nil {
		if local, ok := sm.m[external]; ok && local != "" {
			return local
		}
	}
	return external
}
