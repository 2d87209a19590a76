package imagetest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
)

// wavAudio is the first channel of a 16-bit PCM WAV file.
type wavAudio struct {
	rate    int
	samples []float64 // -1..1
}

// readWAV reads a WAV file QEMU's wav audiodev writes. QEMU fills in the
// header's sizes only when it exits cleanly, so the data chunk runs to the
// end of the file whatever its header says.
func readWAV(path string) (*wavAudio, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, errors.New("not a RIFF/WAVE file")
	}
	var channels, bits, format int
	rate := 0
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := b[off+8:]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return nil, errors.New("short fmt chunk")
			}
			format = int(binary.LittleEndian.Uint16(body[0:]))
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
			bits = int(binary.LittleEndian.Uint16(body[14:]))
		case "data":
			if format != 1 || bits != 16 || channels < 1 {
				return nil, fmt.Errorf("want 16-bit PCM, got format %d, %d bits, %d channels", format, bits, channels)
			}
			frames := len(body) / (2 * channels)
			a := &wavAudio{rate: rate, samples: make([]float64, frames)}
			for i := range frames {
				a.samples[i] = float64(int16(binary.LittleEndian.Uint16(body[i*2*channels:]))) / 32768
			}
			return a, nil
		}
		off += 8 + size + size&1
	}
	return nil, errors.New("no data chunk")
}

// goertzel returns the power of frequency f in x (rate Hz) as the share of
// x's energy: 1 for a pure sine at f, near 0 for other sounds.
func goertzel(x []float64, rate int, f float64) float64 {
	w := 2 * math.Pi * f / float64(rate)
	c := 2 * math.Cos(w)
	var s1, s2, energy float64
	for i, v := range x {
		// A Hann window keeps a tone's power in its own bin.
		v *= 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(len(x)-1))
		s1, s2 = v+c*s1-s2, s1
		energy += v * v
	}
	if energy == 0 {
		return 0
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	return 2 * p / (float64(len(x)) * energy)
}

// window is one analysed stretch of the recording.
type window struct {
	at    float64 // s from the recording's start
	peak  float64 // Hz, the strongest frequency 150–2000 Hz
	share float64 // its share of the window's energy
	dbfs  float64 // RMS level
}

// analyse cuts the recording into 100 ms windows (50 ms apart) and finds
// each audible window's strongest frequency, in 5 Hz steps refined to
// 0.5 Hz, after decimating to 12 kHz or so (averaging: the tones looked
// for are far below the new Nyquist frequency).
func (a *wavAudio) analyse() []window {
	if k := a.rate / 12000; k > 1 {
		d := &wavAudio{rate: a.rate / k, samples: make([]float64, len(a.samples)/k)}
		for i := range d.samples {
			var sum float64
			for _, v := range a.samples[i*k : i*k+k] {
				sum += v
			}
			d.samples[i] = sum / float64(k)
		}
		a = d
	}
	n, hop := a.rate/10, a.rate/20
	var out []window
	for start := 0; start+n <= len(a.samples); start += hop {
		x := a.samples[start : start+n]
		var sum float64
		for _, v := range x {
			sum += v * v
		}
		rms := math.Sqrt(sum / float64(n))
		if rms < 1e-3 { // below -60 dBFS: silence
			continue
		}
		best, bestP := 0.0, 0.0
		for f := 150.0; f <= 2000; f += 5 {
			if p := goertzel(x, a.rate, f); p > bestP {
				best, bestP = f, p
			}
		}
		for f := best - 5; f <= best+5; f += 0.5 {
			if p := goertzel(x, a.rate, f); p > bestP {
				best, bestP = f, p
			}
		}
		out = append(out, window{at: float64(start) / float64(a.rate), peak: best, share: bestP, dbfs: 20 * math.Log10(rms)})
	}
	return out
}

// chimeAt finds the two-tone chime (E5 659.26 Hz, then C5 523.25 Hz 0.45 s
// later): the first window dominated by E5 followed within a second by one
// dominated by C5. It returns the two windows.
func chimeAt(ws []window) (e5, c5 window, ok bool) {
	const tol = 6 // Hz
	for i, w := range ws {
		if math.Abs(w.peak-659.26) > tol || w.share < 0.5 {
			continue
		}
		for _, v := range ws[i+1:] {
			if v.at > w.at+1.2 {
				break
			}
			if math.Abs(v.peak-523.25) <= tol && v.share >= 0.5 {
				return w, v, true
			}
		}
	}
	return window{}, window{}, false
}

// The analysis itself, on a synthetic recording: silence, the two-tone
// chime, silence; and on noise, which must not pass for the chime.
func TestWAVChimeAnalysis(t *testing.T) {
	const rate = 48000
	tone := func(f, secs, amp float64) []float64 {
		x := make([]float64, int(secs*rate))
		for i := range x {
			x[i] = amp * math.Sin(2*math.Pi*f*float64(i)/rate) * math.Exp(-float64(i)/rate/0.5)
		}
		return x
	}
	var s []float64
	s = append(s, make([]float64, rate/2)...)
	s = append(s, tone(659.26, 0.45, 0.5)...)
	s = append(s, tone(523.25, 0.8, 0.5)...)
	s = append(s, make([]float64, rate/2)...)
	a := &wavAudio{rate: rate, samples: s}
	e5, c5, ok := chimeAt(a.analyse())
	if !ok {
		t.Fatalf("chime not found in a synthetic chime: %+v", a.analyse())
	}
	if e5.at < 0.45 || e5.at > 0.6 || c5.at < e5.at+0.3 {
		t.Errorf("chime at %.2f s / %.2f s, want 0.5 s / 0.95 s", e5.at, c5.at)
	}
	noise := make([]float64, 2*rate)
	x := uint32(1)
	for i := range noise {
		x = x*1664525 + 1013904223
		noise[i] = float64(int32(x)) / (1 << 31) * 0.3
	}
	if _, _, ok := chimeAt((&wavAudio{rate: rate, samples: noise}).analyse()); ok {
		t.Error("noise passed for the chime")
	}
	if ws := (&wavAudio{rate: rate, samples: make([]float64, rate)}).analyse(); len(ws) != 0 {
		t.Errorf("silence has %d audible windows", len(ws))
	}
}
