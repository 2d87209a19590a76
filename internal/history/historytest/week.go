// Package historytest scripts a week of parks on a fake clock through the
// real park server, for the history's and the console's tests. Only tests
// import it.
package historytest

import (
	"fmt"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/clocktest"
	"github.com/parkpage/parkpage/park"
)

// Users are the week's SIP users, indented to continue a sip: section:
// two receptionists in group "reception" and a warehouse clerk.
const Users = `  users:
    "201": {password: x, groups: [reception]}
    "202": {password: x, groups: [reception]}
    "301": {password: x}
`

// Park is the week's lot of ten slots (four labelled) and its zones.
const Park = `park:
  lots:
    - extension: "700"
      slots: 701-710
      timeout: 90s
      ringback_time: 30s
      fallback: "200"
      announce: {zones: [all]}
  slots:
    "701": {label: Front}
    "702": {label: Warehouse, announce: {zones: [warehouse]}}
    "703": {label: Showroom}
    "704": {label: Sales}
zones:
  all: {outputs: [{type: rtp, group: 239.1.1.1, port: 5000, interface: lo}]}
  warehouse: {outputs: [{type: rtp, group: 239.1.1.2, port: 5000, interface: lo}]}
`

// Start is Monday 2 December 2024, 08:00 UTC.
var Start = time.Date(2024, 12, 2, 8, 0, 0, 0, time.UTC)

func party(user, name string) park.Party {
	return park.Party{Display: name, URI: "sip:" + user + "@pbx.lan", User: user}
}

// ScriptWeek drives a real park server on a fake clock through a week:
// every day 40 parks on 701 picked up by reception, 10 on 702 of which 3
// ring back before the warehouse clerk picks them up, 5 on 704 of which
// one caller hangs up; 703 is never used. Every park event goes to the
// returned subscription's buffer.
func ScriptWeek(t testing.TB, clk *clocktest.Clock) (*config.Config, *events.Subscription) {
	t.Helper()
	cfg, _, err := config.Parse("week.yaml", []byte("sip:\n"+Users+Park))
	if err != nil {
		t.Fatal(err)
	}
	bus := events.New()
	sub := bus.Subscribe(1 << 16)
	srv, err := park.New(cfg, park.Options{Clock: clk, Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	caller := func(i int) park.Party { return party(fmt.Sprintf("+1555010%04d", i), fmt.Sprintf("Customer %d", i)) }
	parkIn := func(slot string, i int, parker park.Party) *park.Call {
		t.Helper()
		c, err := srv.Park(park.ParkRequest{Ext: slot, Caller: caller(i), Parker: parker})
		if err != nil {
			t.Fatalf("park %s: %v", slot, err)
		}
		return c
	}
	pickup := func(slot string, by park.Party) {
		t.Helper()
		c, err := srv.Retrieve(slot, by)
		if err != nil {
			t.Fatalf("retrieve %s: %v", slot, err)
		}
		srv.Retrieved(c.ID)
	}
	start := clk.Now()
	anna, ben, carl := party("201", "Anna"), party("202", "Ben"), party("301", "Carl")
	n := 0
	for day := range 7 {
		clk.Advance(start.Add(time.Duration(day) * 24 * time.Hour).Sub(clk.Now()))
		for i := range 40 {
			n++
			// 701 and 702 overlap: two slots in use at once.
			parkIn("701", n, carl)
			if i < 10 {
				parkIn("702", n+1000, anna)
				if i < 3 {
					// 95 s: the 90 s timeout rings the parker back (no
					// phone answers here: it falls back, then returns).
					clk.Advance(95 * time.Second)
				} else {
					clk.Advance(20 * time.Second)
				}
				pickup("702", carl)
			}
			clk.Advance(time.Duration(15+i) * time.Second)
			if i%2 == 0 {
				pickup("701", anna)
			} else {
				pickup("701", ben)
			}
			if i < 5 {
				c := parkIn("704", n+2000, ben)
				clk.Advance(time.Minute)
				if i == 0 {
					srv.Hangup(c.ID, "caller hung up")
				} else {
					pickup("704", anna)
				}
			}
			clk.Advance(5 * time.Minute)
		}
	}
	clk.Advance(start.Add(7 * 24 * time.Hour).Sub(clk.Now()))
	return cfg, sub
}
