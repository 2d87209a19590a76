package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/parkpage/parkpage/internal/codec"
)

// The built-in music takes a noticeable time to synthesise (about half a
// second of CPU on a PC, more on a Pi), which a restart would add to the
// silence parked callers hear. Config.MusicCache keeps it in the state
// directory, for the same executable only (its path, size and time name
// the cache), so an upgrade synthesises it afresh once.

const musicCacheMagic = "parkpage-music-1\n"

func musicCacheKey() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	st, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s %d %d\n", exe, st.Size(), st.ModTime().UnixNano())
}

// loadMusicCached is LoadMusic, with the built-in music read from (or
// written to) cache when path is empty and cache is set.
func loadMusicCached(path, cache string) (*Music, error) {
	key := musicCacheKey()
	if path != "" || cache == "" || key == "" {
		return LoadMusic(path)
	}
	if data, err := os.ReadFile(cache); err == nil {
		head := musicCacheMagic + key
		if bytes.HasPrefix(data, []byte(head)) && (len(data)-len(head))%2 == 0 && len(data)-len(head) >= 2*codec.FrameSamples {
			raw := data[len(head):]
			pcm := make([]int16, len(raw)/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
			}
			m := &Music{streams: map[codec.Name]*musicStream{}}
			m.tracks, m.source = [][]int16{pcm}, "built-in"
			return m, nil
		}
	}
	m, err := LoadMusic("")
	if err != nil {
		return nil, err
	}
	pcm := DefaultMusic()
	buf := make([]byte, 0, len(musicCacheMagic)+len(key)+2*len(pcm))
	buf = append(buf, musicCacheMagic...)
	buf = append(buf, key...)
	for _, s := range pcm {
		buf = binary.LittleEndian.AppendUint16(buf, uint16(s))
	}
	_ = os.MkdirAll(filepath.Dir(cache), 0o750)
	tmp := cache + ".tmp"
	if os.WriteFile(tmp, buf, 0o600) == nil {
		_ = os.Rename(tmp, cache)
	}
	return m, nil
}
