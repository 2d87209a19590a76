package imagetest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldCall is a caller parked on the box while it is updated: sipp does
// the SIP (park_hold.xml) and the test is its RTP peer, on the port its
// SDP names. The peer sends a PCMU frame every 20 ms to the box's RTP
// port through QEMU's UDP forward (a caller that goes silent is cleaned
// up after park.rtp_timeout) and records every packet of hold music.
type heldCall struct {
	slot     string
	sipp     *sippRun
	conn     *net.UDPConn
	portFile string
	v        *vm

	mu   sync.Mutex
	pkts []rtpIn

	stop chan struct{}
	wg   sync.WaitGroup
}

type rtpIn struct {
	at   time.Time
	ssrc uint32
	seq  uint16
	ts   uint32
	pt   uint8
}

// parkHeld parks a caller at service (a slot or the lot's extension) and
// starts its RTP peer.
func parkHeld(t *testing.T, v *vm, service, from string) *heldCall {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h := &heldCall{conn: c, v: v, portFile: filepath.Join(t.TempDir(), "rtp-port"), stop: make(chan struct{})}
	h.sipp = runSippFor(t, v, "park_hold.xml", service, map[string]string{
		"from": from, "parker": "201@pbx.lan", "hdr": "X-Test: 1", "hdr2": "X-Test2: 1",
		"mport": fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port), "portfile": h.portFile}, 60*time.Minute)
	h.wg.Add(2)
	go h.receive()
	go h.send()
	t.Cleanup(h.close)
	return h
}

func (h *heldCall) close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
		h.conn.Close()
	}
	h.wg.Wait()
}

func (h *heldCall) receive() {
	defer h.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, err := h.conn.Read(buf)
		if err != nil {
			return
		}
		if n < 12 || buf[0]>>6 != 2 {
			continue
		}
		p := rtpIn{at: time.Now(), pt: buf[1] & 0x7f, seq: binary.BigEndian.Uint16(buf[2:]),
			ts: binary.BigEndian.Uint32(buf[4:]), ssrc: binary.BigEndian.Uint32(buf[8:])}
		h.mu.Lock()
		h.pkts = append(h.pkts, p)
		h.mu.Unlock()
	}
}

// send streams PCMU silence to the box's RTP port (named by sipp in the
// port file once the 200 OK came) through its host forward.
func (h *heldCall) send() {
	defer h.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var to *net.UDPAddr
	pkt := make([]byte, 12+160)
	pkt[0], pkt[1] = 0x80, 0
	binary.BigEndian.PutUint32(pkt[8:], 0x5eed0001)
	for i := 12; i < len(pkt); i++ {
		pkt[i] = 0xff
	}
	var seq uint16
	var ts uint32
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		if to == nil {
			b, err := os.ReadFile(h.portFile)
			if err != nil {
				continue
			}
			guest, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			host, ok := h.v.udpFwd[guest]
			if !ok {
				// Not forwarded: the box answered outside the test's
				// RTP range; the test fails on the missing music.
				continue
			}
			to = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: host}
		}
		seq++
		ts += 160
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], ts)
		_, _ = h.conn.WriteToUDP(pkt, to)
	}
}

func (h *heldCall) packets() []rtpIn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]rtpIn(nil), h.pkts...)
}

