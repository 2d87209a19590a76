package ami

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/gateway/pbxevents"
)

func TestReadMessage(t *testing.T) {
	long := strings.Repeat("x", 3000)
	for _, tc := range []struct {
		name  string
		in    string
		max   int
		want  []Message
		final error // error after the messages
	}{
		{
			name: "crlf",
			in:   "Event: ParkedCall\r\nParkingSpace: 701\r\n\r\nEvent: Hangup\r\n\r\n",
			want: []Message{
				{{"Event", "ParkedCall"}, {"ParkingSpace", "701"}},
				{{"Event", "Hangup"}},
			},
			final: io.EOF,
		},
		{
			name:  "lf only and mixed",
			in:    "Event: A\nX: 1\r\n\nEvent: B\r\n\r\n",
			want:  []Message{{{"Event", "A"}, {"X", "1"}}, {{"Event", "B"}}},
			final: io.EOF,
		},
		{
			name:  "stray empty lines",
			in:    "\r\n\r\n\nEvent: A\r\n\r\n\r\n\r\n",
			want:  []Message{{{"Event", "A"}}},
			final: io.EOF,
		},
		{
			name: "empty values, colons and blanks in values",
			in:   "AccountCode: \r\nChallenge:\r\nEventTV: 2026-11-25T10:57:39.536+0000\r\nValue:   minrxlost=001;  x\r\n\r\n",
			want: []Message{{{"AccountCode", ""}, {"Challenge", ""}, {"EventTV", "2026-11-25T10:57:39.536+0000"},
				{"Value", "minrxlost=001;  x"}}},
			final: io.EOF,
		},
		{
			name: "keyless lines",
			in:   "Response: Follows\r\nsome output line\r\n: starts with colon\r\n--END COMMAND--\r\n\r\n",
			want: []Message{{{"Response", "Follows"}, {"", "some output line"}, {"", ": starts with colon"},
				{"", "--END COMMAND--"}}},
			final: io.EOF,
		},
		{
			name:  "long value beyond the bufio buffer",
			in:    "Event: VarSet\r\nValue: " + long + "\r\n\r\n",
			want:  []Message{{{"Event", "VarSet"}, {"Value", long}}},
			final: io.EOF,
		},
		{
			name:  "too large message is skipped",
			in:    "Event: Big\r\nValue: " + long + "\r\nMore: 1\r\n\r\nEvent: Next\r\n\r\n",
			max:   1024,
			want:  []Message{nil, {{"Event", "Next"}}},
			final: io.EOF,
		},
		{
			name:  "too large by many short lines",
			in:    "Event: Big\r\n" + strings.Repeat("K: v\r\n", 300) + "\r\nEvent: Next\r\n\r\n",
			max:   1024,
			want:  []Message{nil, {{"Event", "Next"}}},
			final: io.EOF,
		},
		{
			name:  "eof inside a message",
			in:    "Event: A\r\n\r\nEvent: B\r\nX: 1\r\n",
			want:  []Message{{{"Event", "A"}}},
			final: io.ErrUnexpectedEOF,
		},
		{
			name:  "eof inside a line",
			in:    "Event: A\r\n\r\nEvent: B",
			want:  []Message{{{"Event", "A"}}},
			final: io.ErrUnexpectedEOF,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := NewReader(strings.NewReader(tc.in))
			if tc.max > 0 {
				rd.MaxMessageSize = tc.max
			}
			for i, want := range tc.want {
				got, err := rd.ReadMessage()
				if want == nil {
					if !errors.Is(err, ErrMessageTooLarge) {
						t.Fatalf("message %d: err %v, want ErrMessageTooLarge", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("message %d:\n got %q\nwant %q", i, got, want)
				}
			}
			if _, err := rd.ReadMessage(); err != tc.final {
				t.Fatalf("final err %v, want %v", err, tc.final)
			}
		})
	}
}

func TestMessageGet(t *testing.T) {
	m := Message{{"Event", "ParkedCall"}, {"ChanVariable", "a=1"}, {"ChanVariable", "b=2"}}
	if got := m.Get("event"); got != "ParkedCall" {
		t.Errorf("Get(event) = %q", got)
	}
	if got := m.Get("ChanVariable"); got != "a=1" {
		t.Errorf("Get(ChanVariable) = %q, want the first", got)
	}
	if m.Get("Missing") != "" || m.Has("Missing") || !m.Has("EVENT") {
		t.Error("Has/Get of a missing key")
	}
}

func TestReadBanner(t *testing.T) {
	for _, tc := range []struct {
		in, version string
		ok          bool
	}{
		{"Asterisk Call Manager/11.0.0\r\n", "11.0.0", true},
		{"Asterisk Call Manager/2.10.6\n", "2.10.6", true},
		{"SSH-2.0-OpenSSH_9.6\r\n", "", false},
		{"HTTP/1.1 400 Bad Request\r\n", "", false},
		{strings.Repeat("A", 5000) + "\r\n", "", false},
		{"", "", false},
	} {
		v, err := NewReader(strings.NewReader(tc.in)).ReadBanner()
		if tc.ok != (err == nil) || v != tc.version {
			t.Errorf("ReadBanner(%.20q) = %q, %v", tc.in, v, err)
		}
	}
}

func TestActionCheck(t *testing.T) {
	for _, tc := range []struct {
		m  Message
		ok bool
	}{
		{Message{{"Action", "Login"}, {"Secret", "s3cret: with colon"}}, true},
		{Message{{"Action", "Login"}, {"Secret", "x\r\nAction: Originate"}}, false},
		{Message{{"Action", "Login"}, {"Secret", "x\n"}}, false},
		{Message{{"Bad: key", "v"}}, false},
		{Message{{"", "v"}}, false},
	} {
		if err := tc.m.check(); (err == nil) != tc.ok {
			t.Errorf("check(%q) = %v", tc.m, err)
		}
	}
	if _, err := New(testConfig("127.0.0.1:1", "x\r\nAction: Logoff"), Options{Sink: func(pbxevents.ParkEvent) {}}); err == nil {
		t.Error("New accepted a secret with a line break")
	}
}

// TestReadFixture reads the real Asterisk 22 capture, as stored (LF) and as
// sent (CRLF).
func TestReadFixture(t *testing.T) {
	// The stored capture lacks the empty line that ends the last event on
	// the wire.
	raw := strings.TrimRight(readFixture(t), "\n") + "\n\n"
	wantEvents := 0
	for _, l := range strings.Split(raw, "\n") {
		if strings.HasPrefix(l, "Event: ") {
			wantEvents++
		}
	}
	for name, in := range map[string]string{"lf": raw, "crlf": crlf(raw)} {
		t.Run(name, func(t *testing.T) {
			rd := NewReader(strings.NewReader(in))
			v, err := rd.ReadBanner()
			if err != nil || v != "11.0.0" {
				t.Fatalf("banner %q, %v", v, err)
			}
			n := 0
			for {
				m, err := rd.ReadMessage()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d messages: %v", n, err)
				}
				if m.Get("Event") == "" || m.Get("Privilege") == "" {
					t.Fatalf("message %d has no Event/Privilege: %q", n, m)
				}
				n++
			}
			if n != wantEvents {
				t.Fatalf("read %d events, the file has %d", n, wantEvents)
			}
		})
	}
}

