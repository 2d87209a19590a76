package sipstack

// The one model of RFC 4235 dialog-info documents
// (application/dialog-info+xml): written by the stack's BLF notifier for
// parkpage's own slots, read by the BLF watcher of another PBX's slots.

import (
	"bytes"
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
	ID string // unique within the document
	// CallID, LocalTag and RemoteTag name the dialog (optional attributes).
	CallID, LocalTag, RemoteTag string
	// State is the dialog state: trying, proceeding, early, confirmed or
	// terminated (read in lower case).
	State     string
	Direction string // initiator, recipient or ""
	// Remote is the other party (the parked caller); shown by phones. Read
	// from its identity, or else its target URI.
	RemoteDisplay string
	RemoteURI     string
	// LocalURI is the entity's own URI.
	LocalURI string
}

// Active reports whether the dialog is in progress: anything but
// terminated (or a state RFC 4235 does not know).
func (d DialogEntry) Active() bool {
	switch d.State {
	case DialogTrying, "proceeding", DialogEarly, DialogConfirmed:
		return true
	}
	return false
}

// DialogInfo is an RFC 4235 application/dialog-info+xml document.
type DialogInfo struct {
	// Version increases by one per NOTIFY of a subscription (RFC 4235
	// §4.1); a document not newer than the last one seen is stale.
	Version uint64
	// State is "full" (the complete set of dialogs) or "partial" (only the
	// dialogs that changed).
	State string
	// Entity is the watched resource, "sip:703@pbx".
	Entity  string
	Dialogs []DialogEntry
}

// MaxDialogInfoSize bounds a dialog-info document read. A park slot's
// document holds one or two dialogs (a few hundred bytes); a PBX reporting
// a busy line stays far below this.
const MaxDialogInfoSize = 64 << 10

// ErrDialogInfoTooLarge: a dialog-info document exceeded MaxDialogInfoSize.
var ErrDialogInfoTooLarge = errors.New("dialog-info too large")

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
		for _, a := range [...][2]string{{"call-id", e.CallID}, {"local-tag", e.LocalTag}, {"remote-tag", e.RemoteTag}} {
			if a[1] != "" {
				b.WriteString(` ` + a[0] + `="` + escAttr(a[1]) + `"`)
			}
		}
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

type xmlParticipant struct {
	Identity struct {
		Display string `xml:"display,attr"`
		URI     string `xml:",chardata"`
	} `xml:"identity"`
	Target struct {
		URI string `xml:"uri,attr"`
	} `xml:"target"`
}

// uri is the identity, or else the target URI.
func (p xmlParticipant) uri() string {
	if uri := strings.TrimSpace(p.Identity.URI); uri != "" {
		return uri
	}
	return strings.TrimSpace(p.Target.URI)
}

// ParseDialogInfo reads a dialog-info document from another server (or,
// in tests, from the stack). The namespace is not checked (some PBXes get
// it wrong); the version and state attributes are required, as RFC 4235
// §4.1 says. States are read in lower case.
func ParseDialogInfo(body []byte) (DialogInfo, error) {
	if len(body) > MaxDialogInfoSize {
		return DialogInfo{}, fmt.Errorf("dialog-info of %d bytes: %w", len(body), ErrDialogInfoTooLarge)
	}
	var doc struct {
		XMLName xml.Name `xml:"dialog-info"`
		Version *string  `xml:"version,attr"`
		State   string   `xml:"state,attr"`
		Entity  string   `xml:"entity,attr"`
		Dialogs []struct {
			ID        string         `xml:"id,attr"`
			CallID    string         `xml:"call-id,attr"`
			LocalTag  string         `xml:"local-tag,attr"`
			RemoteTag string         `xml:"remote-tag,attr"`
			Direction string         `xml:"direction,attr"`
			State     string         `xml:"state"`
			Remote    xmlParticipant `xml:"remote"`
			Local     xmlParticipant `xml:"local"`
		} `xml:"dialog"`
	}
	if err := xml.NewDecoder(bytes.NewReader(body)).Decode(&doc); err != nil {
		return DialogInfo{}, fmt.Errorf("dialog-info: %w", err)
	}
	if doc.Version == nil {
		return DialogInfo{}, errors.New("dialog-info: no version")
	}
	v, err := strconv.ParseUint(strings.TrimSpace(*doc.Version), 10, 64)
	if err != nil {
		return DialogInfo{}, fmt.Errorf("dialog-info: version %q: %w", *doc.Version, err)
	}
	info := DialogInfo{Version: v, State: strings.ToLower(strings.TrimSpace(doc.State)), Entity: strings.TrimSpace(doc.Entity)}
	if info.State != "full" && info.State != "partial" {
		return DialogInfo{}, fmt.Errorf("dialog-info: state %q is neither full nor partial", doc.State)
	}
	for _, d := range doc.Dialogs {
		info.Dialogs = append(info.Dialogs, DialogEntry{
			ID: d.ID, CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: d.RemoteTag, Direction: d.Direction,
			State:         strings.ToLower(strings.TrimSpace(d.State)),
			RemoteDisplay: d.Remote.Identity.Display, RemoteURI: d.Remote.uri(),
			LocalURI: d.Local.uri(),
		})
	}
	return info, nil
}
