package blfwatch

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxDialogInfoSize bounds a dialog-info body. A park slot's document holds
// one or two dialogs (a few hundred bytes); a PBX reporting a busy line
// stays far below this.
const MaxDialogInfoSize = 64 << 10

// DialogInfo is an RFC 4235 dialog-info document (application/
// dialog-info+xml), reduced to what a park-slot watcher reads.
type DialogInfo struct {
	// Version increases by one per NOTIFY of a subscription (RFC 4235
	// §4.1); a document not newer than the last one seen is stale.
	Version uint64
	// State is "full" (the complete set of dialogs) or "partial" (only the
	// dialogs that changed).
	State string
	// Entity is the watched resource, "sip:703@pbx".
	Entity  string
	Dialogs []Dialog
}

// Dialog is one <dialog> element.
type Dialog struct {
	ID        string
	CallID    string
	LocalTag  string
	RemoteTag string
	Direction string // "initiator", "recipient" or ""
	// State is the dialog state, lower case: trying, proceeding, early,
	// confirmed or terminated.
	State string
	// Remote is the other party: for a park slot, the parked caller (when
	// the PBX says; Asterisk does not).
	Remote Participant
	Local  Participant
}

// Participant is a <local> or <remote> element.
type Participant struct {
	Display string // identity display name
	URI     string // identity, or else target URI
}

// Active reports whether the dialog is in progress: anything but terminated
// (or a state this package does not know).
func (d Dialog) Active() bool {
	switch d.State {
	case "trying", "proceeding", "early", "confirmed":
		return true
	}
	return false
}

// ParseDialogInfo parses a dialog-info document. The namespace is not
// checked (some PBXes get it wrong); the version and state attributes are
// required, as RFC 4235 §4.1 says.
func ParseDialogInfo(body []byte) (*DialogInfo, error) {
	if len(body) > MaxDialogInfoSize {
		return nil, fmt.Errorf("dialog-info of %d bytes: %w", len(body), ErrDialogInfoTooLarge)
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
	dec := xml.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("dialog-info: %w", err)
	}
	if doc.Version == nil {
		return nil, errors.New("dialog-info: no version")
	}
	v, err := strconv.ParseUint(strings.TrimSpace(*doc.Version), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("dialog-info: version %q: %w", *doc.Version, err)
	}
	info := &DialogInfo{Version: v, State: strings.ToLower(strings.TrimSpace(doc.State)), Entity: strings.TrimSpace(doc.Entity)}
	if info.State != "full" && info.State != "partial" {
		return nil, fmt.Errorf("dialog-info: state %q is neither full nor partial", doc.State)
	}
	for _, d := range doc.Dialogs {
		info.Dialogs = append(info.Dialogs, Dialog{
			ID:        d.ID,
			CallID:    d.CallID,
			LocalTag:  d.LocalTag,
			RemoteTag: d.RemoteTag,
			Direction: d.Direction,
			State:     strings.ToLower(strings.TrimSpace(d.State)),
			Remote:    d.Remote.participant(),
			Local:     d.Local.participant(),
		})
	}
	return info, nil
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

func (p xmlParticipant) participant() Participant {
	uri := strings.TrimSpace(p.Identity.URI)
	if uri == "" {
		uri = strings.TrimSpace(p.Target.URI)
	}
	return Participant{Display: strings.TrimSpace(p.Identity.Display), URI: uri}
}
