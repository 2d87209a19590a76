package app

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/config"
)

// SavedConfigName is the file the setup console creates in the state
// directory when the appliance runs on the embedded default config. It is
// the file the appliance image already prefers at boot (the last good
// site config, internal/appliance.PermConfig), and `parkpage run` without
// -config loads it when it exists, so what was saved survives a restart.
const SavedConfigName = "parkpage.yaml"

// PrevSuffix names the previous version of the config file, kept by every
// save next to the file (parkpage.yaml.prev).
const PrevSuffix = ".prev"

// SetupHooks connect the setup console's output tests and "hear it"
// player to the parts that answer them; cmd's wiring sets them.
type SetupHooks struct {
	TestOutputs func(ctx context.Context, req api.OutputTestRequest) (api.OutputTestResult, error)
	Hear        func(ctx context.Context, req api.HearRequest) (wav []byte, err error)
}

// SetSetupHooks installs the setup hooks; call before Run.
func (a *App) SetSetupHooks(h SetupHooks) { a.setup = h }

// savedConfigPath is where a console save of the embedded default goes.
func savedConfigPath(stateDir string) string { return filepath.Join(stateDir, SavedConfigName) }

// ConfigFile returns the config file the console edits: its path (where a
// save writes), its bytes, and whether the running config is the embedded
// default (no file yet; the first save creates path).
func (a *App) ConfigFile() (path string, data []byte, embedded bool, err error) {
	a.mu.RLock()
	path = a.opts.ConfigPath
	stateDir := a.cfg.StateDir
	a.mu.RUnlock()
	if path == "" {
		return savedConfigPath(stateDir), config.Default, true, nil
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return path, nil, false, fmt.Errorf("read config: %w", err)
	}
	return path, data, false, nil
}

// Version is the hash a save names as its base, so two people editing at
// once do not overwrite each other unknowingly.
func Version(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:8])
}

// ErrConflict is a save whose base is not the file on disk any more.
var ErrConflict = api.ErrConflict

// SaveConfig validates data as check-config does, writes it to the config
// file (keeping the previous version as FILE.prev), and reloads. An
// invalid config is a *config.Error and nothing is written; a reload the
// running parts refuse puts the previous file back. base, when not empty,
// must be the Version of the file the edit started from. check only
// validates. It returns the warnings of the new config.
func (a *App) SaveConfig(data []byte, base string, check bool) (SaveResult, error) {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	path, old, embedded, err := a.ConfigFile()
	if err != nil {
		return SaveResult{}, err
	}
	res := SaveResult{Path: path}
	if base != "" && base != Version(old) {
		return res, ErrConflict
	}
	_, warns, err := config.Parse(filepath.Base(path), data)
	if err != nil {
		return res, err
	}
	res.Warnings = warns
	res.Version = Version(data)
	if check {
		return res, nil
	}
	a.mu.RLock()
	saveTo := a.opts.SaveConfigTo
	a.mu.RUnlock()
	if saveTo != "" && !embedded && saveTo != path {
		return a.saveElsewhere(res, path, saveTo, old, data)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return res, fmt.Errorf("save config: %w", err)
	}
	mode := os.FileMode(0o600)
	if !embedded {
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
		if err := config.WriteFile(path+PrevSuffix, old, mode); err != nil {
			return res, fmt.Errorf("keep the previous config: %w", err)
		}
		res.Previous = path + PrevSuffix
	}
	if err := config.WriteFile(path, data, mode); err != nil {
		return res, fmt.Errorf("save config: %w", err)
	}
	if embedded {
		a.mu.Lock()
		a.opts.ConfigPath = path
		a.mu.Unlock()
	}
	if err := a.Reload(); err != nil {
		// Put back what ran, so the file and the running config agree.
		if embedded {
			os.Remove(path)
			a.mu.Lock()
			a.opts.ConfigPath = ""
			a.mu.Unlock()
		} else if werr := config.WriteFile(path, old, mode); werr != nil {
			err = errors.Join(err, fmt.Errorf("restore the previous config: %w", werr))
		}
		return res, &ReloadError{Err: err}
	}
	res.Saved = true
	a.log.Info("config saved from the console", "path", path, "previous", res.Previous)
	return res, nil
}

// SaveResult is what a save did.
type SaveResult struct {
	Path     string           // the config file
	Previous string           // where the previous version was kept ("" on the first save)
	Version  string           // the new file's version
	Saved    bool             // written and reloaded
	Warnings []config.Problem // of the new config
}

// ReloadError is a valid config the running appliance refused (e.g. one
// that moves the admin API); the previous file was put back.
type ReloadError struct{ Err error }

func (e *ReloadError) Error() string { return e.Err.Error() }
func (e *ReloadError) Unwrap() error { return e.Err }

// registrationsFile is the SIP registrar's persisted bindings in the
// state directory (internal/sipstack).
const registrationsFile = "sip-registrations.json"

