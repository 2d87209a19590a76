package console

import (
	"net/http"

	"github.com/parkpage/parkpage/internal/api"
)

// The recorded labels page: each slot's label and announcement as people
// recorded them from a phone (*7 / *8 + slot) or uploaded, to play,
// replace and delete. It reads and writes through /api/v1/labels.
func init() {
	RegisterPage(Page{Path: "/setup/labels", Nav: NavSetup, Title: "Recorded labels", Template: "labels.html",
		Scripts: []string{"labels.js"}, Data: labelsData})
}

// LabelRow is one slot on the recorded labels page.
type LabelRow struct {
	Slot, Lot, Label string
	Recorded         map[string]api.LabelRecording // by kind
}

type labelsView struct {
	Available bool
	Rows      []LabelRow
	Kinds     []string
}

func labelsData(r *http.Request, env *Env) (any, error) {
	v := labelsView{Kinds: []string{"label", "announcement"}}
	var store api.LabelStore
	if lb, ok := env.Backend.(api.LabelsBackend); ok {
		store = lb.Labels()
	}
	v.Available = store != nil
	recs := map[[2]string]api.LabelRecording{}
	if store != nil {
		for _, r := range store.List() {
			recs[[2]string{r.Slot, r.Kind}] = r
		}
	}
	for _, s := range env.Backend.Slots() {
		row := LabelRow{Slot: s.Slot, Lot: s.Lot, Label: s.Label, Recorded: map[string]api.LabelRecording{}}
		for _, k := range v.Kinds {
			if rec, ok := recs[[2]string{s.Slot, k}]; ok {
				row.Recorded[k] = rec
			}
		}
		v.Rows = append(v.Rows, row)
	}
	return v, nil
}
