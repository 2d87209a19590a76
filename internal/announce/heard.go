package announce

import (
	"fmt"
	"io"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/wav"
)

// Heard decodes the announcement's frames for codec c with a fresh decoder,
// giving the samples a phone on that codec plays, and their rate: 8000 for
// G.711 (the code words are 8 kHz samples, expanded without resampling),
// 16000 for G.722 and Opus.
func Heard(r *Rendered, c codec.Name) (pcm []int16, rate int, err error) {
	info, err := codec.Lookup(string(c))
	if err != nil {
		return nil, 0, err
	}
	frames, err := r.Frames(info.Name)
	if err != nil {
		return nil, 0, err
	}
	switch info.Name {
	case codec.PCMU, codec.PCMA:
		expand := codec.ULawToLinear
		if info.Name == codec.PCMA {
			expand = codec.ALawToLinear
		}
		pcm = make([]int16, 0, len(frames)*codec.FrameSamples/2)
		for _, f := range frames {
			for _, b := range f {
				pcm = append(pcm, expand(b))
			}
		}
		return pcm, 8000, nil
	}
	dec, err := codec.NewDecoder(info.Name)
	if err != nil {
		return nil, 0, err
	}
	pcm = make([]int16, 0, len(r.PCM))
	for i, f := range frames {
		if pcm, err = dec.Decode(pcm, f); err != nil {
			return nil, 0, fmt.Errorf("decode %s frame %d: %w", info.Name, i, err)
		}
	}
	return pcm, sampleRate, nil
}

// WriteHeard writes the announcement as a zone on codec c hears it
// (encoded, then decoded back) as a 16-bit mono WAV file: 8 kHz for G.711,
// 16 kHz otherwise. The CLI's "parkpage render" uses it.
func WriteHeard(w io.Writer, r *Rendered, c codec.Name) error {
	pcm, rate, err := Heard(r, c)
	if err != nil {
		return err
	}
	return wav.Write(w, rate, 1, pcm)
}
