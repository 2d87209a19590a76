package sipstack

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Dialog states of RFC 4235.
const (
	DialogTrying     = "trying"
	DialogEarly      = "early"
	DialogConfirmed  = "confirmed"
	DialogTerminated = "terminated"
)

// DialogEntry is one <dialog> of a dialog-info document.
type DialogEntry struct {
	ID        string // unique within the document
	State     string // trying, early, confirmed, terminated
	Direction string // initiator, recipient or ""
	// Remote is the other party (the parked caller); shown by phones.
	RemoteDisplay string
	RemoteURI     string
	// LocalURI is the entity's own URI.
	LocalURI string
}

// DialogInfo is an RFC 4235 application/dialog-info+xml document.
type DialogInfo struct {
	Version uint32
	State   string // full or partial
	Entity  string
	Dialogs []DialogEntry
}

// ContentTypeDialogInfo is the MIME type of dialog-info documents.
const ContentTypeDialogInfo = "application/dialog-info+xml"

func escAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(cleanXML(s)))
	return b.String()
}

// cleanXML drops characters XML 1.0 cannot carry.
func cleanXML(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
			return ' '
		case r < 0x20, r == 0xFFFE, r == 0xFFFF:
			return -1
		case r >= 0xD800 && r <= 0xDFFF:
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}

// Marshal writes the document. Every value is escaped, so identities taken
// from SIP headers cannot inject markup.
func (d DialogInfo) Marshal() []byte {
	state := d.State
	if state == "" {
		state = "full"
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="%d" state="%s" entity="%s">`+"\n",
		d.Version, escAttr(state), escAttr(d.Entity))
	for _, e := range d.Dialogs {
		b.WriteString(`  <dialog id="` + escAttr(e.ID) + `"`)
		if e.Direction != "" {
			b.WriteString(` direction="` + escAttr(e.Direction) + `"`)
		}
		b.WriteString(">\n    <state>" + escAttr(e.State) + "</state>\n")
		if e.RemoteURI != "" {
			b.WriteString("    <remote><identity")
			if e.RemoteDisplay != "" {
				b.WriteString(` display="` + escAttr(e.RemoteDisplay) + `"`)
			}
			b.WriteString(">" + escAttr(e.RemoteURI) + "</identity><target uri=\"" + escAttr(e.RemoteURI) + "\"/></remote>\n")
		}
		if e.LocalURI != "" {
			b.WriteString("    <local><identity>" + escAttr(e.LocalURI) + "</identity><target uri=\"" + escAttr(e.LocalURI) + "\"/></local>\n")
		}
		b.WriteString("  </dialog>\n")
	}
	b.WriteString("</dialog-info>\n")
	return []byte(b.String())
}

type xmlIdentity struct {
	Display string `xml:"display,attr"`
	URI     string `xml:",chardata"`
}

type xmlParty struct {
	Identity xmlIdentity `xml:"identity"`
}

type xmlDialog struct {
	ID        string   `xml:"id,attr"`
	Direction string   `xml:"direction,attr"`
	State     string   `xml:"state"`
	Remote    xmlParty `xml:"remote"`
	Local     xmlParty `xml:"local"`
}

type xmlDialogInfo struct {
	XMLName xml.Name    `xml:"urn:ietf:params:xml:ns:dialog-info dialog-info"`
	Version string      `xml:"version,attr"`
	State   string      `xml:"state,attr"`
	Entity  string      `xml:"entity,attr"`
	Dialogs []xmlDialog `xml:"dialog"`
}

// ParseDialogInfo reads a dialog-info document (for tests and for
// subscribing to other servers).
func ParseDialogInfo(b []byte) (DialogInfo, error) {
	if len(b) > 256<<10 {
		return DialogInfo{}, errors.New("dialog-info: document larger than 256 KiB")
	}
	var x xmlDialogInfo
	if err := xml.Unmarshal(b, &x); err != nil {
		return DialogInfo{}, fmt.Errorf("dialog-info: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(x.Version), 10, 32)
	if err != nil {
		return DialogInfo{}, fmt.Errorf("dialog-info: version %q: %w", x.Version, err)
	}
	d := DialogInfo{Version: uint32(v), State: x.State, Entity: x.Entity}
	for _, xd := range x.Dialogs {
		d.Dialogs = append(d.Dialogs, DialogEntry{
			ID: xd.ID, Direction: xd.Direction, State: strings.TrimSpace(xd.State),
			RemoteDisplay: xd.Remote.Identity.Display, RemoteURI: strings.TrimSpace(xd.Remote.Identity.URI),
			LocalURI: strings.TrimSpace(xd.Local.Identity.URI),
		})
	}
	return d, nil
}
