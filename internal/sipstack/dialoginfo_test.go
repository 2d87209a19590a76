package sipstack

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// fixtureBodies are the dialog-info bodies of the Asterisk 22 capture.
func fixtureBodies(t testing.TB) [][]byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/blf-notify-slot-703.txt")
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	for _, part := range bytes.Split(raw, []byte("<?xml"))[1:] {
		end := bytes.Index(part, []byte("</dialog-info>"))
		if end < 0 {
			t.Fatal("fixture: unterminated dialog-info")
		}
		bodies = append(bodies, append([]byte("<?xml"), part[:end+len("</dialog-info>")]...))
	}
	if len(bodies) != 3 {
		t.Fatalf("fixture has %d bodies, want 3", len(bodies))
	}
	return bodies
}

// TestParseDialogInfoFixture reads the NOTIFY bodies Asterisk 22 sent for a
// park slot (the BLF watcher's input).
func TestParseDialogInfoFixture(t *testing.T) {
	bodies := fixtureBodies(t)
	want := []DialogInfo{
		{Version: 0, State: "full", Entity: "sip:703@127.0.0.1:5080", Dialogs: []DialogEntry{{ID: "703", State: "terminated"}}},
		{Version: 1, State: "full", Entity: "sip:703@127.0.0.1:5080", Dialogs: []DialogEntry{{ID: "703", State: "confirmed"}}},
		{Version: 1, State: "full", Entity: "sip:703@127.0.0.1:5080", Dialogs: []DialogEntry{{ID: "703", State: "confirmed"}}},
	}
	for i, b := range bodies {
		got, err := ParseDialogInfo(b)
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("body %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
}

func TestParseDialogInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want *DialogInfo // nil: an error
	}{
		{
			name: "park-sip.md example with identities",
			in: `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="7"
    state="full" entity="sip:704@park.lan">
  <dialog id="704" direction="recipient" call-id="abc@pbx" local-tag="l1" remote-tag="r1">
    <state>confirmed</state>
    <remote><identity display="ACME Supply">sip:+15551234567@pbx.lan</identity></remote>
    <local><identity>sip:704@park.lan</identity></local>
  </dialog>
</dialog-info>`,
			want: &DialogInfo{Version: 7, State: "full", Entity: "sip:704@park.lan", Dialogs: []DialogEntry{{
				ID: "704", CallID: "abc@pbx", LocalTag: "l1", RemoteTag: "r1", Direction: "recipient", State: "confirmed",
				RemoteDisplay: "ACME Supply", RemoteURI: "sip:+15551234567@pbx.lan",
				LocalURI: "sip:704@park.lan",
			}}},
		},
		{
			name: "no dialog: idle",
			in:   `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:701@pbx"/>`,
			want: &DialogInfo{Version: 3, State: "full", Entity: "sip:701@pbx"},
		},
		{
			name: "partial, early, target instead of identity, odd case and blanks",
			in: `<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version=" 4 " state="Partial" entity="sip:702@pbx">
<dialog id="a"><state event="rejected" code="486"> Early </state><remote><target uri="sip:300@pbx"/></remote></dialog>
<dialog id="b"><state>terminated</state></dialog></dialog-info>`,
			want: &DialogInfo{Version: 4, State: "partial", Entity: "sip:702@pbx", Dialogs: []DialogEntry{
				{ID: "a", State: "early", RemoteURI: "sip:300@pbx"},
				{ID: "b", State: "terminated"},
			}},
		},
		{
			name: "other namespace prefix",
			in:   `<d:dialog-info xmlns:d="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="x"><d:dialog id="1"><d:state>confirmed</d:state></d:dialog></d:dialog-info>`,
			want: &DialogInfo{Version: 1, State: "full", Entity: "x", Dialogs: []DialogEntry{{ID: "1", State: "confirmed"}}},
		},
		{name: "no version", in: `<dialog-info state="full" entity="x"/>`},
		{name: "negative version", in: `<dialog-info version="-1" state="full" entity="x"/>`},
		{name: "bad state", in: `<dialog-info version="1" state="fulll" entity="x"/>`},
		{name: "another document", in: `<presence version="1" state="full"/>`},
		{name: "not xml", in: `version=1 state=full`},
		{name: "empty", in: ``},
		{name: "truncated", in: `<dialog-info version="1" state="full"><dialog id="1"><state>confirmed`},
		{name: "too large", in: `<dialog-info version="1" state="full">` + strings.Repeat(" ", MaxDialogInfoSize) + `</dialog-info>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDialogInfo([]byte(tc.in))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, *tc.want) {
				t.Fatalf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := ParseDialogInfo(make([]byte, MaxDialogInfoSize+1)); !errors.Is(err, ErrDialogInfoTooLarge) {
		t.Errorf("oversized body: %v", err)
	}
}
