package media

import (
	"bytes"
	"net/netip"
	"testing"
)

// Remote SDP offers and answers come from any phone, PBX or trunk. Whatever
// parses and negotiates must give an answer that parses back to the same
// codec, payload types and direction.
func FuzzSDPAnswer(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"))
	f.Add([]byte("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=sendonly\r\n"))
	f.Add([]byte("v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 ::1\nt=0 0\nm=audio 5004 RTP/AVP 96 0\na=rtpmap:96 G722/8000\na=inactive\n"))
	f.Add([]byte("v=0\r\nm=video 1 RTP/AVP 31\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := ParseSDP(body)
		if err != nil {
			return
		}
		n, err := Negotiate(d, nil)
		if err != nil {
			return
		}
		w := sdpWriter{sessID: 1, sessVer: 1, local: netip.MustParseAddrPort("127.0.0.1:20000")}
		ans := w.build(answerFormats(n), reverse(d.Direction))
		if bytes.ContainsAny(ans, "\x00") {
			t.Fatalf("answer with NUL:\n%q", ans)
		}
		d2, err := ParseSDP(ans)
		if err != nil {
			t.Fatalf("our answer does not parse: %v\n%s", err, ans)
		}
		n2, err := Negotiate(d2, nil)
		if err != nil {
			t.Fatalf("our answer negotiates nothing: %v\n%s", err, ans)
		}
		if n2.Codec.Name != n.Codec.Name || n2.PT != n.PT || n2.DTMF != n.DTMF || n.DTMF && n2.DTMFPT != n.DTMFPT {
			t.Fatalf("offer negotiated %+v, our answer %+v\n%s", n, n2, ans)
		}
		if d2.Direction != reverse(d.Direction) {
			t.Fatalf("answer direction %q for offered %q", d2.Direction, d.Direction)
		}
	})
}

// RFC 4733 payloads relayed between legs: parse and re-encode are exact.
func FuzzEvent(f *testing.F) {
	f.Add([]byte{5, 0x8a, 0x01, 0xe0})
	f.Add([]byte{16, 0x3f, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvent(b)
		if err != nil {
			if len(b) >= 4 {
				t.Fatalf("4+ bytes refused: %v", err)
			}
			return
		}
		out := ev.Append(nil)
		want := []byte{b[0], b[1] &^ 0x40, b[2], b[3]} // the reserved bit is not kept
		if !bytes.Equal(out, want) {
			t.Fatalf("% x -> %+v -> % x", b[:4], ev, out)
		}
		if ev.Volume > 63 {
			t.Fatalf("volume %d", ev.Volume)
		}
	})
}
