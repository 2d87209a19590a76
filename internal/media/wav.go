package media

import (
	"errors"
	"io"

	"github.com/parkpage/parkpage/internal/codec/wav"
)

// readWAVFile loads a hold-music WAV file (any format internal/codec/wav
// reads) as 16 kHz mono. A file cut short plays what it has, as a player
// would.
func readWAVFile(path string) ([]int16, error) {
	pcm, err := wav.LoadFile16kMono(path)
	if err != nil && !(errors.Is(err, io.ErrUnexpectedEOF) && len(pcm) > 0) {
		return nil, err
	}
	return pcm, nil
}
