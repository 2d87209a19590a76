package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// A phone's page key, played by sipp streaming a 440 Hz WAV with
// rtp_stream, pages the extension's zone through the whole appliance: in
// live mode while it talks, in store mode after it hangs up.
func TestPhonePagesZone(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sox"); err != nil {
		t.Fatalf("sox is not installed (apt-get install sox): %v", err)
	}
	dir := t.TempDir()
	wav := filepath.Join(dir, "tone.wav")
	if out, err := exec.Command("sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", wav, "synth", "3", "sine", "440", "vol", "0.5").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
	scen, err := os.ReadFile("testdata/page_stream.xml")
	if err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(dir, "page_stream.xml")
	os.WriteFile(scenario, []byte(strings.ReplaceAll(string(scen), "WAVFILE", wav)), 0o644)

	livePort, storePort := proctest.FreePort(t, "udp"), proctest.FreePort(t, "udp")
	y := fmt.Sprintf(`
pages:
  "801": {zones: [warehouse], mode: live, chime: none}
  "802": {zones: [showroom], mode: store, chime: none}
zones:
  warehouse:
    outputs:
      - {type: rtp, group: 239.255.80.1, port: %d, codec: pcmu, interface: lo, loopback: true}
  showroom:
    outputs:
      - {type: rtp, group: 239.255.80.2, port: %d, codec: pcmu, interface: lo, loopback: true}
`, livePort, storePort)
	liveL := mcasttest.Record(t, "239.255.80.1", livePort)
	storeL := mcasttest.Record(t, "239.255.80.2", storePort)
	ap := startInproc(t, y)

	for _, tc := range []struct {
		ext  string
		l    *mcasttest.Recorder
		mode string
	}{{"801", liveL, "live"}, {"802", storeL, "store"}} {
		s := ap.sipp(scenario, tc.ext, map[string]string{"hold": "3500"})
		start := time.Now()
		s.MustPass(20 * time.Second)
		// When sipp sent its BYE (its message log), not when the test saw
		// it exit: on a loaded machine that can be a second later.
		hungUp, ok := byeSentAt(s.Messages())
		if !ok {
			t.Fatalf("%s: no BYE in the talker's messages:\n%s", tc.mode, s.Messages())
		}
		ap.waitEvent(events.PageEnded, 0, 15*time.Second)
		time.Sleep(300 * time.Millisecond)
		pkts := tc.l.Packets()
		if len(pkts) == 0 {
			t.Fatalf("%s: the zone heard nothing", tc.mode)
		}
		tone := toneFrames(t, pkts, 440)
		if tone < 120 { // 3 s of tone is 150 frames
			t.Errorf("%s: %d frames of 440 Hz heard, want about 150", tc.mode, tone)
		}
		first := pkts[0].At
		switch tc.mode {
		case "live":
			if first.After(hungUp) {
				t.Errorf("live page started after the talker hung up")
			}
		case "store":
			if first.Before(hungUp.Add(-100 * time.Millisecond)) {
				t.Errorf("store-and-forward page started %v before the talker hung up", hungUp.Sub(first))
			}
		}
		t.Logf("%s: %d packets, %d frames of tone, first packet %v after the call began", tc.mode, len(pkts), tone, first.Sub(start).Round(time.Millisecond))
		ap.mu.Lock()
		ap.evs = nil
		ap.mu.Unlock()
	}
}

// toneFrames counts the PCMU frames whose zero crossings say freq.
func toneFrames(t *testing.T, hs []mcasttest.Packet, freq float64) int {
	_, by := rtpStreams(t, hs)
	n := 0
	for _, ps := range by {
		dec, err := codec.NewDecoder(codec.PCMU)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			pcm, err := dec.Decode(nil, p.Payload) // 16 kHz
			if err != nil || len(pcm) == 0 {
				continue
			}
			var sum float64
			cross := 0
			for i, v := range pcm {
				sum += float64(v) * float64(v)
				if i > 0 && (pcm[i-1] < 0) != (v < 0) {
					cross++
				}
			}
			rms := math.Sqrt(sum / float64(len(pcm)))
			f := float64(cross) / 2 / (float64(len(pcm)) / 16000)
			if rms > 1000 && math.Abs(f-freq) < 0.15*freq {
				n++
			}
		}
	}
	return n
}

// byeSentAt reads from a sipp message log when it sent its BYE: each
// message follows a line of dashes and sipp's local time.
func byeSentAt(msgs string) (time.Time, bool) {
	i := strings.Index(msgs, "sent")
	for i >= 0 {
		rest := msgs[i:]
		if j := strings.Index(rest, "\n"); j >= 0 && strings.HasPrefix(strings.TrimSpace(rest[j:]), "BYE sip:") {
			head := msgs[:i]
			k := strings.LastIndex(head, "----- ")
			if k < 0 {
				return time.Time{}, false
			}
			line := strings.TrimSpace(head[k+len("----- "):])
			if nl := strings.IndexByte(line, '\n'); nl >= 0 {
				line = strings.TrimSpace(line[:nl])
			}
			at, err := time.ParseInLocation("2006-01-02 15:04:05.000000", line, time.Local)
			return at, err == nil
		}
		next := strings.Index(msgs[i+1:], "sent")
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return time.Time{}, false
}
