package browsertest

import (
	le "encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The recorded labels page: upload a label as a WAV, see it listed with a
// player, a silent upload refused with the reason on the page, delete.
func TestRecordedLabelsPage(t *testing.T) {
	t.Parallel()
	const pw = "labels-page-pass"
	ap := startAppliance(t, fmt.Sprintf("http: {password_hash: %q}\n", hashPassword(t, pw)))
	dir := t.TempDir()
	mk := func(name string, amp float64) string {
		pcm := make([]int16, 16000)
		for i := range pcm {
			pcm[i] = int16(32767 * amp * math.Sin(2*math.Pi*300*float64(i)/16000))
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, wavFile(pcm), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	voice, silent := mk("sales.wav", 0.2), mk("silent.wav", 0)
	ctx := newBrowser(t, 3*time.Minute)
	login(t, ctx, ap.api, pw)
	row := `tr[data-slot="704"] td[data-kind="label"]`
	do(t, ctx, "labels page", chromedp.Navigate(ap.api+"/setup/labels"), chromedp.WaitVisible(row))

	do(t, ctx, "upload a label", chromedp.SetUploadFiles(row+` input[data-upload]`, []string{voice}))
	poll(t, ctx, "the recording listed with a player", `!!document.querySelector('`+row+` audio')`)
	if txt := eval[string](t, ctx, `document.querySelector('`+row+`').innerText`); !strings.Contains(txt, "1.") || !strings.Contains(txt, "api") {
		t.Errorf("recording cell %q: want its length and who recorded it", txt)
	}
	screenshot(t, ctx, "labels")

	ann := `tr[data-slot="705"] td[data-kind="announcement"]`
	do(t, ctx, "upload silence", chromedp.SetUploadFiles(ann+` input[data-upload]`, []string{silent}))
	poll(t, ctx, "the refusal shown", `document.querySelector('#labels-status').textContent.includes('silent')`)
	if n := eval[int](t, ctx, `document.querySelectorAll('audio').length`); n != 1 {
		t.Errorf("%d players after a refused upload, want 1", n)
	}

	// Delete asks first; the test accepts the confirm dialog.
	eval[bool](t, ctx, `(window.confirm = () => true, true)`)
	do(t, ctx, "delete", chromedp.Click(row+` button[data-delete]`))
	poll(t, ctx, "the recording gone", `!document.querySelector('`+row+` audio')`)
	_ = os.Remove(voice)
}

// wavFile is 16 kHz mono 16-bit PCM as a WAV file (written here: the
// module does not import the appliance's codec packages).
func wavFile(pcm []int16) []byte {
	data := len(pcm) * 2
	b := make([]byte, 0, 44+data)
	b = append(b, "RIFF"...)
	b = le.LittleEndian.AppendUint32(b, uint32(36+data))
	b = append(b, "WAVEfmt "...)
	b = le.LittleEndian.AppendUint32(b, 16)
	b = le.LittleEndian.AppendUint16(b, 1) // PCM
	b = le.LittleEndian.AppendUint16(b, 1) // mono
	b = le.LittleEndian.AppendUint32(b, 16000)
	b = le.LittleEndian.AppendUint32(b, 32000)
	b = le.LittleEndian.AppendUint16(b, 2)
	b = le.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = le.LittleEndian.AppendUint32(b, uint32(data))
	for _, v := range pcm {
		b = le.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}
