package codec

import (
	"math"
	"testing"

	"github.com/parkpage/parkpage/internal/codec/internal/testsig"
)

func db(ratio float64) float64 { return 20 * math.Log10(ratio) }

// roundTrip encodes pcm frame by frame through a fresh encoder and decoder
// of the named codec and returns the decoded audio and payload sizes.
func roundTrip(t testing.TB, name Name, pcm []int16) (out []int16, sizes []int) {
	t.Helper()
	enc, err := NewEncoder(name)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder(name)
	if err != nil {
		t.Fatal(err)
	}
	var payload []byte
	for i := 0; i+FrameSamples <= len(pcm); i += FrameSamples {
		payload, err = enc.Encode(payload[:0], pcm[i:i+FrameSamples])
		if err != nil {
			t.Fatalf("%s: encode frame %d: %v", name, i/FrameSamples, err)
		}
		sizes = append(sizes, len(payload))
		before := len(out)
		if out, err = dec.Decode(out, payload); err != nil {
			t.Fatalf("%s: decode frame %d: %v", name, i/FrameSamples, err)
		}
		if got := len(out) - before; got != FrameSamples {
			t.Fatalf("%s: frame %d decoded to %d samples, want %d", name, i/FrameSamples, got, FrameSamples)
		}
	}
	return out, sizes
}

// TestRoundTrip runs speech-like audio and a tone through every codec and
// checks the quality after aligning the codec delay. Thresholds sit a few
// dB / points below the values measured here (logged with -v).
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name        Name
		payload     int // bytes per 20 ms frame; 0 = variable (Opus)
		delay       int // expected delay in samples, -1 = measured
		minCorr     float64
		minSNR      float64 // speech
		telephoneBW bool    // 8 kHz codec: compare against a band-limited reference
	}{
		{PCMU, 160, DownsamplerDelay + UpsamplerDelay, 0.999, 30, true},
		{PCMA, 160, DownsamplerDelay + UpsamplerDelay, 0.999, 30, true},
		{G722, 160, 22, 0.999, 35, false},
		{Opus, 0, 103, 0.95, 9, false}, // not waveform-matching: measured 0.965, 11.6 dB
	}
	speech := testsig.Speech(SampleRate, 3*SampleRate, 20000)
	// G.711 carries 0–4 kHz only: judge its coding noise against the
	// input as the resamplers band-limit it (their loss is tested apart).
	var d Downsampler
	var u Upsampler
	bandLimited := u.Process(nil, d.Process(nil, speech))
	bandLimited = bandLimited[DownsamplerDelay+UpsamplerDelay:]

	for _, tc := range tests {
		t.Run(string(tc.name), func(t *testing.T) {
			out, sizes := roundTrip(t, tc.name, speech)
			for i, n := range sizes {
				if tc.payload != 0 && n != tc.payload {
					t.Fatalf("frame %d payload %d bytes, want %d", i, n, tc.payload)
				}
				if n == 0 || n > 200 {
					t.Fatalf("frame %d payload %d bytes", i, n)
				}
			}
			lag := testsig.BestLag(speech, out, 1000)
			if tc.delay >= 0 && lag != tc.delay {
				t.Errorf("delay %d samples, want %d", lag, tc.delay)
			}
			aligned := out[lag:]
			corr := testsig.Correlation(speech, aligned)
			ref := speech
			if tc.telephoneBW {
				ref = bandLimited
			}
			snr := testsig.SNR(ref, aligned, 640)
			total := 0
			for _, n := range sizes {
				total += n
			}
			kbps := float64(total*8) / (float64(len(sizes)) * 0.02) / 1000
			t.Logf("delay %d samples, correlation %.4f, SNR %.1f dB, %.1f kbit/s", lag, corr, snr, kbps)
			if corr < tc.minCorr {
				t.Errorf("correlation %.4f < %.3f", corr, tc.minCorr)
			}
			if snr < tc.minSNR {
				t.Errorf("SNR %.1f dB < %.0f", snr, tc.minSNR)
			}

			// A 1 kHz tone keeps its level and frequency.
			tone := testsig.Tone(SampleRate, SampleRate, 1000, 10000)
			got, _ := roundTrip(t, tc.name, tone)
			got = got[2000 : len(got)-2000]
			level := db(testsig.ToneLevel(got, SampleRate, 1000) / 10000)
			f := testsig.Frequency(got, SampleRate)
			t.Logf("1 kHz tone: level %.2f dB, frequency %.2f Hz", level, f)
			if level < -1 || level > 0.5 || f < 999 || f > 1001 {
				t.Errorf("1 kHz tone: level %.2f dB, frequency %.2f Hz", level, f)
			}
		})
	}
}

func TestUnknownCodec(t *testing.T) {
	if _, err := NewEncoder("gsm"); err == nil {
		t.Error("NewEncoder(gsm) succeeded")
	}
	if _, err := NewDecoder("speex"); err == nil {
		t.Error("NewDecoder(speex) succeeded")
	}
	// Names are case-insensitive, like Lookup.
	for _, info := range All() {
		upper := Name(info.EncodingSDP)
		if _, err := NewEncoder(upper); err != nil {
			t.Errorf("NewEncoder(%q): %v", upper, err)
		}
		if _, err := NewDecoder(upper); err != nil {
			t.Errorf("NewDecoder(%q): %v", upper, err)
		}
	}
}

