package sipstack

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Replaces headers come from whoever completes an attended transfer.
func FuzzParseReplaces(f *testing.F) {
	for _, s := range []string{
		"abc123@park.lan;to-tag=s7;from-tag=p4",
		"abc;from-tag=p4;to-tag=s7;early-only",
		" x ; to-tag = a ; from-tag = b ",
		"abc;to-tag=;from-tag=b", ";;;", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := ParseReplaces(v)
		if err != nil {
			return
		}
		if r.CallID == "" || r.ToTag == "" || r.FromTag == "" {
			t.Fatalf("accepted %q with an empty part: %+v", v, r)
		}
		if strings.ContainsAny(r.CallID, "\r\n") {
			t.Fatalf("call-id with a line break from %q", v)
		}
		// What we write reads back the same (tags with ';' or '=' are not
		// representable and need not round-trip).
		if strings.ContainsAny(r.ToTag+r.FromTag, ";=") || strings.ContainsAny(r.CallID, ";") {
			return
		}
		r2, err := ParseReplaces(r.String())
		if err != nil || r2 != r {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", v, r, r.String(), r2, err)
		}
	})
}

// Identities come from From, P-Asserted-Identity, Referred-By and the
// configured parker header; they are shown on phones and written back
// into headers, so they must never carry a line break or an unbalanced quote.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{
		`"ACME Supply" <sip:+15551234567@pbx.lan>;tag=c9`,
		`<sip:1001@pbx.lan>`, `sip:1001@pbx.lan`, `tel:+15551234567`,
		`"a\"b" <sip:x@y>, <tel:+1>`, `Bob <sips:bob@host:5061;transport=tls>`,
		`"x" <sip:%31%30@h>`, `<mailto:x@y>`, `"unterminated <sip:a@b>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, err := ParseIdentity(v)
		if err != nil {
			return
		}
		for _, s := range []string{id.URI, id.Host} {
			if strings.ContainsAny(s, "\r\n<>\"") {
				t.Fatalf("%q gave %+v", v, id)
			}
		}
		if strings.ContainsAny(id.URI, " \t") && !strings.HasPrefix(id.URI, "tel:") {
			t.Fatalf("%q gave URI %q with spaces", v, id.URI)
		}
		out := id.String()
		if strings.ContainsAny(out, "\r\n") {
			t.Fatalf("%q written as %q", v, out)
		}
		if !utf8.ValidString(id.Display) {
			return
		}
		id2, err := ParseIdentity(out)
		if err != nil {
			t.Fatalf("%q -> %q does not parse: %v", v, out, err)
		}
		if id2.URI != id.URI {
			t.Fatalf("%q -> %q -> URI %q, want %q", v, out, id2.URI, id.URI)
		}
	})
}

// dialog-info bodies carry caller names from SIP headers: whatever they
// hold, the document must stay well-formed and read back with the same
// values (no markup injection into phones' BLF parsers).
func FuzzDialogInfoRoundTrip(f *testing.F) {
	f.Add(uint32(7), "sip:704@park.lan", "704", "confirmed", "ACME Supply", "sip:+15551234567@pbx.lan")
	f.Add(uint32(1), "sip:700@x", "7\"0<1>", "early", "</identity><dialog id='x'>&amp;", "sip:a@b")
	f.Add(uint32(0), "", "", "", "\x00\x01\ufffe\xff", "")
	f.Fuzz(func(t *testing.T, version uint32, entity, id, state, display, uri string) {
		in := DialogInfo{Version: uint64(version), State: "full", Entity: entity, Dialogs: []DialogEntry{{
			ID: id, State: state, Direction: "recipient", RemoteDisplay: display, RemoteURI: uri, LocalURI: entity}}}
		body := in.Marshal()
		out, err := ParseDialogInfo(body)
		if err != nil {
			t.Fatalf("our own document does not parse: %v\n%s", err, body)
		}
		if out.Version != uint64(version) || len(out.Dialogs) != 1 {
			t.Fatalf("read back %+v", out)
		}
		d := out.Dialogs[0]
		// Values are cleaned (invalid XML characters dropped, whitespace
		// folded; the state token read in lower case) but never altered
		// otherwise.
		if want := strings.ToLower(strings.TrimSpace(cleanXML(state))); d.State != want {
			t.Fatalf("state %q read back as %q", state, d.State)
		}
		if want := cleanXML(display); uri != "" && d.RemoteDisplay != want {
			t.Fatalf("display %q read back as %q, want %q", display, d.RemoteDisplay, want)
		}
		if want := cleanXML(id); d.ID != want {
			t.Fatalf("id %q read back as %q", id, d.ID)
		}
	})
}

// Documents from other servers (the PBX BLF watcher reads them): what is
// accepted is bounded, has a known document state and normalised dialog
// states, and reads back the same after Marshal.
func FuzzParseDialogInfo(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:701@x"><dialog id="1"><state>confirmed</state></dialog></dialog-info>`))
	f.Add([]byte(`<dialog-info version="x"/>`))
	for _, b := range fixtureBodies(f) {
		f.Add(b)
	}
	f.Add([]byte(`<dialog-info version="2" state="partial" entity="e"><dialog id="1"><state>early</state><remote><identity display="A">sip:a@b</identity><target uri="sip:c@d"/></remote></dialog></dialog-info>`))
	f.Add([]byte(`<dialog-info version="18446744073709551615" state="full"/>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><dialog-info version="1" state="full">&a;</dialog-info>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDialogInfo(b)
		if err != nil {
			return
		}
		if len(b) > MaxDialogInfoSize {
			t.Fatal("oversized body accepted")
		}
		if d.State != "full" && d.State != "partial" {
			t.Fatalf("state %q accepted", d.State)
		}
		for _, e := range d.Dialogs {
			if e.State != strings.ToLower(strings.TrimSpace(e.State)) {
				t.Fatalf("dialog state %q not normalised", e.State)
			}
			if e.Active() && e.State == DialogTerminated {
				t.Fatal("terminated dialog active")
			}
		}
		if _, err := ParseDialogInfo(d.Marshal()); err != nil {
			t.Fatalf("re-marshalled document does not parse: %v", err)
		}
	})
}

// Contact headers of REGISTER requests.
func FuzzSplitContacts(f *testing.F) {
	f.Add(`<sip:1001@10.0.0.31:5060>;expires=60, "Desk, 2" <sip:1001@10.0.0.32>`)
	f.Add(`*`)
	f.Add(`"\"<>,", <sip:a@b>`)
	f.Fuzz(func(t *testing.T, v string) {
		parts := splitContacts(v)
		total := 0
		for _, p := range parts {
			if p == "" {
				t.Fatal("empty contact")
			}
			total += len(p)
		}
		if total > len(v) {
			t.Fatalf("%q split into more than it holds: %q", v, parts)
		}
	})
}
