package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/codec/wav"
	"github.com/parkpage/parkpage/internal/labels"
)

// labelsAPI adapts the recorded-label store to the API (which does not
// import it: the store's checks pull in the codecs).
type labelsAPI struct {
	s      *labels.Store
	target func() float64 // announce.loudness in force
}

func toAPI(r labels.Recording) api.LabelRecording {
	return api.LabelRecording{Slot: r.Slot, Kind: string(r.Kind), Seconds: r.Seconds, Recorded: r.Recorded, By: r.By, File: r.File}
}

func (l labelsAPI) List() []api.LabelRecording {
	var out []api.LabelRecording
	for _, r := range l.s.List() {
		out = append(out, toAPI(r))
	}
	return out
}

func (l labelsAPI) Open(slot, kind string) (io.ReadCloser, error) {
	r, ok := l.s.Get(slot, labels.Kind(kind))
	if !ok {
		return nil, api.ErrNoLabel
	}
	return os.Open(l.s.Path(r))
}

func (l labelsAPI) Upload(slot, kind string, data []byte) (api.LabelRecording, error) {
	k, err := labels.ParseKind(kind)
	if err != nil {
		return api.LabelRecording{}, err
	}
	pcm, err := wav.Load16kMono(bytes.NewReader(data))
	if err != nil {
		return api.LabelRecording{}, fmt.Errorf("%w parkpage reads: %v", api.ErrNotWAV, err)
	}
	if pcm, err = labels.Prepare(pcm, k, l.target()); err != nil {
		if p, ok := labels.AsProblem(err); ok {
			return api.LabelRecording{}, &api.LabelProblem{Code: p.Code, Msg: err.Error()}
		}
		return api.LabelRecording{}, err
	}
	r, err := l.s.Save(slot, k, pcm, "api")
	return toAPI(r), err
}

func (l labelsAPI) Delete(slot, kind string) error {
	err := l.s.Delete(slot, labels.Kind(kind))
	if errors.Is(err, labels.ErrNotFound) {
		return api.ErrNoLabel
	}
	return err
}
