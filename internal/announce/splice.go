package announce

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// LabelMark stands in Request.Text where a recorded label (LabelWAV) is
// spoken: "<mark> call on seven oh four".
const LabelMark = "\uFFFC"

// labelGap is the pause either side of a recorded label: a voice change
// mid-sentence needs a breath to be heard as one phrase.
const labelGap = 120 * time.Millisecond

// splice speaks req.Text with the recorded label in place of LabelMark.
// Each piece is levelled on its own before joining, so a quiet recording
// does not sit under the synthetic words around it.
func (r *Renderer) splice(ctx context.Context, req Request) ([]int16, error) {
	label, err := r.cfg.LoadWAV(req.LabelWAV)
	if err != nil {
		return nil, fmt.Errorf("recorded label: %w", err)
	}
	label = trimSilence(label)
	before, after, found := strings.Cut(req.Text, LabelMark)
	rate := req.Paging.Rate
	if req.Paging.Off {
		rate = 0
	}
	sp, err := r.speaker(req.Voice, rate)
	if err != nil {
		return nil, err
	}
	say := func(text string) ([]int16, error) {
		if req.Paging.active() {
			return speakPaging(ctx, sp, text, req.Paging)
		}
		return sp.Synthesize(ctx, text)
	}
	if !found {
		return say(req.Text)
	}
	gap := make([]int16, int(labelGap*sampleRate/time.Second))
	var out []int16
	add := func(pcm []int16) {
		if len(pcm) == 0 {
			return
		}
		if len(out) > 0 {
			out = append(out, gap...)
		}
		out = append(out, Level(pcm, r.cfg.TargetDBFS, r.cfg.CeilingDBFS)...)
	}
	for i, text := range []string{before, "", after} {
		if i == 1 {
			add(label)
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		pcm, err := say(strings.TrimSpace(text))
		if err != nil {
			return nil, err
		}
		add(trimSilence(pcm))
	}
	return out, nil
}
