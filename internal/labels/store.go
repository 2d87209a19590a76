// Package labels keeps the slot labels and announcements people record
// from a phone (gateway/labelrec) or upload through the API: checked,
// trimmed and levelled (Prepare), one WAV file per slot and kind under the
// state directory. Files are named by their content, so a new recording is
// a new path and render caches keyed on the path never serve the old one.
package labels

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkpage/parkpage/internal/codec"
	"github.com/parkpage/parkpage/internal/codec/wav"
)

// Recording is one stored recording.
type Recording struct {
	Slot     string    `json:"slot"`
	Kind     Kind      `json:"kind"`
	Seconds  float64   `json:"seconds"`
	Recorded time.Time `json:"recorded"`
	// By is who recorded it: a phone's user, or "api".
	By string `json:"by,omitempty"`
	// File is the WAV's name in the store's directory.
	File string `json:"file"`
}

// Store is the recordings of one appliance. It is safe for concurrent use.
type Store struct {
	dir string
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	recs map[key]Recording
}

type key struct {
	slot string
	kind Kind
}

const indexFile = "index.json"

var slotRe = regexp.MustCompile(`^[0-9]{1,8}$`)

// ErrNotFound is returned for a slot and kind with no recording.
var ErrNotFound = errors.New("no recording")

// CheckSlot refuses what is not a slot number (it becomes part of a path).
func CheckSlot(slot string) error {
	if !slotRe.MatchString(slot) {
		return fmt.Errorf("slot %q is not a slot number", slot)
	}
	return nil
}

// Open reads the store in dir (state_dir/labels); the directory is made
// by the first Save, so opening never fails on a fresh state dir. An index
// entry whose file is missing is dropped with a warning, and files no
// entry names are removed: a crash between writing a file and the index
// leaves at most one of them behind.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{dir: dir, log: log, now: time.Now, recs: map[key]Recording{}}
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if len(b) > 0 {
		var list []Recording
		if err := json.Unmarshal(b, &list); err != nil {
			log.Warn("recorded labels: the index is unreadable; starting without recordings", "file", filepath.Join(dir, indexFile), "err", err)
		}
		for _, r := range list {
			if CheckSlot(r.Slot) != nil || (r.Kind != KindLabel && r.Kind != KindAnnouncement) || r.File != filepath.Base(r.File) {
				log.Warn("recorded labels: bad index entry dropped", "slot", r.Slot, "kind", r.Kind, "file", r.File)
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, r.File)); err != nil {
				log.Warn("recorded labels: recording file missing; entry dropped", "slot", r.Slot, "kind", r.Kind, "err", err)
				continue
			}
			s.recs[key{r.Slot, r.Kind}] = r
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".tmp") || strings.HasSuffix(n, ".wav") && !s.named(n) {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return s, nil
}

func (s *Store) named(file string) bool {
	for _, r := range s.recs {
		if r.File == file {
			return true
		}
	}
	return false
}

// Dir is where the recordings are.
func (s *Store) Dir() string { return s.dir }

// List returns every recording, by slot then kind.
func (s *Store) List() []Recording {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Recording, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Recording) int {
		if c := strings.Compare(a.Slot, b.Slot); c != 0 {
			return c
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	return out
}

// Get returns a slot's recording of a kind.
func (s *Store) Get(slot string, k Kind) (Recording, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[key{slot, k}]
	return r, ok
}

// Path is the file of a recording.
func (s *Store) Path(r Recording) string { return filepath.Join(s.dir, r.File) }

// Save stores pcm (16 kHz mono, already through Prepare) as the slot's
// recording of kind k, replacing any before it.
func (s *Store) Save(slot string, k Kind, pcm []int16, by string) (Recording, error) {
	if err := CheckSlot(slot); err != nil {
		return Recording{}, err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return Recording{}, fmt.Errorf("labels: %w", err)
	}
	h := sha256.New()
	for _, v := range pcm {
		h.Write([]byte{byte(v), byte(v >> 8)})
	}
	r := Recording{
		Slot: slot, Kind: k, By: by, Recorded: s.now().UTC().Truncate(time.Second),
		Seconds: float64(len(pcm)) / codec.SampleRate,
		File:    fmt.Sprintf("%s-%s-%s.wav", slot, k, hex.EncodeToString(h.Sum(nil))[:12]),
	}
	tmp := filepath.Join(s.dir, r.File+".tmp")
	if err := wav.WriteFile(tmp, codec.SampleRate, 1, pcm); err != nil {
		return Recording{}, fmt.Errorf("labels: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return Recording{}, err
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, r.File)); err != nil {
		os.Remove(tmp)
		return Recording{}, fmt.Errorf("labels: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.recs[key{slot, k}]
	s.recs[key{slot, k}] = r
	if err := s.writeIndexLocked(); err != nil {
		if had {
			s.recs[key{slot, k}] = old
		} else {
			delete(s.recs, key{slot, k})
		}
		return Recording{}, err
	}
	if had && old.File != r.File {
		os.Remove(filepath.Join(s.dir, old.File))
	}
	return r, nil
}

// Delete removes a slot's recording of kind k.
func (s *Store) Delete(slot string, k Kind) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[key{slot, k}]
	if !ok {
		return ErrNotFound
	}
	delete(s.recs, key{slot, k})
	if err := s.writeIndexLocked(); err != nil {
		s.recs[key{slot, k}] = r
		return err
	}
	os.Remove(filepath.Join(s.dir, r.File))
	return nil
}

func (s *Store) writeIndexLocked() error {
	list := make([]Recording, 0, len(s.recs))
	for _, r := range s.recs {
		list = append(list, r)
	}
	slices.SortFunc(list, func(a, b Recording) int { return strings.Compare(a.File, b.File) })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, indexFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, indexFile)); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	return nil
}
