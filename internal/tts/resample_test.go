package tts

import (
	"math"
	"testing"
)

func tone(n, rate int, freq, amp float64) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return pcm
}

func level(pcm []int16) float64 {
	var s float64
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(pcm)))
}

func zeroCrossFreq(pcm []int16, rate int) float64 {
	c := 0
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			c++
		}
	}
	return float64(c) / 2 / (float64(len(pcm)) / float64(rate))
}

// TestResample covers the path a voice that is not 16 kHz takes (flite's
// 8 kHz kal) and the reverse direction.
func TestResample(t *testing.T) {
	for _, tc := range []struct {
		name      string
		from, to  int
		freq      float64
		wantLevel float64 // RMS relative to the input's
		checkFreq bool
	}{
		{"8k to 16k 1 kHz", 8000, 16000, 1000, 1, true},
		{"16k to 8k 1 kHz", 16000, 8000, 1000, 1, true},
		{"22.05k to 16k 440 Hz", 22050, 16000, 440, 1, true},
		// 6 kHz is above the 8 kHz output's Nyquist: it must be filtered
		// out, not folded down to 2 kHz.
		{"16k to 8k 6 kHz", 16000, 8000, 6000, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tone(tc.from, tc.from, tc.freq, 10000) // one second
			out := resample(in, tc.from, tc.to)
			if len(out) != tc.to {
				t.Fatalf("1 s at %d Hz gave %d samples at %d Hz", tc.from, len(out), tc.to)
			}
			mid := out[len(out)/8 : 7*len(out)/8]
			got := level(mid) / level(in)
			if math.Abs(got-tc.wantLevel) > 0.03 {
				t.Errorf("level ratio %.3f, want %.3f", got, tc.wantLevel)
			}
			if tc.checkFreq {
				if f := zeroCrossFreq(mid, tc.to); math.Abs(f-tc.freq) > tc.freq/100 {
					t.Errorf("tone at %.0f Hz after resampling, want %.0f", f, tc.freq)
				}
			}
		})
	}
	// No delay: a tone's phase is preserved.
	in := tone(8000, 8000, 500, 10000)
	out := resample(in, 8000, 16000)
	want := tone(16000, 16000, 500, 10000)
	for i := 1000; i < 15000; i += 997 {
		if d := math.Abs(float64(out[i]) - float64(want[i])); d > 100 {
			t.Fatalf("sample %d: %d, want %d (delay or distortion)", i, out[i], want[i])
		}
	}
}
