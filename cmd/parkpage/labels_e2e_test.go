package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/wav"
	"github.com/parkpage/parkpage/internal/events"
	"github.com/parkpage/parkpage/internal/testsupport/mcasttest"
	"github.com/parkpage/parkpage/internal/testsupport/proctest"
)

// A receptionist records slot 704's label from a phone (sipp dialling
// *7704, streaming a 440 Hz WAV as the voice, pressing # then 1 with RFC
// 4733 events): the API lists it, serves it, and the slot's announcement
// speaks the recording where the label goes. A silent recording is
// refused and nothing is kept.
func TestRecordLabelFromPhone(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sox"); err != nil {
		t.Fatalf("sox is not installed (apt-get install sox): %v", err)
	}
	dir := t.TempDir()
	voice := filepath.Join(dir, "voice.wav")
	silence := filepath.Join(dir, "silence.wav")
	for _, c := range [][]string{
		{"-n", "-r", "8000", "-c", "1", "-e", "u-law", voice, "synth", "1.2", "sine", "440", "vol", "0.3"},
		{"-n", "-r", "8000", "-c", "1", "-e", "u-law", silence, "trim", "0", "1.2"},
	} {
		if out, err := exec.Command("sox", c...).CombinedOutput(); err != nil {
			t.Fatalf("sox %v: %v %s", c, err, out)
		}
	}
	scen, err := os.ReadFile("testdata/record_label.xml")
	if err != nil {
		t.Fatal(err)
	}
	scenario := func(name, wavPath, press string) string {
		s := strings.ReplaceAll(string(scen), "WAVFILE", wavPath)
		s = strings.ReplaceAll(s, "PRESS1", "/usr/share/sip-tester/dtmf_2833_"+press+".pcap")
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	port := proctest.FreePort(t, "udp")
	ap := startInproc(t, fmt.Sprintf(`
park:
  slots:
    "704": {label: Sales, announce: {zones: [floor], repeat_every: 0s}}
announce: {chime: none, template: "{label} call on {slot}"}
zones:
  floor:
    outputs:
      - {type: rtp, group: 239.255.80.7, port: %d, codec: pcmu, interface: lo, loopback: true}
`, port))
	// The prompt and tone take about 5.5 s and recording stays open 8 s; the voice starts well after them
	// (speak_ms) so a slow machine does not cut its start.
	keys := map[string]string{"speak_ms": "8000", "pound_ms": "2000", "keep_ms": "2500"}
	ap.sipp(scenario("keep.xml", voice, "1"), "*7704", keys).MustPass(90 * time.Second)

	var list struct {
		Recordings []struct {
			Slot, Kind, By string
			Seconds        float64
		}
	}
	getJSON(t, ap.api+"/api/v1/labels", &list)
	if len(list.Recordings) != 1 || list.Recordings[0].Slot != "704" || list.Recordings[0].Kind != "label" || list.Recordings[0].By != "201" {
		t.Fatalf("recordings after the call: %+v", list.Recordings)
	}
	if s := list.Recordings[0].Seconds; s < 1.1 || s > 1.6 {
		t.Errorf("recording is %.2f s, want the 1.2 s voice plus margins", s)
	}
	resp, err := http.Get(ap.api + "/api/v1/labels/704/label")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pcm, err := wav.Load16kMono(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("served recording: %v (HTTP %d)", err, resp.StatusCode)
	}
	if f := dominantFreq(pcm); math.Abs(f-440) > 20 {
		t.Errorf("recording's tone is %.0f Hz, want 440", f)
	}

	// The announcement speaks the recording: 440 Hz frames on the zone.
	l := mcasttest.Record(t, "239.255.80.7", port)
	from := ap.count(events.PageEnded)
	postJSON(t, ap.api+"/api/v1/announcements", `{"slot":"704","zones":["floor"],"wait":true}`, http.StatusOK)
	ap.waitEvent(events.PageEnded, from, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := toneFrames(t, l.Packets(), 440); n < 40 { // 1.2 s is 60 frames
		t.Errorf("%d frames of the recorded 440 Hz label on the zone, want about 60", n)
	}

	// Silence is refused (the caller hears why and hangs up); slot 705
	// keeps no recording.
	hangup := scenario("silent.xml", silence, "2")
	b, _ := os.ReadFile(hangup)
	cut := strings.Index(string(b), `  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_2.pcap"`)
	os.WriteFile(hangup, append(b[:cut:cut], []byte(callerBye)...), 0o644)
	ap.sipp(hangup, "*7705", map[string]string{"speak_ms": "8000", "pound_ms": "2000", "keep_ms": "3000"}).MustPass(90 * time.Second)
	getJSON(t, ap.api+"/api/v1/labels", &list)
	if len(list.Recordings) != 1 {
		t.Fatalf("a silent recording was kept: %+v", list.Recordings)
	}
	resp, err = http.Get(ap.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`parkpage_label_recordings_total{result="saved"} 1`, `parkpage_label_recordings_total{result="silent"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// callerBye ends a sipp scenario with the caller hanging up.
const callerBye = `  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Front Desk" <sip:201@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:201@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
`

// The API takes, refuses and deletes uploaded recordings.
func TestLabelsAPI(t *testing.T) {
	t.Parallel()
	ap := startInproc(t, "")
	mk := func(amp float64, d time.Duration) []byte {
		n := int(d * codec.SampleRate / time.Second)
		pcm := make([]int16, n)
		for i := range pcm {
			pcm[i] = int16(32767 * amp * math.Sin(2*math.Pi*300*float64(i)/codec.SampleRate))
		}
		var b bytes.Buffer
		if err := wav.Write(&b, codec.SampleRate, 1, pcm); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	put := func(path string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, ap.api+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "audio/wav")
		if strings.HasSuffix(path, "?type=text") { // a simple type a cross-site form could send
			req.Header.Set("Content-Type", "text/plain")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path string
		body []byte
		code int
		want string
	}{
		{"/api/v1/labels/701/label", mk(0.2, time.Second), 200, `"kind": "label"`},
		{"/api/v1/labels/701/label", mk(0, time.Second), 422, `"code": "silent"`},
		{"/api/v1/labels/701/label", mk(0.2, 100*time.Millisecond), 422, `"code": "too_short"`},
		{"/api/v1/labels/701/label", mk(0.2, 6*time.Second), 422, `"code": "too_long"`},
		{"/api/v1/labels/701/announcement", mk(0.2, 2*time.Second), 200, `"kind": "announcement"`},
		{"/api/v1/labels/701/jingle", mk(0.2, time.Second), 400, `"field": "kind"`},
		{"/api/v1/labels/999/label", mk(0.2, time.Second), 404, `"field": "slot"`},
		{"/api/v1/labels/701/label", []byte("not a wav"), 415, `"field": "audio"`},
		{"/api/v1/labels/701/label?type=text", mk(0.2, time.Second), 415, `Content-Type`},
	} {
		code, body := put(tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("PUT %s: %d %s, want %d with %s", tc.path, code, body, tc.code, tc.want)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, ap.api+"/api/v1/labels/701/announcement", nil)
	req.Header.Set("Content-Type", "application/json") // every state-changing API request says it
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	var list struct{ Recordings []struct{ Slot, Kind string } }
	getJSON(t, ap.api+"/api/v1/labels", &list)
	if len(list.Recordings) != 1 || list.Recordings[0].Kind != "label" {
		t.Fatalf("after delete: %+v", list.Recordings)
	}
}

func dominantFreq(pcm []int16) float64 {
	cross := 0
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			cross++
		}
	}
	return float64(cross) / 2 / (float64(len(pcm)) / codec.SampleRate)
}

func postJSON(t *testing.T, url, body string, want int) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
}
