package resample

import (
	"math"
	"slices"
	"testing"

	"github.com/parkpage/parkpage/internal/codec/internal/testsig"
)

func db(ratio float64) float64 { return 20 * math.Log10(ratio) }

// trim drops edge samples where the zero padding of the stateless
// functions, or the start-up of the stateful ones, shows.
func trim(x []int16, n int) []int16 { return x[n : len(x)-n] }

func TestDownsampleTones(t *testing.T) {
	const amp = 10000
	tests := []struct {
		freq      float64
		minGainDB float64 // output level relative to input
		maxGainDB float64
		checkFreq bool
	}{
		{1000, -0.1, 0.1, true},
		{3000, -0.2, 0.1, true},
		{6000, math.Inf(-1), -40, false}, // would alias to 2 kHz: must be gone
		{5000, math.Inf(-1), -40, false}, // would alias to 3 kHz
	}
	for _, tc := range tests {
		in := testsig.Tone(16000, 16000, tc.freq, amp)
		check := func(name string, out []int16) {
			t.Helper()
			out = trim(out, 100)
			alias := 8000 - tc.freq
			if tc.freq < 4000 {
				alias = tc.freq
			}
			level := testsig.ToneLevel(out, 8000, alias)
			gain := db(level / amp)
			t.Logf("%s %g Hz: level at %g Hz %.2f dB", name, tc.freq, alias, gain)
			if gain < tc.minGainDB || gain > tc.maxGainDB {
				t.Errorf("%s %g Hz: gain %.2f dB, want %.1f..%.1f", name, tc.freq, gain, tc.minGainDB, tc.maxGainDB)
			}
			if tc.checkFreq {
				if f := testsig.Frequency(out, 8000); math.Abs(f-tc.freq) > 0.5 {
					t.Errorf("%s %g Hz: measured %.2f Hz", name, tc.freq, f)
				}
			}
		}
		out := Downsample16to8(nil, in)
		if len(out) != len(in)/2 {
			t.Fatalf("Downsample16to8: %d samples from %d", len(out), len(in))
		}
		check("stateless", out)
		var d Downsampler
		var streamed []int16
		for i := 0; i < len(in); i += frameSamples {
			streamed = d.Process(streamed, in[i:i+frameSamples])
		}
		check("stream", streamed)
	}
}

// Cutting the stream anywhere changes nothing, and the stream decimator
// equals the stateless one on input delayed by DownsamplerDelay.
func TestDownsamplerSeamless(t *testing.T) {
	in := testsig.Speech(16000, 8000, 20000)
	var whole Downsampler
	want := whole.Process(nil, in)

	var d Downsampler
	var got []int16
	for i, step := 0, 1; i < len(in); i, step = i+step, step*3%317+1 {
		got = d.Process(got, in[i:min(i+step, len(in))])
	}
	if !slices.Equal(got, want) {
		t.Fatal("chunked stream output differs from one-shot stream output")
	}
	// Stream output k is centred on input 2k-31, stateless output k on
	// input 2k: delaying the stateless input by 31 lines them up.
	delayed := append(make([]int16, DownsamplerDelay), in...)
	ref := Downsample16to8(nil, delayed)
	for k := range want {
		if want[k] != ref[k] {
			t.Fatalf("stream output %d = %d, stateless on delayed input = %d", k, want[k], ref[k])
		}
	}
	d.Reset()
	if again := d.Process(nil, in); !slices.Equal(again, want) {
		t.Fatal("output after Reset differs")
	}
}