// waitMusic waits until n packets arrived after at.
func (h *heldCall) waitMusic(t *testing.T, at time.Time, n int, deadline time.Duration) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		got := 0
		for _, p := range h.packets() {
			if p.at.After(at) {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("slot %s: %d packets of hold music after %v within %v, want %d\nsipp:\n%s", h.slot, got, at.Format(time.TimeOnly), deadline, n, h.sipp.output())
		}
		select {
		case <-h.sipp.done:
			t.Fatalf("slot %s: the caller's sipp ended: %v\n%s", h.slot, h.sipp.err, h.sipp.output())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// longestGap is the longest silence between two packets the caller got,
// with the packets on each side of it.
func (h *heldCall) longestGap() (gap time.Duration, before, after rtpIn) {
	ps := h.packets()
	for i := 1; i < len(ps); i++ {
		if d := ps[i].at.Sub(ps[i-1].at); d > gap {
			gap, before, after = d, ps[i-1], ps[i]
		}
	}
	return gap, before, after
}

// checkContinued checks that the music after the longest gap continues
// the stream before it, as the restart tests in cmd/parkpage do: same
// SSRC and payload type, sequence numbers ahead (never back) and
// timestamps moving with them.
func (h *heldCall) checkContinued(t *testing.T) time.Duration {
	t.Helper()
	gap, last, first := h.longestGap()
	if first.ssrc != last.ssrc || first.pt != last.pt {
		t.Errorf("slot %s: SSRC %08x PT %d after the update, want %08x PT %d", h.slot, first.ssrc, first.pt, last.ssrc, last.pt)
	}
	dSeq := int(int16(first.seq - last.seq))
	maxSeq := int(gap/(20*time.Millisecond)) + 25
	if dSeq <= 0 || dSeq > maxSeq {
		t.Errorf("slot %s: sequence %d -> %d across a %v gap (want ahead by 1..%d)", h.slot, last.seq, first.seq, gap, maxSeq)
	}
	dTS := int64(int32(first.ts - last.ts))
	if want := int64(dSeq) * 160; dTS < want-3*160 || dTS > want+3*160 {
		t.Errorf("slot %s: timestamp moved %d for %d packets (want about %d)", h.slot, dTS, dSeq, want)
	}
	return gap
}

// apiPost POSTs JSON to the admin API with the test token.
func apiPost(t testing.TB, v *vm, path string, body, into any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", v.url(path), bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(res.Body)
	if res.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s\n%s", path, res.Status, out.String())
	}
	if into != nil {
		if err := json.Unmarshal(out.Bytes(), into); err != nil {
			t.Fatalf("POST %s: %v\n%s", path, err, out.String())
		}
	}
}

// configDoc is what the test reads of GET /api/v1/config.
type configDoc struct {
	Path    string         `json:"path"`
	Version string         `json:"version"`
	Config  map[string]any `json:"config"`
}

func zoneDescription(c configDoc, zone string) string {
	zones, _ := c.Config["zones"].(map[string]any)
	z, _ := zones[zone].(map[string]any)
	d, _ := z["description"].(string)
	return d
}

// saveFromConsole changes zone all's description as the console's setup
// page does (POST /api/v1/config/edits) and returns the new text.
func saveFromConsole(t *testing.T, v *vm) (configDoc, string) {
	t.Helper()
	var doc configDoc
	apiGet(t, v, "/api/v1/config", &doc)
	text := fmt.Sprintf("line out, saved from the console at %s", time.Now().UTC().Format(time.TimeOnly))
	apiPost(t, v, "/api/v1/config/edits", map[string]any{"base": doc.Version, "edits": []map[string]any{
		{"path": []any{"zones", "all", "description"}, "value": text}}}, nil)
	var after configDoc
	apiGet(t, v, "/api/v1/config", &after)
	if got := zoneDescription(after, "all"); got != text {
		t.Fatalf("after the console save zones.all.description is %q, want %q", got, text)
	}
	return after, text
}

// parkHeldAt parks a held caller by dialling service and waits until the
// API shows it parked in slot.
func parkHeldAt(t *testing.T, v *vm, service, slot, from string) *heldCall {
	t.Helper()
	h := parkHeld(t, v, service, from)
	h.slot = slot
	deadline := time.Now().Add(90 * time.Second)
	for {
		s := findSlot(t, v, slot)
		if s != nil && s["state"] == "parked" && strings.Contains(fmt.Sprint(s["caller"]), from) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s not parked within 90 s: %v; caller sipp:\n%s", slot, s, h.sipp.output())
		}
		select {
		case <-h.sipp.done:
			t.Fatalf("caller sipp ended before the call was parked: %v\n%s", h.sipp.err, h.sipp.output())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// pickUp retrieves a held call from its slot: the retriever talks 2 s and
// hangs up, the caller gets its BYE and its sipp ends well.
func pickUp(t *testing.T, v *vm, h *heldCall) {
	t.Helper()
	picker := runSipp(t, v, "retrieve_hangup.xml", h.slot, map[string]string{"from": "202", "hdr": "X-Test: 1", "hold": "2000"})
	for _, s := range []*sippRun{picker, h.sipp} {
		select {
		case <-s.done:
			if s.err != nil {
				t.Fatalf("slot %s: sipp %s: %v\n%s", h.slot, s.name, s.err, s.output())
			}
		case <-time.After(3 * time.Minute):
			t.Fatalf("slot %s: sipp %s still running after 3 min\n%s", h.slot, s.name, s.output())
		}
	}
	if s := findSlot(t, v, h.slot); s == nil || s["state"] != "free" {
		t.Errorf("slot %s after the pickup: %v, want free", h.slot, s)
	}
}
