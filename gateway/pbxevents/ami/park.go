package ami

import (
	"strconv"
	"strings"
	"time"

	"github.com/parkpage/parkpage/gateway/pbxevents"
)

// parkKinds maps res_parking's manager events (Asterisk 12 and later) to
// park event kinds. ParkedCallSwap: another channel took the parked call's
// place in the same space (a transfer to a parked call), so it reports the
// new parkee.
var parkKinds = map[string]pbxevents.Kind{
	"parkedcall":        pbxevents.Parked,
	"parkedcallswap":    pbxevents.Parked,
	"unparkedcall":      pbxevents.Retrieved,
	"parkedcalltimeout": pbxevents.TimedOut,
	"parkedcallgiveup":  pbxevents.Abandoned,
}

// parkEvent turns a res_parking event into a ParkEvent; ok is false for any
// other message. Field names are those of res_parking's
// manager_build_parked_call_string: the parkee's channel snapshot prefixed
// "Parkee", the retriever's "Retriever", then ParkerDialString, Parkinglot
// and ParkingSpace (see testdata/ami-park-session.txt).
func parkEvent(m Message, sm *pbxevents.SlotMapper, now time.Time) (ev pbxevents.ParkEvent, ok bool) {
	kind, ok := parkKinds[strings.ToLower(m.Get("Event"))]
	if !ok {
		return ev, false
	}
	space := strings.TrimSpace(m.Get("ParkingSpace"))
	if space == "" {
		return ev, false
	}
	ev = pbxevents.ParkEvent{
		Kind:         kind,
		Slot:         sm.Local(space),
		ExternalSlot: space,
		Lot:          m.Get("Parkinglot"),
		Caller:       pbxevents.Party(m.Get("ParkeeCallerIDName"), m.Get("ParkeeCallerIDNum")),
		Parker:       pbxevents.Party(m.Get("ParkerCallerIDName"), m.Get("ParkerCallerIDNum")),
		Source:       pbxevents.SourceAMI,
		Time:         now,
	}
	if ev.Parker == "" {
		ev.Parker = m.Get("ParkerDialString")
	}
	if kind == pbxevents.Retrieved {
		ev.Retriever = pbxevents.Party(m.Get("RetrieverCallerIDName"), m.Get("RetrieverCallerIDNum"))
	}
	if t, ok := parseTimestamp(m.Get("Timestamp")); ok {
		ev.Time = t
	}
	return ev, true
}

// parseTimestamp reads the "Timestamp: 1795604261.775282" field that
// manager.conf's timestampevents=yes adds, without float rounding.
func parseTimestamp(s string) (time.Time, bool) {
	secs, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return time.Time{}, false
		}
		nsec = int64(n)
		for i := len(frac); i < 9; i++ {
			nsec *= 10
		}
	}
	return time.Unix(sec, nsec), true
}
