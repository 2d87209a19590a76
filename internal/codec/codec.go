// Package codec turns parkpage's internal audio (16 kHz mono signed 16-bit PCM,
// 20 ms = 320 samples per frame) into the payloads phones and amplifiers play,
// and back. It knows nothing of RTP, SIP or multicast: callers put the bytes
// into whatever packet their output needs.
package codec

import (
	"fmt"
	"strings"
)

// SampleRate is the rate of parkpage's internal audio in Hz.
const SampleRate = 16000

// FrameSamples is one 20 ms frame of internal audio.
const FrameSamples = SampleRate / 50

// Name identifies a codec in config, the API and cache keys.
type Name string

// The codecs parkpage sends and receives.
const (
	PCMU Name = "pcmu" // G.711 µ-law, 8 kHz
	PCMA Name = "pcma" // G.711 A-law, 8 kHz
	G722 Name = "g722" // G.722 64 kbit/s, 16 kHz audio on an 8 kHz RTP clock
	Opus Name = "opus" // Opus, 48 kHz RTP clock
)

// Info is the static description of a codec as RTP and SDP see it.
type Info struct {
	Name        Name
	PayloadType uint8  // static PT (RFC 3551) or parkpage's default dynamic PT for Opus
	ClockRate   uint32 // RTP clock in Hz (G.722: 8000 although audio is 16 kHz)
	Channels    int    // SDP channel count (Opus is always advertised as 2, RFC 7587)
	EncodingSDP string // rtpmap encoding name
	// TimestampStep is the RTP timestamp increment per 20 ms frame.
	TimestampStep uint32
}

var infos = map[Name]Info{
	PCMU: {PCMU, 0, 8000, 1, "PCMU", 160},
	PCMA: {PCMA, 8, 8000, 1, "PCMA", 160},
	G722: {G722, 9, 8000, 1, "G722", 160},
	Opus: {Opus, 111, 48000, 2, "opus", 960},
}

// Lookup returns the Info for a codec name (case-insensitive).
func Lookup(name string) (Info, error) {
	i, ok := infos[Name(strings.ToLower(name))]
	if !ok {
		return Info{}, fmt.Errorf("unknown codec %q (want pcmu, pcma, g722 or opus)", name)
	}
	return i, nil
}

// All returns every supported codec in preference order for SDP offers.
func All() []Info { return []Info{infos[G722], infos[Opus], infos[PCMU], infos[PCMA]} }

// Encoder turns 20 ms frames of 16 kHz PCM into codec payloads. Encoders
// keep state between frames (G.722, Opus): use one per stream.
type Encoder interface {
	// Encode appends the payload for one frame (FrameSamples samples; see
	// NewEncoder for the other lengths each codec takes) to dst and returns it.
	Encode(dst []byte, pcm []int16) ([]byte, error)
}

// Decoder turns codec payloads back into 16 kHz PCM. Decoders keep state:
// use one per stream.
type Decoder interface {
	// Decode appends the 16 kHz samples carried by payload to dst.
	Decode(dst []int16, payload []byte) ([]int16, error)
}
