package media

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/parkpage/parkpage/internal/codec"
)

// Directions as written in SDP (RFC 4566 section 6).
const (
	SendRecv = "sendrecv"
	SendOnly = "sendonly"
	RecvOnly = "recvonly"
	Inactive = "inactive"
)

// telephone-event is always offered on this payload type.
const defaultDTMFPT = 101

// Format is one payload format of a media description.
type Format struct {
	PT       uint8
	Name     string // encoding name as written, e.g. "PCMU", "opus"
	Rate     uint32 // RTP clock rate
	Channels int    // 1 unless written
	Fmtp     string
}

// Description is the audio part of a remote SDP body, as far as parkpage
// uses it.
type Description struct {
	// Addr is where the remote wants RTP. It is invalid (zero) when the
	// connection address is 0.0.0.0 or the port is 0 (old-style hold,
	// rejected stream).
	Addr netip.AddrPort
	// Formats in the order the remote listed them (its preference).
	Formats []Format
	// Direction is the remote's direction attribute (sendrecv when absent).
	Direction string
	// Ptime is the requested packet time in ms (0 when absent).
	Ptime int
	// SessionID and SessionVersion are from the o= line.
	SessionID, SessionVersion uint64
}

// Negotiated is what one leg agreed with its remote.
type Negotiated struct {
	Codec codec.Info // the audio codec; Codec.PayloadType is parkpage's default
	PT    uint8      // payload type used on this leg for the codec
	// DTMF is true when telephone-event was agreed, on DTMFPT at DTMFRate.
	DTMF     bool
	DTMFPT   uint8
	DTMFRate uint32
	// Remote is where RTP is sent (invalid while the remote holds with 0.0.0.0).
	Remote netip.AddrPort
	// Direction is the remote's direction: sendonly means the remote does
	// not want to receive (it holds us), recvonly/inactive that it will not
	// send.
	Direction string
}

// Sends reports whether the remote will send us RTP.
func (n Negotiated) Sends() bool { return n.Direction == SendRecv || n.Direction == SendOnly }

// Receives reports whether the remote wants RTP from us.
func (n Negotiated) Receives() bool {
	return (n.Direction == SendRecv || n.Direction == RecvOnly) && n.Remote.IsValid()
}

// ErrNoCodec is returned when an SDP offers no codec parkpage supports
// (respond 488 Not Acceptable Here).
var ErrNoCodec = errors.New("no supported audio codec offered (want PCMU, PCMA, G722 or opus)")

// staticFormats are RFC 3551 payload types usable without an rtpmap.
var staticFormats = map[uint8]Format{
	0: {0, "PCMU", 8000, 1, ""},
	8: {8, "PCMA", 8000, 1, ""},
	9: {9, "G722", 8000, 1, ""},
}

// ParseSDP reads the first audio stream of an SDP body.
func ParseSDP(body []byte) (*Description, error) {
	if len(body) == 0 {
		return nil, errors.New("sdp: empty body")
	}
	if len(body) > 64<<10 {
		return nil, errors.New("sdp: body larger than 64 KiB")
	}
	var s sdp.SessionDescription
	if err := s.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("sdp: %w", err)
	}
	d := &Description{Direction: SendRecv, SessionID: s.Origin.SessionID, SessionVersion: s.Origin.SessionVersion}
	for _, a := range s.Attributes {
		if isDirection(a.Key) {
			d.Direction = a.Key
		}
	}
	var md *sdp.MediaDescription
	for _, m := range s.MediaDescriptions {
		if m.MediaName.Media == "audio" {
			md = m
			break
		}
	}
	if md == nil {
		return nil, errors.New("sdp: no audio stream")
	}
	proto := strings.Join(md.MediaName.Protos, "/")
	if proto != "RTP/AVP" && proto != "RTP/AVPF" {
		return nil, fmt.Errorf("sdp: audio transport %q is not supported (want RTP/AVP)", proto)
	}
	conn := md.ConnectionInformation
	if conn == nil {
		conn = s.ConnectionInformation
	}
	if conn == nil || conn.Address == nil {
		return nil, errors.New("sdp: no connection address")
	}
	host, _, _ := strings.Cut(conn.Address.Address, "/") // strip multicast TTL
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("sdp: connection address %q is not an IP address", conn.Address.Address)
	}
	port := md.MediaName.Port.Value
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("sdp: bad port %d", port)
	}
	if !ip.IsUnspecified() && port != 0 {
		d.Addr = netip.AddrPortFrom(ip.Unmap(), uint16(port))
	}

	seen := map[uint8]bool{}
	for _, f := range md.MediaName.Formats {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 127 {
			return nil, fmt.Errorf("sdp: bad payload type %q", f)
		}
		pt := uint8(n)
		if seen[pt] {
			continue
		}
		seen[pt] = true
		fm := Format{PT: pt, Channels: 1}
		if st, ok := staticFormats[pt]; ok {
			fm = st
		}
		d.Formats = append(d.Formats, fm)
	}
	byPT := map[uint8]*Format{}
	for i := range d.Formats {
		byPT[d.Formats[i].PT] = &d.Formats[i]
	}
	for _, a := range md.Attributes {
		switch {
		case a.Key == "rtpmap":
			pt, name, rate, ch, ok := parseRtpmap(a.Value)
			if f := byPT[pt]; ok && f != nil {
				f.Name, f.Rate, f.Channels = name, rate, ch
			}
		case a.Key == "fmtp":
			ptStr, val, _ := strings.Cut(a.Value, " ")
			if n, err := strconv.Atoi(ptStr); err == nil && n >= 0 && n <= 127 {
				if f := byPT[uint8(n)]; f != nil {
					f.Fmtp = strings.TrimSpace(val)
				}
			}
		case a.Key == "ptime":
			if n, err := strconv.Atoi(strings.TrimSpace(a.Value)); err == nil && n > 0 && n <= 1000 {
				d.Ptime = n
			}
		case isDirection(a.Key):
			d.Direction = a.Key
		}
	}
	return d, nil
}