func TestUpsampleTones(t *testing.T) {
	const amp = 10000
	for _, freq := range []float64{1000, 3000} {
		in := testsig.Tone(8000, 8000, freq, amp)
		check := func(name string, out []int16) {
			t.Helper()
			out = trim(out, 100)
			gain := db(testsig.ToneLevel(out, 16000, freq) / amp)
			image := db(testsig.ToneLevel(out, 16000, 8000-freq) / amp)
			t.Logf("%s %g Hz: gain %.2f dB, image at %g Hz %.1f dB", name, freq, gain, 8000-freq, image)
			if math.Abs(gain) > 0.2 {
				t.Errorf("%s %g Hz: gain %.2f dB, want ±0.2", name, freq, gain)
			}
			if image > -40 {
				t.Errorf("%s %g Hz: image %.1f dB, want < -40", name, freq, image)
			}
			if f := testsig.Frequency(out, 16000); math.Abs(f-freq) > 0.5 {
				t.Errorf("%s %g Hz: measured %.2f Hz", name, freq, f)
			}
		}
		out := Upsample8to16(nil, in)
		if len(out) != 2*len(in) {
			t.Fatalf("Upsample8to16: %d samples from %d", len(out), len(in))
		}
		check("stateless", out)
		var u Upsampler
		var streamed []int16
		for i := 0; i < len(in); i += frameSamples / 2 {
			streamed = u.Process(streamed, in[i:i+frameSamples/2])
		}
		check("stream", streamed)
		// Stream output 2k is input k - UpsamplerDelay/2: compare with the
		// stateless output (which is the input at even positions).
		for k := UpsamplerDelay / 2; k < len(in); k++ {
			if streamed[2*k] != in[k-UpsamplerDelay/2] || streamed[2*k+1] != out[2*(k-UpsamplerDelay/2)+1] {
				t.Fatalf("stream output at %d does not match the stateless output delayed by %d", 2*k, UpsamplerDelay)
			}
		}
	}
}

// Down then up through the stream filters equals the stateless functions
// on the same (delayed) input, and keeps telephone-band speech intact.
func TestDownUpSpeech(t *testing.T) {
	in := testsig.Speech(16000, 32000, 20000)
	var d Downsampler
	var u Upsampler
	var out []int16
	for i := 0; i < len(in); i += frameSamples {
		out = u.Process(out, d.Process(nil, in[i:i+frameSamples]))
	}
	// The stream decimator's grid is the stateless one's on input delayed
	// by DownsamplerDelay; the interpolator then adds UpsamplerDelay.
	ref := Upsample8to16(nil, Downsample16to8(nil, append(make([]int16, DownsamplerDelay), in...)))
	for j := UpsamplerDelay; j < len(out)-100; j++ {
		if out[j] != ref[j-UpsamplerDelay] {
			t.Fatalf("stream down/up output %d = %d, stateless = %d", j, out[j], ref[j-UpsamplerDelay])
		}
	}
	lag := DownsamplerDelay + UpsamplerDelay
	if best := testsig.BestLag(in, out, 200); best != lag {
		t.Errorf("measured delay %d samples, want %d", best, lag)
	}
	c := testsig.Correlation(in, out[lag:])
	t.Logf("correlation with the full-band input %.4f", c)
	if c < 0.99 {
		t.Errorf("correlation %.4f < 0.99", c)
	}
}

func TestHalfbandDesign(t *testing.T) {
	sum := int32(0)
	for _, c := range hbHalf {
		sum += 2 * c
	}
	if sum != 1<<(hbShift-1) {
		t.Fatalf("off-centre taps sum to %d, want %d (unity DC gain)", sum, 1<<(hbShift-1))
	}
	// DC passes exactly through both directions.
	dc := slices.Repeat([]int16{12345}, 400)
	for i, v := range trim(Downsample16to8(nil, dc), 40) {
		if v != 12345 {
			t.Fatalf("decimated DC[%d] = %d", i, v)
		}
	}
	for i, v := range trim(Upsample8to16(nil, dc), 80) {
		if v != 12345 {
			t.Fatalf("interpolated DC[%d] = %d", i, v)
		}
	}
}

func TestConverterRates(t *testing.T) {
	const amp = 10000
	for _, rate := range []int{8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000, 44056} {
		in := testsig.Tone(rate, rate/2, 1000, amp) // 0.5 s
		out, err := Resample(in, rate, 16000)
		if err != nil {
			t.Fatal(err)
		}
		if want := (len(in)*16000 + rate - 1) / rate; len(out) != want {
			t.Errorf("%d Hz: %d output samples, want %d", rate, len(out), want)
		}
		mid := trim(out, 400)
		gain := db(testsig.ToneLevel(mid, 16000, 1000) / amp)
		f := testsig.Frequency(mid, 16000)
		// Timing: output n is input time n·rate/16000, so the output should
		// match a 1 kHz tone generated directly at 16 kHz.
		direct := testsig.Tone(16000, len(out), 1000, amp)
		snr := testsig.SNR(trim(direct, 400), mid, 0)
		t.Logf("%d Hz: 1 kHz gain %.3f dB, frequency %.3f Hz, SNR vs ideal %.1f dB", rate, gain, f, snr)
		if math.Abs(gain) > 0.1 || math.Abs(f-1000) > 0.2 || snr < 50 {
			t.Errorf("%d Hz: gain %.3f dB, frequency %.3f Hz, SNR %.1f dB", rate, gain, f, snr)
		}
		if rate > 16000 {
			// A tone just above 8 kHz must not alias into the output.
			hf := 9000.0
			in := testsig.Tone(rate, rate/2, hf, amp)
			out, _ := Resample(in, rate, 16000)
			alias := db(testsig.ToneLevel(trim(out, 400), 16000, 16000-hf) / amp)
			if alias > -60 {
				t.Errorf("%d Hz: 9 kHz aliases to 7 kHz at %.1f dB, want < -60", rate, alias)
			}
		}
	}
}

