package sipamp

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
)

// DTMF key frequencies (ITU-T Q.23): rows low, columns high.
var (
	dtmfRows = [4]float64{697, 770, 852, 941}
	dtmfCols = [4]float64{1209, 1336, 1477, 1633}
	dtmfKeys = [4]string{"123A", "456B", "789C", "*0#D"}
)

// toneLevel is each of the two tones' amplitude: about -13 dBFS, near
// -10 dBm0 in G.711, the level phones send; together they peak at -7 dBFS.
const toneLevel = 7300

// edge is the raised-cosine ramp at each end of a tone, so the burst has
// no clicks that a detector could take for energy at other frequencies.
const edge = 2 * time.Millisecond

// InbandTones renders digits as in-band DTMF at 16 kHz: each key for on,
// then gap of silence. It is for G.711 paths (ATAs, FXS gateways) that do
// not carry RFC 4733 events.
func InbandTones(digits string, on, gap time.Duration) ([]int16, error) {
	onN := int(on.Seconds() * codec.SampleRate)
	gapN := int(gap.Seconds() * codec.SampleRate)
	edgeN := int(edge.Seconds() * codec.SampleRate)
	out := make([]int16, 0, len(digits)*(onN+gapN))
	for _, d := range digits {
		lo, hi, ok := keyFreqs(d)
		if !ok {
			return nil, fmt.Errorf("%q is not a DTMF key", d)
		}
		for i := range onN {
			t := float64(i) / codec.SampleRate
			v := math.Sin(2*math.Pi*lo*t) + math.Sin(2*math.Pi*hi*t)
			g := 1.0
			if i < edgeN {
				g = 0.5 - 0.5*math.Cos(math.Pi*float64(i)/float64(edgeN))
			} else if j := onN - 1 - i; j < edgeN {
				g = 0.5 - 0.5*math.Cos(math.Pi*float64(j)/float64(edgeN))
			}
			out = append(out, int16(math.Round(toneLevel*g*v)))
		}
		out = append(out, make([]int16, gapN)...)
	}
	return out, nil
}

func keyFreqs(d rune) (lo, hi float64, ok bool) {
	if d >= 'a' && d <= 'd' {
		d -= 'a' - 'A'
	}
	for r, row := range dtmfKeys {
		if c := strings.IndexRune(row, d); c >= 0 {
			return dtmfRows[r], dtmfCols[c], true
		}
	}
	return 0, 0, false
}

// infoBody is an application/dtmf-relay body (the de-facto format Cisco
// introduced: Signal and Duration in milliseconds).
func infoBody(d rune, on time.Duration) []byte {
	if d >= 'a' && d <= 'd' {
		d -= 'a' - 'A'
	}
	return []byte(fmt.Sprintf("Signal=%c\r\nDuration=%d\r\n", d, on.Milliseconds()))
}
