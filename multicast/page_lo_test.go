package multicast

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parkpage/parkpage/internal/announce"
	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/multicast/polycom"
	"github.com/parkpage/parkpage/multicast/rtp"
)

// loAnnouncement renders one real announcement (flite speech after the
// built-in beep) of about 1.4 s, shared by the loopback page tests.
var loAnnouncement = sync.OnceValues(func() (*announce.Rendered, error) {
	r, err := announce.NewRenderer(announce.Config{
		LeadIn: 60 * time.Millisecond, ChimeGap: 100 * time.Millisecond, Tail: 60 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	return r.Render(context.Background(), announce.Request{Text: "Call on 704", Chime: announce.ChimeBeep})
})

// heardCorrelation compares the audio a receiver decodes from the frames it
// got with the rendered announcement: G.711 at 8 kHz against the rendered
// PCM band-limited to 8 kHz (the code words are 8 kHz samples), the others
// at 16 kHz. It returns the best normalised correlation over the codec's
// delay.
func heardCorrelation(t *testing.T, name codec.Name, rendered []int16, payloads [][]byte) float64 {
	t.Helper()
	switch name {
	case codec.PCMU, codec.PCMA:
		expand := codec.ULawToLinear
		if name == codec.PCMA {
			expand = codec.ALawToLinear
		}
		var got []int16
		for _, p := range payloads {
			for _, b := range p {
				got = append(got, expand(b))
			}
		}
		// The encoder's downsampler delays by DownsamplerDelay 16 kHz
		// samples; an odd delay is half an 8 kHz sample, which the lag
		// search cannot find, so shift the reference by that half first.
		ref := append(make([]int16, codec.DownsamplerDelay%2), rendered...)
		return bestCorrelation(codec.Downsample16to8(nil, ref), got, 40, 0)
	}
	return bestCorrelation(rendered, decodeAll(t, name, payloads), 480, 0)
}

// TestPageOnLoopback sends a rendered announcement as a whole page in every
// format and codec to a multicast group joined on lo, as a phone would
// receive it, and checks the session sequence (Polycom: 31 Alerts, every
// frame with the previous one as its redundant copy, sample count +160,
// 12 Ends; RTP: one SSRC, marker on the first packet only, sequence +1,
// timestamp +160 or +960), that the frames are byte for byte the rendered
// ones, and that the decoded audio matches the announcement. Polycom Alert
// and End spacing is shortened (TestPolycomPage covers the real cadence).
func TestPageOnLoopback(t *testing.T) {
	t.Parallel()
	ann, err := loAnnouncement()
	if err != nil {
		t.Fatal(err)
	}
	pacer := startPacer(t, nil)
	// Thresholds (measured: G.711 and G.722 0.9999, Opus 0.925): G.711 is
	// near-transparent in its band and G.722 at 64 kbit/s nearly so; Opus
	// is perceptual (the waveform is not kept), so its threshold only
	// catches wrong, missing or misordered frames.
	tests := []struct {
		format  string
		codec   codec.Name
		pcodec  polycom.Codec
		pt      uint8
		step    uint32
		minCorr float64
	}{
		{"polycom", codec.PCMU, polycom.CodecG711U, 0, 160, 0.99},
		{"polycom", codec.G722, polycom.CodecG722, 0, 160, 0.99},
		{"polycom", codec.PCMA, polycom.CodecG711A, 0, 160, 0.99},
		{"rtp", codec.PCMU, 0, 0, 160, 0.99},
		{"rtp", codec.PCMA, 0, 8, 160, 0.99},
		{"rtp", codec.G722, 0, 9, 160, 0.99},
		{"rtp", codec.Opus, 0, 111, 960, 0.85},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.format, tt.codec), func(t *testing.T) {
			t.Parallel()
			group := fmt.Sprintf("239.77.9.%d", i+1)
			l := listen(t, group)
			s := loSender(t, group, l.port)
			frames, err := ann.Frames(tt.codec)
			if err != nil {
				t.Fatal(err)
			}
			want := cloneFrames(frames)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			type played struct {
				st  Stats
				err error
			}
			done := make(chan played, 1)

			var got [][]byte
			switch tt.format {
			case "polycom":
				opts := PolycomOptions{Channel: 26, CallerID: "Reception", Codec: tt.pcodec, AllowG711A: tt.pcodec == polycom.CodecG711A,
					HostSerial: 0x0a0b0c0d, Timing: fastTiming}
				out, err := NewPolycomOutput(pacer, s, opts)
				if err != nil {
					t.Fatal(err)
				}
				go func() { st, err := out.Play(ctx, frames); done <- played{st, err} }()
				pkts := receivePolycom(t, l)
				got = checkPolycomPage(t, pkts, opts, want, true)
				if res := <-done; res.err != nil || res.st.Packets != len(pkts) || res.st.Dropped != 0 {
					t.Fatalf("Play: %+v, %v; %d packets received", res.st, res.err, len(pkts))
				}
			case "rtp":
				out, err := NewRTPOutput(pacer, s, RTPOptions{Codec: tt.codec})
				if err != nil {
					t.Fatal(err)
				}
				go func() { st, err := out.Play(ctx, frames); done <- played{st, err} }()
				f := rtp.Follower{PayloadType: int(tt.pt), TimestampStep: tt.step}
				for range frames {
					p, err := rtp.Parse(l.next(t, recvTimeout))
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range f.Push(nil, &p) {
						if e.Kind == rtp.EventFrame {
							if e.Marker != (len(got) == 0) {
								t.Fatalf("frame %d: marker %v", len(got), e.Marker)
							}
							got = append(got, e.Payload)
						}
					}
				}
				if st := f.Stats; st.Streams != 1 || st.Frames != len(frames) || st.Markers != 1 || st.Lost+st.Duplicates+st.Ignored+st.TimestampJumps != 0 {
					t.Fatalf("receiver stats %+v for %d frames", st, len(frames))
				}
				for k := range got {
					if string(got[k]) != string(want[k]) {
						t.Fatalf("frame %d differs from the rendered frame", k)
					}
				}
				if res := <-done; res.err != nil || res.st.Packets != len(frames) || res.st.Dropped != 0 {
					t.Fatalf("Play: %+v, %v", res.st, res.err)
				}
			}
			l.expectSilence(t, 100*time.Millisecond)
			c := heardCorrelation(t, tt.codec, ann.PCM, got)
			t.Logf("%d frames (%v), decoded correlation %.4f", len(got), ann.Duration(), c)
			if c < tt.minCorr {
				t.Fatalf("decoded audio correlation with the rendered announcement %.4f, want > %.2f", c, tt.minCorr)
			}
		})
	}
}
