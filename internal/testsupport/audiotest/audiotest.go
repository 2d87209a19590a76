// Package audiotest measures audio a test heard against what was sent.
// Only tests import it.
package audiotest

import "math"

// PeakCorrelation is the peak normalised cross-correlation of want in got,
// over every lag at which want fits inside got: 1 when got holds want
// exactly (at any gain), 0 when got is shorter than want or silent.
func PeakCorrelation(got, want []int16) float64 {
	g := make([]float64, len(got))
	e := make([]float64, len(got)+1) // prefix sums of g², for each lag's energy
	for i, v := range got {
		g[i] = float64(v)
		e[i+1] = e[i] + g[i]*g[i]
	}
	w := make([]float64, len(want))
	var ew float64
	for i, v := range want {
		w[i] = float64(v)
		ew += w[i] * w[i]
	}
	best := 0.0
	for lag := 0; lag+len(w) <= len(g); lag++ {
		var dot float64
		for i, v := range w {
			dot += g[lag+i] * v
		}
		if eg := e[lag+len(w)] - e[lag]; eg > 0 {
			best = max(best, dot/math.Sqrt(eg*ew))
		}
	}
	return best
}