func TestBadFrames(t *testing.T) {
	for _, name := range []Name{PCMU, PCMA, G722, Opus} {
		enc, _ := NewEncoder(name)
		if _, err := enc.Encode(nil, make([]int16, 321)); err == nil {
			t.Errorf("%s: odd frame accepted", name)
		}
	}
	enc, _ := NewEncoder(Opus)
	if _, err := enc.Encode(nil, make([]int16, 300)); err == nil {
		t.Error("opus: 300-sample frame accepted")
	}
	// Other ptimes work for the sample-based codecs.
	for _, name := range []Name{PCMU, PCMA, G722} {
		enc, _ := NewEncoder(name)
		out, err := enc.Encode(nil, make([]int16, 480)) // 30 ms
		if err != nil || len(out) != 240 {
			t.Errorf("%s: 30 ms frame: %d bytes, %v", name, len(out), err)
		}
	}
	dec, _ := NewDecoder(Opus)
	if _, err := dec.Decode(nil, []byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("opus: garbage packet decoded without error")
	}
}

func TestOpusOptionsAndConcealment(t *testing.T) {
	speech := testsig.Speech(SampleRate, SampleRate, 20000)
	sizeAt := func(bitrate int) int {
		enc, err := NewEncoderOptions(Opus, Options{Opus: OpusOptions{Bitrate: bitrate, Complexity: 10, FEC: true, PacketLossPercent: 10}})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for i := 0; i < len(speech); i += FrameSamples {
			p, err := enc.Encode(nil, speech[i:i+FrameSamples])
			if err != nil {
				t.Fatal(err)
			}
			total += len(p)
		}
		return total
	}
	lo, hi := sizeAt(12000), sizeAt(64000)
	t.Logf("1 s of speech: %d bytes at 12 kbit/s, %d bytes at 64 kbit/s", lo, hi)
	if lo >= hi || lo > 12000/8*3/2 || hi < 64000/8/2 {
		t.Errorf("bitrate option has no plausible effect: %d bytes at 12k, %d at 64k", lo, hi)
	}
	for _, o := range []OpusOptions{{Bitrate: 1}, {Bitrate: 600000}, {Complexity: 11}, {PacketLossPercent: 101}} {
		if _, err := NewEncoderOptions(Opus, Options{Opus: o}); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}

	dec, _ := NewDecoder(Opus)
	c, ok := dec.(Concealer)
	if !ok {
		t.Fatal("opus decoder does not implement Concealer")
	}
	enc, _ := NewEncoder(Opus)
	p, _ := enc.Encode(nil, speech[:FrameSamples])
	if _, err := dec.Decode(nil, p); err != nil {
		t.Fatal(err)
	}
	out, err := c.Conceal(nil, FrameSamples)
	if err != nil || len(out) != FrameSamples {
		t.Fatalf("Conceal: %d samples, %v", len(out), err)
	}
	if _, err := c.Conceal(nil, 100); err == nil {
		t.Error("Conceal(100 samples) accepted")
	}
	var empty []int16
	if empty, err = dec.Decode(empty, nil); err != nil || len(empty) != 0 {
		t.Errorf("empty payload: %d samples, %v", len(empty), err)
	}
}

// Decoders must survive arbitrary payloads (they come off the network).
func FuzzDecoders(f *testing.F) {
	f.Add(byte(0), []byte{})
	f.Add(byte(1), []byte{0xff, 0x00, 0x7f, 0x80})
	f.Add(byte(3), []byte{0x78, 0x01, 0x02})
	f.Add(byte(3), []byte{0xfc, 0xff, 0xfe})
	names := []Name{PCMU, PCMA, G722, Opus}
	f.Fuzz(func(t *testing.T, which byte, payload []byte) {
		name := names[int(which)%len(names)]
		dec, err := NewDecoder(name)
		if err != nil {
			t.Fatal(err)
		}
		out, err := dec.Decode(nil, payload)
		if err != nil {
			if name != Opus {
				t.Fatalf("%s: %v", name, err)
			}
			return
		}
		// G.711: 8 kHz samples doubled; G.722: two samples per byte.
		if want := 2 * len(payload); name != Opus && len(out) != want {
			t.Fatalf("%s: %d samples from %d bytes", name, len(out), len(payload))
		}
		if len(out) > opusMaxSamples && name == Opus {
			t.Fatalf("opus: %d samples from one packet", len(out))
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	frame := testsig.Speech(SampleRate, FrameSamples, 20000)
	for _, name := range []Name{PCMU, PCMA, G722, Opus} {
		b.Run(string(name), func(b *testing.B) {
			enc, err := NewEncoder(name)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 4000)
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = enc.Encode(buf[:0], frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := testsig.Speech(SampleRate, FrameSamples, 20000)
	for _, name := range []Name{PCMU, PCMA, G722, Opus} {
		b.Run(string(name), func(b *testing.B) {
			enc, _ := NewEncoder(name)
			payload, err := enc.Encode(nil, frame)
			if err != nil {
				b.Fatal(err)
			}
			dec, _ := NewDecoder(name)
			buf := make([]int16, 0, opusMaxSamples)
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = dec.Decode(buf[:0], payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
