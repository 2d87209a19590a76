package gateway

import (
	"slices"

	"github.com/parkpage/parkpage/gateway/output"
)

// pageOutputs returns the outputs of a zone a page plays on: those of the
// page's OutputTypes, or all of them.
func pageOutputs(types []string, outs []output.Output) []output.Output {
	if len(types) == 0 {
		return outs
	}
	var keep []output.Output
	for _, o := range outs {
		if slices.Contains(types, describe(o).Type) {
			keep = append(keep, o)
		}
	}
	return keep
}
