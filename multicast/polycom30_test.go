package multicast

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/parkpage/parkpage/multicast/polycom"
)

// feed20 is a LiveFeed of fixed 20 ms frames.
type feed20 struct {
	frames [][]byte
	i      int
}

func (f *feed20) Frame(dst []byte) []byte {
	if f.i >= len(f.frames) {
		return dst
	}
	f.i++
	return append(dst, f.frames[f.i-1]...)
}

func (f *feed20) Over() bool { return f.i >= len(f.frames) }

// A Polycom output set to 30 ms frames (config frame: 30ms) sends a page
// rendered in 20 ms frames, pre-rendered and live, through the real Pacer
// on lo: a receiver reading the bytes as paging-formats.md describes them
// sees Transmits of 266 then 506 bytes, the sample count +240, one Transmit
// every 30 ms (kernel receive times), and the audio in order.
func TestPolycom30msOnLoopback(t *testing.T) {
	pacer := startPacer(t, nil)
	var frames [][]byte
	var audio []byte
	for i := range 30 { // 600 ms
		f := make([]byte, 160)
		for k := range f {
			f[k] = byte(i*7 + k)
		}
		frames = append(frames, f)
		audio = append(audio, f...)
	}
	for _, live := range []bool{false, true} {
		name := map[bool]string{false: "rendered", true: "live"}[live]
		t.Run(name, func(t *testing.T) {
			group := map[bool]string{false: "239.77.9.1", true: "239.77.9.2"}[live]
			rx := listenTS(t, group)
			out, err := NewPolycomOutput(pacer, loSender(t, group, rx.port), PolycomOptions{Channel: 26, Codec: polycom.CodecG711U,
				HostSerial: 7, Timing: polycom.Timing{AlertCount: 2, AlertInterval: 5 * time.Millisecond,
					FrameInterval: 30 * time.Millisecond, EndCount: 2, EndInterval: 5 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				var err error
				if live {
					_, err = out.PlayLive(context.Background(), &feed20{frames: frames})
				} else {
					_, err = out.Play(context.Background(), frames)
				}
				done <- err
			}()
			var got []byte
			var counts []uint32
			var at []int64
			ends := 0
			for ends < 2 {
				b, ts, err := rx.readTS(5 * time.Second)
				if err != nil {
					t.Fatalf("after %d transmits: %v", len(counts), err)
				}
				switch b[0] {
				case 0xFF:
					ends++
				case 0x10:
					n := len(counts)
					if want := []int{266, 506}[min(n, 1)]; len(b) != want {
						t.Errorf("transmit %d: %d bytes, want %d", n, len(b), want)
					}
					counts = append(counts, binary.BigEndian.Uint32(b[22:26]))
					at = append(at, ts)
					got = append(got, b[len(b)-240:]...)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(counts) != 20 {
				t.Fatalf("%d transmits, want 20 (600 ms in 30 ms frames)", len(counts))
			}
			for k := 1; k < len(counts); k++ {
				if d := counts[k] - counts[k-1]; d != 240 {
					t.Errorf("transmit %d: sample count +%d, want +240", k, d)
				}
			}
			if !bytes.Equal(got, audio) {
				t.Error("the 30 ms frames do not carry the page's audio in order")
			}
			var gaps []int64
			for k := 1; k < len(at); k++ {
				gaps = append(gaps, at[k]-at[k-1])
			}
			slices.Sort(gaps)
			if med := time.Duration(gaps[len(gaps)/2]); med < 29*time.Millisecond || med > 31*time.Millisecond {
				t.Errorf("median Transmit interval %v, want 30 ms", med)
			}
		})
	}
}