func TestConverterStreaming(t *testing.T) {
	in := testsig.Speech(44100, 44100, 20000)
	want, err := Resample(in, 44100, 16000)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewConverter(44100, 16000)
	var got []int16
	for i, step := 0, 1; i < len(in); i, step = i+step, step*7%1000+1 {
		if got, err = c.Process(got, in[i:min(i+step, len(in))]); err != nil {
			t.Fatal(err)
		}
	}
	got = c.Flush(got)
	if !slices.Equal(got, want) {
		t.Fatalf("streamed conversion differs (%d vs %d samples)", len(got), len(want))
	}
	if _, err := c.Process(nil, in[:10]); err == nil {
		t.Error("Process after Flush succeeded")
	}
	for _, r := range []int{0, 999, 768001, -8000} {
		if _, err := NewConverter(r, 16000); err == nil {
			t.Errorf("NewConverter(%d) succeeded", r)
		}
	}
}

// BenchmarkConvert converts 1 s of 44.1 kHz audio (a hold-music file) to
// 16 kHz.
func BenchmarkConvert(b *testing.B) {
	in := testsig.Speech(44100, 44100, 20000)
	out := make([]int16, 0, 16001)
	b.SetBytes(int64(2 * len(in)))
	for b.Loop() {
		c, err := NewConverter(44100, 16000)
		if err != nil {
			b.Fatal(err)
		}
		out, _ = c.Process(out[:0], in)
		out = c.Flush(out)
	}
}

// BenchmarkDownsampler halves one 20 ms frame (the G.711 send path).
func BenchmarkDownsampler(b *testing.B) {
	in := testsig.Speech(16000, frameSamples, 20000)
	var d Downsampler
	out := make([]int16, 0, frameSamples/2)
	b.ReportAllocs()
	for b.Loop() {
		out = d.Process(out[:0], in)
	}
}

// TestResampleVoiceRates covers what text-to-speech needs of Resample: a
// voice that is not 16 kHz (flite's 8 kHz kal, a 22.05 kHz voice) and the
// reverse direction, at unchanged level and frequency, with no delay, and
// with what is above the output's Nyquist filtered out, not folded down.
func TestResampleVoiceRates(t *testing.T) {
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
			in := testsig.Tone(tc.from, tc.from, tc.freq, 10000) // one second
			out, err := Resample(in, tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != tc.to {
				t.Fatalf("1 s at %d Hz gave %d samples at %d Hz", tc.from, len(out), tc.to)
			}
			mid := out[len(out)/8 : 7*len(out)/8]
			got := testsig.RMS(mid) / testsig.RMS(in)
			if math.Abs(got-tc.wantLevel) > 0.03 {
				t.Errorf("level ratio %.3f, want %.3f", got, tc.wantLevel)
			}
			if tc.checkFreq {
				if f := testsig.Frequency(mid, tc.to); math.Abs(f-tc.freq) > tc.freq/100 {
					t.Errorf("tone at %.0f Hz after resampling, want %.0f", f, tc.freq)
				}
			}
		})
	}
	// No delay: a tone's phase is preserved.
	out, err := Resample(testsig.Tone(8000, 8000, 500, 10000), 8000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	want := testsig.Tone(16000, 16000, 500, 10000)
	for i := 1000; i < 15000; i += 997 {
		if d := math.Abs(float64(out[i]) - float64(want[i])); d > 100 {
			t.Fatalf("sample %d: %d, want %d (delay or distortion)", i, out[i], want[i])
		}
	}
}
