package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// SetupBackend is what the setup console's routes need (the config file,
// output tests, the "hear it" player). A Backend that does not implement
// it answers those routes with 501.
type SetupBackend interface {
	// ConfigDoc is the config file as the console edits it.
	ConfigDoc() (ConfigDoc, error)
	// SaveConfig validates a whole config file as check-config does and,
	// unless check, writes it (keeping the previous version) and reloads.
	// An invalid file is a *ConfigInvalidError; a stale base ErrConflict.
	SaveConfig(data []byte, base string, check bool) (SaveResult, error)
	// ApplyEdits applies edits to the file's YAML (keeping its comments)
	// and returns the new file; a bad edit is a *FieldError.
	ApplyEdits(data []byte, edits []ConfigEdit) ([]byte, error)
	// WriteBackup writes a zip of the config file and the SIP registrations.
	WriteBackup(w io.Writer) error
	// TestOutputs pages a short test to a zone, or one of its outputs,
	// and reports per output whether it went out.
	TestOutputs(ctx context.Context, req OutputTestRequest) (OutputTestResult, error)
	// Hear renders an announcement as a zone's codec delivers it and
	// returns it as a WAV file.
	Hear(ctx context.Context, req HearRequest) ([]byte, error)
}

// ConfigDoc is GET /api/v1/config.
type ConfigDoc struct {
	// Path is the config file a save writes; with Embedded the appliance
	// runs on the embedded default and the first save creates it.
	Path     string `json:"path"`
	Embedded bool   `json:"embedded"`
	// Version names the file's content; a save sends it back as base.
	Version string `json:"version"`
	// Config is the effective config (defaults filled in, secrets
	// masked), keyed as in the file.
	Config map[string]any `json:"config"`
	// Warnings are the running config's sanity warnings.
	Warnings []ConfigProblem `json:"warnings"`
	// YAML is the file itself (GET /api/v1/config/file serves it alone).
	YAML string `json:"-"`
}

// ConfigEdit is one change: set Value at Path (keys and list indexes),
// or Delete it.
type ConfigEdit struct {
	Path   []any `json:"path"`
	Value  any   `json:"value,omitempty"`
	Delete bool  `json:"delete,omitempty"`
}

// ConfigEditRequest is the body of POST /api/v1/config/edits.
type ConfigEditRequest struct {
	// Base is the Version the edits were made on; empty: no check.
	Base  string       `json:"base,omitempty"`
	Edits []ConfigEdit `json:"edits"`
	// Check validates only: nothing is written.
	Check bool `json:"check,omitempty"`
}