// WriteBackup writes a zip of everything needed to rebuild the box: the
// config file (parkpage.yaml) and the SIP registrations
// (sip-registrations.json, when any were saved).
func (a *App) WriteBackup(w io.Writer) error {
	_, data, _, err := a.ConfigFile()
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	add := func(name string, b []byte) error {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now()})
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		return err
	}
	if err := add("parkpage.yaml", data); err != nil {
		return err
	}
	if regs, err := os.ReadFile(a.StatePath(registrationsFile)); err == nil {
		if err := add(registrationsFile, regs); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("registrations: %w", err)
	}
	return zw.Close()
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// The setup console's API (api.SetupBackend) on the app.

func (b backend) ConfigDoc() (api.ConfigDoc, error) {
	path, data, embedded, err := b.a.ConfigFile()
	if err != nil {
		return api.ConfigDoc{}, err
	}
	b.a.mu.RLock()
	cfg, warns := b.a.cfg, b.a.warnings
	b.a.mu.RUnlock()
	view, err := cfg.View()
	if err != nil {
		return api.ConfigDoc{}, err
	}
	return api.ConfigDoc{Path: path, Embedded: embedded, Version: Version(data), Config: view,
		Warnings: apiProblems(warns), YAML: string(data)}, nil
}

func (b backend) SaveConfig(data []byte, base string, check bool) (api.SaveResult, error) {
	res, err := b.a.SaveConfig(data, base, check)
	out := api.SaveResult{Saved: res.Saved, Path: res.Path, Previous: res.Previous, Version: res.Version, Warnings: apiProblems(res.Warnings)}
	var ce *config.Error
	switch {
	case errors.As(err, &ce):
		return out, &api.ConfigInvalidError{Problems: apiProblems(ce.Problems)}
	case errors.Is(err, ErrConflict):
		return out, api.ErrConflict
	}
	return out, err
}

func (b backend) ApplyEdits(data []byte, edits []api.ConfigEdit) ([]byte, error) {
	es := make([]config.Edit, 0, len(edits))
	for _, e := range edits {
		es = append(es, config.Edit{Path: e.Path, Value: e.Value, Delete: e.Delete})
	}
	out, err := config.ApplyEdits(data, config.DropMasked(es))
	var ee *config.EditError
	if errors.As(err, &ee) {
		return nil, &api.FieldError{Field: ee.Path, Msg: ee.Msg}
	}
	return out, err
}

func (b backend) WriteBackup(w io.Writer) error { return b.a.WriteBackup(w) }

func (b backend) TestOutputs(ctx context.Context, req api.OutputTestRequest) (api.OutputTestResult, error) {
	if b.a.setup.TestOutputs == nil {
		return api.OutputTestResult{}, fmt.Errorf("output tests are not available")
	}
	return b.a.setup.TestOutputs(ctx, req)
}

func (b backend) Hear(ctx context.Context, req api.HearRequest) ([]byte, error) {
	if b.a.setup.Hear == nil {
		return nil, fmt.Errorf("the announcement player is not available")
	}
	return b.a.setup.Hear(ctx, req)
}

func apiProblems(ps []config.Problem) []api.ConfigProblem {
	out := make([]api.ConfigProblem, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.ConfigProblem{Path: p.Path, Message: p.Message, Line: p.Pos.Line, Column: p.Pos.Column, Warning: p.Warning, Text: p.String()})
	}
	return out
}

// saveElsewhere saves a config edited from the generated file at from to
// the persistent file to (Options.SaveConfigTo), keeping what was there as
// to.prev (or, the first time, the running config), and runs from it.
func (a *App) saveElsewhere(res SaveResult, from, to string, old, data []byte) (SaveResult, error) {
	res.Path = to
	if err := os.MkdirAll(filepath.Dir(to), 0o750); err != nil {
		return res, fmt.Errorf("save config: %w", err)
	}
	prev, err := os.ReadFile(to)
	if err != nil {
		prev = old
	}
	if err := config.WriteFile(to+PrevSuffix, prev, 0o600); err != nil {
		return res, fmt.Errorf("keep the previous config: %w", err)
	}
	res.Previous = to + PrevSuffix
	if err := config.WriteFile(to, data, 0o600); err != nil {
		return res, fmt.Errorf("save config: %w", err)
	}
	a.mu.Lock()
	a.opts.ConfigPath = to
	a.mu.Unlock()
	if err := a.Reload(); err != nil {
		a.mu.Lock()
		a.opts.ConfigPath = from
		a.mu.Unlock()
		if werr := config.WriteFile(to, prev, 0o600); werr != nil {
			err = errors.Join(err, fmt.Errorf("restore the previous config: %w", werr))
		}
		return res, &ReloadError{Err: err}
	}
	res.Saved = true
	a.log.Info("config saved from the console", "path", to, "previous", res.Previous, "was_running_from", from)
	return res, nil
}
