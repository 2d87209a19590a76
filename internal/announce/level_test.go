package announce

import (
	"math"
	"math/rand/v2"
	"testing"
)

func sine(n int, freq, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/sampleRate)))
	}
	return out
}

func peakDBFS(pcm []int16) float64 {
	var p int
	for _, v := range pcm {
		p = max(p, abs(int(v)))
	}
	return 20 * math.Log10(float64(p)/32768)
}

func TestLoudness(t *testing.T) {
	// A sine of peak A has RMS A/√2: -20 dBFS RMS is peak 32768*0.1*√2.
	amp := 32768 * 0.1 * math.Sqrt2
	tone := sine(sampleRate, 440, amp)
	gappy := make([]int16, 0, 4*sampleRate)
	for range 3 { // tone, then as much silence again, three times
		gappy = append(gappy, tone[:sampleRate/2]...)
		gappy = append(gappy, make([]int16, sampleRate/2)...)
	}
	// A word with a quiet tail 30 dB down: the tail is gated out.
	tail := append(sine(sampleRate/2, 440, amp), sine(sampleRate/2, 440, amp/31.6)...)
	for _, tc := range []struct {
		name string
		pcm  []int16
		want float64
	}{
		{"steady tone", tone, -20},
		{"tone with pauses", gappy, -20},
		{"tone with quiet tail", tail, -20},
		{"full-scale sine", sine(sampleRate, 1000, 32767), -3.01},
	} {
		if got := Loudness(tc.pcm); math.Abs(got-tc.want) > 0.1 {
			t.Errorf("%s: Loudness %.2f dBFS, want %.2f", tc.name, got, tc.want)
		}
	}
	if got := Loudness(make([]int16, 1000)); !math.IsInf(got, -1) {
		t.Errorf("silence: Loudness %v, want -Inf", got)
	}
	if got := Loudness(nil); !math.IsInf(got, -1) {
		t.Errorf("empty: Loudness %v, want -Inf", got)
	}
}

func TestLimiter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ceiling := range []float64{-1, -3, -0.1} {
		ceil := 32768 * dbToLin(ceiling)
		// Hot signals: loud noise bursts, a clipping sine, lone spikes.
		x := make([]float64, 3*sampleRate)
		for i := range x {
			switch {
			case i < sampleRate:
				x[i] = rng.NormFloat64() * 40000
			case i < 2*sampleRate:
				x[i] = 90000 * math.Sin(2*math.Pi*300*float64(i)/sampleRate)
			case i%4000 == 0:
				x[i] = -200000
			}
		}
		out := limit(x, ceiling)
		for i, v := range out {
			if math.Abs(float64(v)) > ceil {
				t.Fatalf("ceiling %v dBFS: sample %d is %d, above %.0f", ceiling, i, v, ceil)
			}
		}
		// Gain only: a zero stays zero, and the sign is never flipped.
		for i := range x {
			if x[i] == 0 && out[i] != 0 || x[i]*float64(out[i]) < 0 {
				t.Fatalf("sample %d: %v became %d", i, x[i], out[i])
			}
		}
	}
	// Below the ceiling it is transparent.
	quiet := make([]float64, sampleRate)
	for i := range quiet {
		quiet[i] = 20000 * math.Sin(2*math.Pi*440*float64(i)/sampleRate)
	}
	for i, v := range limit(quiet, -1) {
		if math.Abs(float64(v)-quiet[i]) > 0.5 {
			t.Fatalf("sample %d: %v became %d below the ceiling", i, quiet[i], v)
		}
	}
	// Smooth: one spike of 20 dB over the ceiling is ramped into over the
	// 5 ms lookahead, not applied in a single step.
	spike := make([]float64, sampleRate/10)
	for i := range spike {
		spike[i] = 10000
	}
	spike[800] = 290000
	out := limit(spike, -1)
	for i := 1; i < len(out); i++ {
		if i == 800 || i == 801 {
			continue
		}
		if d := math.Abs(float64(out[i]) - float64(out[i-1])); d > 10000*0.9/limiterLookahead*1.5 {
			t.Fatalf("gain step of %.0f at sample %d: not smooth", d, i)
		}
	}
	if out[800] > int16(32768*dbToLin(-1)) || out[799] >= 10000 || out[700] != 10000 {
		t.Fatalf("spike: out[700]=%d out[799]=%d out[800]=%d", out[700], out[799], out[800])
	}
}
