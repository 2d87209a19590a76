package media

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/parkpage/parkpage/internal/codec"
)

// Music is looped hold music, encoded once per codec per 20 ms frame and
// shared by every leg playing it. It is produced on demand: the first leg
// that needs the pacer's frame n advances the music and encodes it in its
// codec; the other legs of that frame reuse the payload. Nobody
// listening costs nothing.
type Music struct {
	mu      sync.Mutex
	tracks  []track // 16 kHz mono, each at least one frame long
	track   int
	pos     int
	frame   [codec.FrameSamples]int16
	n       uint64 // pacer frame that frame holds (0: none yet)
	streams map[codec.Name]*musicStream
	source  string
}

// musicStream is the music in one codec.
type musicStream struct {
	m     *Music
	name  codec.Name
	users atomic.Int32
	// Guarded by m.mu (in practice used on the pacer thread only).
	enc     codec.Encoder
	payload []byte
	n       uint64 // frame the payload belongs to
}

// LoadMusic loads hold music from a WAV file or a directory of WAV files
// (played in name order, looped). An empty path gives the built-in music,
// which parkpage synthesises itself (no third-party recording, so no
// licence terms beyond parkpage's own).
func LoadMusic(path string) (*Music, error) {
	m := &Music{streams: map[codec.Name]*musicStream{}}
	if err := m.Load(path); err != nil {
		return nil, err
	}
	return m, nil
}

// Load replaces the tracks; legs playing the music carry on with the new
// tracks from their start.
func (m *Music) Load(path string) error {
	var tracks []track
	source := "built-in"
	if path == "" {
		tracks = []track{{le: defaultMusicPCM}}
	} else {
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("hold music: %w", err)
		}
		files := []string{path}
		if st.IsDir() {
			ents, err := os.ReadDir(path)
			if err != nil {
				return fmt.Errorf("hold music: %w", err)
			}
			files = files[:0]
			for _, e := range ents {
				if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".wav") {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
			sort.Strings(files)
			if len(files) == 0 {
				return fmt.Errorf("hold music: no .wav files in %s", path)
			}
		}
		for _, f := range files {
			pcm, err := readWAVFile(f)
			if err != nil {
				return fmt.Errorf("hold music: %w", err)
			}
			if len(pcm) < codec.FrameSamples {
				continue
			}
			tracks = append(tracks, track{pcm: pcm})
		}
		if len(tracks) == 0 {
			return fmt.Errorf("hold music: %s: no audio", path)
		}
		source = path
	}
	m.mu.Lock()
	m.tracks, m.track, m.pos, m.source = tracks, 0, 0, source
	m.mu.Unlock()
	return nil
}

// Source names what is playing ("built-in" or the configured path).
func (m *Music) Source() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.source
}

// stream returns the music in codec name, counting one more user.
func (m *Music) stream(name codec.Name) *musicStream {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.streams[name]
	if s == nil {
		s = &musicStream{m: m, name: name}
		m.streams[name] = s
	}
	s.users.Add(1)
	return s
}

func (s *musicStream) release() { s.users.Add(-1) }

// current returns the music's payload for pacer frame n in this codec,
// producing it if no leg has asked for frame n yet. A leg catching up on
// an older frame gets the newest one. It runs on the pacer thread, with
// m.mu held for one frame's encoding at most.
func (s *musicStream) current(n uint64) ([]byte, bool) {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if n > m.n {
		m.advanceLocked()
		m.n = n
	}
	if s.n == m.n && len(s.payload) > 0 {
		return s.payload, true
	}
	if s.n+1 != m.n {
		s.enc = nil // nobody listened for a while: a fresh encoder
	}
	if s.enc == nil {
		enc, err := codec.NewEncoder(s.name)
		if err != nil {
			return nil, false
		}
		s.enc = enc
	}
	p, err := s.enc.Encode(s.payload[:0], m.frame[:])
	if err != nil {
		return nil, false
	}
	s.payload, s.n = p, m.n
	return s.payload, len(s.payload) > 0
}

// NextFrame copies the next 20 ms of music into dst (for callers that mix
// or encode it themselves) and advances the loop.
func (m *Music) NextFrame(dst []int16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advanceLocked()
	copy(dst, m.frame[:])
}

// track is one piece of hold music: PCM loaded from a file, or the
// built-in music played from the binary's read-only data (16-bit
// little-endian), which costs no heap.
type track struct {
	pcm []int16
	le  string
}

func (t track) len() int {
	if t.le != "" {
		return len(t.le) / 2
	}
	return len(t.pcm)
}

// copyAt copies samples from pos on into dst and returns how many.
func (t track) copyAt(dst []int16, pos int) int {
	if t.le == "" {
		return copy(dst, t.pcm[pos:])
	}
	n := min(len(dst), len(t.le)/2-pos)
	for i := range n {
		j := 2 * (pos + i)
		dst[i] = int16(uint16(t.le[j]) | uint16(t.le[j+1])<<8)
	}
	return n
}

func (m *Music) advanceLocked() {
	filled := 0
	for filled < len(m.frame) {
		t := m.tracks[m.track]
		n := t.copyAt(m.frame[filled:], m.pos)
		filled += n
		m.pos += n
		if m.pos >= t.len() {
			m.pos = 0
			m.track = (m.track + 1) % len(m.tracks)
		}
	}
}
