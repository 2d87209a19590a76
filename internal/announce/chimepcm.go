package announce

import (
	"fmt"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
)

// ChimePCM renders a chime on its own, for audio that is not an
// announcement (a live page's chime, played while the talker waits): the
// built-in chime or WAV file named, normalised and limited like an
// announcement's chime, followed by cfg.ChimeGap of silence and padded to
// whole 20 ms frames. "none" gives nil; "" means cfg.Chime.
func ChimePCM(cfg Config, chime string) ([]int16, error) {
	cfg = cfg.withDefaults()
	if chime == "" {
		chime = cfg.Chime
	}
	var pcm []int16
	var err error
	if IsChimeFile(chime) {
		if pcm, err = cfg.LoadWAV(chime); err != nil {
			return nil, fmt.Errorf("chime: %w", err)
		}
		pcm = trimSilence(pcm)
	} else if pcm, err = builtinChime(chime); err != nil {
		return nil, err
	}
	if len(pcm) == 0 {
		return nil, nil
	}
	mix := normalize(pcm, cfg.TargetDBFS)
	mix = append(mix, make([]float64, int(cfg.ChimeGap*sampleRate/time.Second))...)
	if rem := len(mix) % codec.FrameSamples; rem != 0 {
		mix = append(mix, make([]float64, codec.FrameSamples-rem)...)
	}
	return limit(mix, cfg.CeilingDBFS), nil
}
