// Package atomicfile writes a file so that a reader (or a power cut)
// sees either the old content or the new, never a part: a temporary file
// in the same directory, written, synced, given its mode, then renamed
// over the old one. It imports nothing of parkpage's.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write replaces path with data (mode perm), creating its directory.
func Write(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