// ConfigProblem is one problem of a config, as check-config reports it.
type ConfigProblem struct {
	// Path is the key, e.g. "zones.front.outputs[0].port" ("" for the
	// whole file).
	Path    string `json:"path"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Warning bool   `json:"warning,omitempty"`
	// Text is the line check-config prints.
	Text string `json:"text"`
}

// ConfigInvalidError is a config that does not validate.
type ConfigInvalidError struct{ Problems []ConfigProblem }

func (e *ConfigInvalidError) Error() string {
	var lines []string
	for _, p := range e.Problems {
		lines = append(lines, p.Text)
	}
	return strings.Join(lines, "\n")
}

// ErrConflict is a save made on a version of the file that is no longer
// the one on disk.
var ErrConflict = errors.New("the config file changed since it was read: reload the page and make the change again")

// SaveResult is the answer of a save or check.
type SaveResult struct {
	Saved    bool            `json:"saved"`
	Checked  bool            `json:"checked,omitempty"`
	Path     string          `json:"path"`
	Previous string          `json:"previous,omitempty"`
	Version  string          `json:"version"`
	Warnings []ConfigProblem `json:"warnings"`
}

// OutputTestRequest is the body of POST /api/v1/zones/{zone}/test (the
// path names the zone).
type OutputTestRequest struct {
	Zone string `json:"-"`
	// Output is the output's index in the zone (0 is the first); absent
	// tests them all and the zone's relays.
	Output *int `json:"output,omitempty"`
	// Text is said after the chime; empty: "This is a test of zone NAME".
	Text string `json:"text,omitempty"`
	// Tone sends the chime alone, no speech.
	Tone bool `json:"tone,omitempty"`
}

// OutputTestResult is the answer of an output test, once the page ended.
type OutputTestResult struct {
	Page    string         `json:"page"`
	Zone    string         `json:"zone"`
	Text    string         `json:"text,omitempty"`
	Reason  string         `json:"reason"` // how the page ended: done, failed, preempted...
	Outputs []OutputResult `json:"outputs"`
}

// OutputResult says whether one output (or the zone's relays) went out.
type OutputResult struct {
	Output  string `json:"output"` // "front/outputs[0]", "front/relays"
	Index   int    `json:"index"`  // in the zone's outputs; -1 for relays
	Type    string `json:"type"`   // polycom, rtp, sip, lineout, relay
	Address string `json:"address,omitempty"`
	OK      bool   `json:"ok"`
	// Status is sent (multicast), answered, busy, no answer, rejected
	// (SIP), played (line out), pulsed (relays), failed or cut.
	Status string  `json:"status"`
	Detail string  `json:"detail,omitempty"`
	Took   float64 `json:"took_seconds"`
}

// HearRequest is GET /api/v1/hear?slot=701&zone=front or ?text=...: the
// announcement a slot (or a text) makes, as the zone's codec delivers it.
type HearRequest struct {
	Slot  string `json:"slot,omitempty"`
	Text  string `json:"text,omitempty"`
	Zone  string `json:"zone,omitempty"`
	Codec string `json:"codec,omitempty"` // override: pcmu, pcma, g722, opus
}

// maxConfigFile bounds an uploaded config file.
const maxConfigFile = 1 << 20

func (s *Server) setupBackend(w http.ResponseWriter) (SetupBackend, bool) {
	sb, ok := s.backend.(SetupBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "", "the setup console is not available")
	}
	return sb, ok
}

// setupRoutes adds the setup console's JSON routes.
func (s *Server) setupRoutes() {
	s.handle("GET /api/v1/config", s.getConfig)
	s.handle("GET /api/v1/config/file", s.downloadConfig)
	s.handle("POST /api/v1/config/upload", s.uploadConfig)
	s.handle("POST /api/v1/config/edits", s.editConfig)
	s.handle("GET /api/v1/config/backup", s.backup)
	s.handle("POST /api/v1/zones/{zone}/test", s.testOutputs)
	s.handle("GET /api/v1/hear", s.hear)
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.setupBackend(w)
	if !ok {
		return
	}
	doc, err := sb.ConfigDoc()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	if doc.Warnings == nil {
		doc.Warnings = []ConfigProblem{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) downloadConfig(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.setupBackend(w)
	if !ok {
		return
	}
	doc, err := sb.ConfigDoc()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="parkpage.yaml"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Config-Version", doc.Version)
	io.WriteString(w, doc.YAML)
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.setupBackend(w)
	if !ok {
		return
	}
	var buf bytes.Buffer
	if err := sb.WriteBackup(&buf); err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="parkpage-backup.zip"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// ConfigUpload is the body of POST /api/v1/config/upload: a whole config
// file. It is JSON (the file as a string), like every state-changing API
// request, so a cross-site form cannot send it.
type ConfigUpload struct {
	YAML string `json:"yaml"`
	// Base, when set, is the Version the upload replaces.
	Base string `json:"base,omitempty"`
	// Check validates only: nothing is written.
	Check bool `json:"check,omitempty"`
}

// uploadConfig is POST /api/v1/config/upload: a whole config file, validated
// before it replaces anything.
func (s *Server) uploadConfig(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.setupBackend(w)
	if !ok {
		return
	}
	if r.ContentLength > maxConfigFile {
		writeBodyError(w, &TooLargeError{Limit: maxConfigFile})
		return
	}
	var up ConfigUpload
	err := DecodeJSON(http.MaxBytesReader(w, r.Body, maxConfigFile), &up)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		err = &TooLargeError{Limit: mbe.Limit}
	}
	if err != nil {
		writeBodyError(w, err)
		return
	}
	if strings.TrimSpace(up.YAML) == "" {
		writeBodyError(w, &FieldError{"yaml", "empty: send the whole config file"})
		return
	}
	res, err := sb.SaveConfig([]byte(up.YAML), up.Base, up.Check)
	s.answerSave(w, res, err, up.Check)
}

// editConfig is POST /api/v1/config/edits: changes to the file's keys,
// applied to its YAML (comments kept), validated, written and reloaded.
func (s *Server) editConfig(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.setupBackend(w)
	if !ok {
		return
	}
	var req ConfigEditRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	if len(req.Edits) == 0 {
		writeBodyError(w, &FieldError{"edits", "no edits"})
		return
	}
	if len(req.Edits) > 500 {
		writeBodyError(w, &FieldError{"edits", "more than 500 edits"})
		return
	}
	doc, err := sb.ConfigDoc()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	if req.Base != "" && req.Base != doc.Version {
		writeError(w, http.StatusConflict, "base", ErrConflict.Error())
		return
	}
	data, err := sb.ApplyEdits([]byte(doc.YAML), req.Edits)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	res, err := sb.SaveConfig(data, doc.Version, req.Check)
	s.answerSave(w, res, err, req.Check)
}

func (s *Server) answerSave(w http.ResponseWriter, res SaveResult, err error, check bool) {
	if res.Warnings == nil {
		res.Warnings = []ConfigProblem{}
	}
	var inv *ConfigInvalidError
	switch {
	case errors.As(err, &inv):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error":    problemCount(countErrors(inv.Problems)) + "; nothing was saved",
			"problems": inv.Problems,
		})
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, "base", err.Error())
	case err != nil:
		writeError(w, http.StatusConflict, "", err.Error())
	default:
		res.Checked = check
		writeJSON(w, http.StatusOK, res)
	}
}

func problemCount(n int) string {
	if n == 1 {
		return "the config has 1 problem"
	}
	return fmt.Sprintf("the config has %d problems", n)
}

func countErrors(ps []ConfigProblem) int {
	n := 0
	for _, p := range ps {
		if !p.Warning {
			n++
		}
	}
	return n
}

func (s *Server) testOutputs(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.setupBackend(w)
	if !ok {
		return
	}
	var req OutputTestRequest
	if r.ContentLength != 0 {
		if err := decodeBody(w, r, &req); err != nil {
			writeBodyError(w, err)
			return
		}
	}
	req.Zone = r.PathValue("zone")
	if req.Output != nil && *req.Output < 0 {
		writeBodyError(w, &FieldError{"output", fmt.Sprintf("%d is not an output index", *req.Output)})
		return
	}
	if len(req.Text) > 200 {
		writeBodyError(w, &FieldError{"text", "longer than 200 characters"})
		return
	}
	res, err := sb.TestOutputs(r.Context(), req)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) hear(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.setupBackend(w)
	if !ok {
		return
	}
	q := r.URL.Query()
	req := HearRequest{Slot: q.Get("slot"), Text: q.Get("text"), Zone: q.Get("zone"), Codec: q.Get("codec")}
	if (req.Slot == "") == (req.Text == "") {
		writeError(w, http.StatusBadRequest, "text", "give text or slot")
		return
	}
	if len(req.Text) > 500 {
		writeError(w, http.StatusBadRequest, "text", "longer than 500 characters")
		return
	}
	wav, err := sb.Hear(r.Context(), req)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(wav)))
	w.Write(wav)
}

// DecodeEdits decodes the body of POST /api/v1/config/edits strictly.
func DecodeEdits(r io.Reader) (ConfigEditRequest, error) {
	var req ConfigEditRequest
	err := DecodeJSON(r, &req)
	return req, err
}
