package audiotest

import (
	"math"
	"testing"
)

func TestPeakCorrelation(t *testing.T) {
	tone := make([]int16, 400)
	for i := range tone {
		tone[i] = int16(8000 * math.Sin(2*math.Pi*float64(i)/37))
	}
	shifted := append(make([]int16, 123), tone...)
	half := make([]int16, len(shifted))
	for i, v := range shifted {
		half[i] = v / 2
	}
	inverted := make([]int16, len(tone))
	for i, v := range tone {
		inverted[i] = -v
	}
	for _, tc := range []struct {
		name     string
		got      []int16
		min, max float64
	}{
		{"same", tone, 0.999, 1.001},
		{"delayed", shifted, 0.999, 1.001},
		{"quieter", half, 0.999, 1.001},
		{"inverted", inverted, 0, 0.1},
		{"silent", make([]int16, 1000), 0, 0},
		{"too short", tone[:100], 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c := PeakCorrelation(tc.got, tone); c < tc.min || c > tc.max {
				t.Errorf("PeakCorrelation = %.4f, want %.3f..%.3f", c, tc.min, tc.max)
			}
		})
	}
}