func isDirection(k string) bool {
	return k == SendRecv || k == SendOnly || k == RecvOnly || k == Inactive
}

// parseRtpmap reads "96 opus/48000/2".
func parseRtpmap(v string) (pt uint8, name string, rate uint32, ch int, ok bool) {
	ptStr, enc, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found {
		return
	}
	n, err := strconv.Atoi(ptStr)
	if err != nil || n < 0 || n > 127 {
		return
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	if len(parts) < 2 || parts[0] == "" {
		return
	}
	r, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || r == 0 {
		return
	}
	ch = 1
	if len(parts) > 2 {
		c, err := strconv.Atoi(parts[2])
		if err != nil || c < 1 || c > 8 {
			return
		}
		ch = c
	}
	return uint8(n), parts[0], uint32(r), ch, true
}

// match returns the codec a format carries, if parkpage supports it.
func match(f Format) (codec.Info, bool) {
	for _, c := range codec.All() {
		if strings.EqualFold(f.Name, c.EncodingSDP) && f.Rate == c.ClockRate {
			if c.Name == codec.Opus && f.Channels != 2 {
				continue // RFC 7587: opus is always advertised as /48000/2
			}
			return c, true
		}
	}
	return codec.Info{}, false
}

// Negotiate picks the audio codec and telephone-event format from a remote
// description: the remote's first supported codec (an answerer keeps the
// offerer's preference, RFC 3264), limited to allowed when it is not empty.
func Negotiate(d *Description, allowed []codec.Name) (Negotiated, error) {
	n := Negotiated{Remote: d.Addr, Direction: d.Direction}
	found := false
	for _, f := range d.Formats {
		c, ok := match(f)
		if !ok || !allowedCodec(allowed, c.Name) {
			continue
		}
		n.Codec, n.PT, found = c, f.PT, true
		break
	}
	if !found {
		return n, ErrNoCodec
	}
	for _, f := range d.Formats {
		if strings.EqualFold(f.Name, "telephone-event") && f.Rate == 8000 {
			n.DTMF, n.DTMFPT, n.DTMFRate = true, f.PT, f.Rate
			break
		}
	}
	return n, nil
}

func allowedCodec(allowed []codec.Name, c codec.Name) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if a == c {
			return true
		}
	}
	return false
}

// reverse is the answer's direction for an offered one.
func reverse(dir string) string {
	switch dir {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	}
	return SendRecv
}

// sdpWriter builds parkpage's SDP bodies.
type sdpWriter struct {
	sessID, sessVer uint64
	local           netip.AddrPort
	last            string // last body without the o= line, to bump the version only on change
}

func (w *sdpWriter) build(formats []Format, dir string) []byte {
	ip := w.local.Addr()
	ipv := "IP4"
	if ip.Is6() {
		ipv = "IP6"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "s=parkpage\r\nc=IN %s %s\r\nt=0 0\r\nm=audio %d RTP/AVP", ipv, ip, w.local.Port())
	for _, f := range formats {
		fmt.Fprintf(&b, " %d", f.PT)
	}
	b.WriteString("\r\n")
	for _, f := range formats {
		if f.Channels > 1 {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d/%d\r\n", f.PT, f.Name, f.Rate, f.Channels)
		} else {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", f.PT, f.Name, f.Rate)
		}
		if f.Fmtp != "" {
			fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", f.PT, f.Fmtp)
		}
	}
	fmt.Fprintf(&b, "a=ptime:20\r\na=%s\r\n", dir)
	body := b.String()
	if w.last != "" && body != w.last {
		w.sessVer++
	}
	w.last = body
	return []byte(fmt.Sprintf("v=0\r\no=parkpage %d %d IN %s %s\r\n%s", w.sessID, w.sessVer, ipv, ip, body))
}

// offerFormats lists the formats parkpage offers, in preference order.
func offerFormats(allowed []codec.Name) []Format {
	var fs []Format
	for _, c := range codec.All() {
		if !allowedCodec(allowed, c.Name) {
			continue
		}
		f := Format{PT: c.PayloadType, Name: c.EncodingSDP, Rate: c.ClockRate, Channels: c.Channels}
		if c.Name == codec.Opus {
			f.Fmtp = "useinbandfec=1"
		}
		fs = append(fs, f)
	}
	return append(fs, Format{PT: defaultDTMFPT, Name: "telephone-event", Rate: 8000, Channels: 1, Fmtp: "0-16"})
}

// answerFormats lists the answer's formats for a negotiation: the chosen
// codec and telephone-event on the offerer's payload types.
func answerFormats(n Negotiated) []Format {
	c := n.Codec
	fs := []Format{{PT: n.PT, Name: c.EncodingSDP, Rate: c.ClockRate, Channels: c.Channels}}
	if c.Name == codec.Opus {
		fs[0].Fmtp = "useinbandfec=1"
	}
	if n.DTMF {
		fs = append(fs, Format{PT: n.DTMFPT, Name: "telephone-event", Rate: n.DTMFRate, Channels: 1, Fmtp: "0-16"})
	}
	return fs
}
