package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// amiBlock returns the first event block of type name holding with in the
// Asterisk 22 capture, as sent on the wire (CRLF lines, blank line after).
func amiBlock(t *testing.T, name, with string) string {
	t.Helper()
	b, err := os.ReadFile("../../gateway/pbxevents/ami/testdata/ami-park-session.txt") // the Asterisk 22 capture
	if err != nil {
		t.Fatalf("AMI fixture: %v", err)
	}
	for _, blk := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		if strings.HasPrefix(strings.TrimLeft(blk, "\n"), "Event: "+name+"\n") && strings.Contains(blk, with) {
			return strings.ReplaceAll(strings.Trim(blk, "\n"), "\n", "\r\n") + "\r\n\r\n"
		}
	}
	t.Fatalf("no %s event in the fixture", name)
	return ""
}

// A park held by an Asterisk PBX, reported over AMI, is announced on the
// slot's zone through the whole appliance, and its UnParkedCall stops it.
// The PBX here is a small AMI server speaking the protocol over TCP with
// the events of a real Asterisk 22 capture.
func TestAMIParkEventsAnnounced(t *testing.T) {
	t.Parallel()
	// The capture's call parked in 702 and picked up from there by 202.
	parked, unparked := amiBlock(t, "ParkedCall", "ParkingSpace: 702"), amiBlock(t, "UnParkedCall", "ParkingSpace: 702")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	send := make(chan string, 2)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(c, "Asterisk Call Manager/11.0.0\r\n")
		r := bufio.NewReader(c)
		// Answer every action (Login, Ping) with Success and its ActionID.
		// Like Asterisk, send events only once logged in.
		loggedIn := make(chan struct{})
		go func() {
			defer func() {
				select {
				case <-loggedIn:
				default:
					close(loggedIn)
				}
			}()
			id := ""
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimRight(line, "\r\n")
				if v, ok := strings.CutPrefix(line, "ActionID: "); ok {
					id = v
				}
				if line == "" {
					fmt.Fprintf(c, "Response: Success\r\nActionID: %s\r\nMessage: Authentication accepted\r\n\r\n", id)
					id = ""
					select {
					case <-loggedIn:
					default:
						close(loggedIn)
					}
				}
			}
		}()
		<-loggedIn
		for blk := range send {
			fmt.Fprint(c, blk)
		}
	}()
	port := proctest.FreePort(t, "udp")
	y := fmt.Sprintf(`
external:
  ami: {address: %q, username: parkpage, secret: s3cret}
park:
  lots:
    - extension: "700"
      slots: 701-710
      label: Front
      announce: {zones: [front]}
announce:
  chime: none
  lead_in: 100ms
zones:
  front:
    outputs:
      - {type: rtp, group: 239.255.90.5, port: %d, codec: pcmu, interface: lo, loopback: true}
`, ln.Addr().String(), port)
	l := mcasttest.Record(t, "239.255.90.5", port)
	ap := startInproc(t, y)
	send <- parked
	e, _ := ap.waitEvent(events.CallParked, 0, 10*time.Second)
	if e.e.Slot != "702" || e.e.Source != "ami" || !strings.Contains(e.e.Caller, "201") {
		t.Errorf("parked event %+v", e.e)
	}
	l.Wait(t, 20, 10*time.Second)
	send <- unparked
	r, _ := ap.waitEvent(events.CallRetrieved, 0, 10*time.Second)
	if r.e.Slot != "702" || !strings.Contains(r.e.Retriever, "202") {
		t.Errorf("retrieved event %+v", r.e)
	}
	end, _ := ap.waitEvent(events.PageEnded, 0, 5*time.Second)
	if end.e.Reason != "cancelled" {
		t.Errorf("announcement ended %q, want cancelled by the unpark", end.e.Reason)
	}
	close(send)
}