func readFixture(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/ami-park-session.txt")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// crlf converts the LF-stored capture to the wire's CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func FuzzReadMessage(f *testing.F) {
	raw := readFixture(f)
	msgs := strings.SplitAfter(raw, "\n\n")
	for _, m := range msgs[:8] {
		f.Add([]byte(m))
		f.Add([]byte(crlf(m)))
	}
	f.Add([]byte("Event: A\r\n\r\nEvent: B\nX: 1\n\n"))
	f.Add([]byte("Response: Follows\r\noutput\r\n:x:y\r\n\r\n"))
	f.Add([]byte("K: v\r\r\n\r\r\n\r\n"))
	f.Add([]byte("Event: A\r\nValue: " + strings.Repeat("y", 700) + "\r\n\r\nEvent: B\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 512
		rd := NewReader(bytes.NewReader(data))
		rd.MaxMessageSize = max
		for range 1000 {
			m, err := rd.ReadMessage()
			if errors.Is(err, ErrMessageTooLarge) {
				continue
			}
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(m) == 0 {
				t.Fatal("empty message")
			}
			size := 0
			for _, fl := range m {
				size += len(fl.Key) + len(fl.Value)
				if strings.ContainsAny(fl.Key, ":\n") || strings.Contains(fl.Value, "\n") {
					t.Fatalf("field %q spans lines or keeps a colon in its key", fl)
				}
			}
			if size > max {
				t.Fatalf("message of %d bytes passed the %d limit", size, max)
			}
			// What was read is written back the same way.
			again, err := NewReader(bytes.NewReader(m.AppendTo(nil))).ReadMessage()
			if err != nil || !reflect.DeepEqual(again, m) {
				t.Fatalf("round trip:\n got %q, %v\nwant %q", again, err, m)
			}
		}
	})
}
