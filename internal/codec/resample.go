package codec

import "github.com/parkpage/parkpage/internal/codec/resample"

// The sample-rate converters live in internal/codec/resample (pure Go, so
// text-to-speech can use them without linking libopus); these names keep
// them where the codecs' users look.

// Converter changes the sample rate of a mono stream by any ratio; see
// resample.Converter.
type Converter = resample.Converter

// Downsampler and Upsampler halve and double the rate between 16 and
// 8 kHz in a stream; see resample.Downsampler and resample.Upsampler.
type (
	Downsampler = resample.Downsampler
	Upsampler   = resample.Upsampler
)

// Rate limits of a Converter and the half-band filters' delays.
const (
	MinRate          = resample.MinRate
	MaxRate          = resample.MaxRate
	DownsamplerDelay = resample.DownsamplerDelay
	UpsamplerDelay   = resample.UpsamplerDelay
)

// NewConverter returns a Converter from inRate to outRate Hz.
func NewConverter(inRate, outRate int) (*Converter, error) {
	return resample.NewConverter(inRate, outRate)
}

// Resample converts a whole buffer from inRate to outRate Hz.
func Resample(src []int16, inRate, outRate int) ([]int16, error) {
	return resample.Resample(src, inRate, outRate)
}

// Downsample16to8 halves the rate of a whole 16 kHz buffer; see
// resample.Downsample16to8.
func Downsample16to8(dst, src []int16) []int16 { return resample.Downsample16to8(dst, src) }

// Upsample8to16 doubles the rate of a whole 8 kHz buffer; see
// resample.Upsample8to16.
func Upsample8to16(dst, src []int16) []int16 { return resample.Upsample8to16(dst, src) }
