package api

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"time"
)

// LabelRecording is a slot's label or announcement recorded from a phone
// or uploaded (internal/labels keeps them).
type LabelRecording struct {
	Slot     string    `json:"slot"`
	Kind     string    `json:"kind"` // label or announcement
	Seconds  float64   `json:"seconds"`
	Recorded time.Time `json:"recorded"`
	By       string    `json:"by,omitempty"`
	File     string    `json:"file"`
}

// LabelProblem is why an uploaded recording was refused: Code is silent,
// clipped, too_short or too_long.
type LabelProblem struct{ Code, Msg string }

func (p *LabelProblem) Error() string { return p.Msg }

// ErrNoLabel is returned for a slot and kind with no recording.
var ErrNoLabel = errors.New("no recording")

// LabelStore is the recorded labels as the API sees them (the wiring
// adapts internal/labels, which the API does not import: it would pull
// the codecs in).
type LabelStore interface {
	List() []LabelRecording
	// Open returns the recording as a WAV file; ErrNoLabel if none.
	Open(slot, kind string) (io.ReadCloser, error)
	// Upload checks, levels and keeps a WAV (any rate and channels);
	// *LabelProblem when the audio is refused, another error when it is
	// not a WAV parkpage reads (ErrNotWAV in the chain) or cannot be kept.
	Upload(slot, kind string, wav []byte) (LabelRecording, error)
	// Delete removes it; ErrNoLabel if none.
	Delete(slot, kind string) error
}

// ErrNotWAV is in the chain of an Upload error for a body that is not a
// WAV file.
var ErrNotWAV = errors.New("not a WAV file")

// LabelsBackend is a Backend with recorded labels (optional).
type LabelsBackend interface {
	Labels() LabelStore
}

// maxLabelUpload bounds an uploaded recording: 20 s of 48 kHz stereo
// 16-bit WAV, more than the longest announcement allowed.
const maxLabelUpload = 4 << 20

var labelSlotRe = regexp.MustCompile(`^[0-9]{1,8}$`)

func (s *Server) labelRoutes() {
	s.handle("GET /api/v1/labels", s.listLabels)
	s.handle("GET /api/v1/labels/{slot}/{kind}", s.getLabel)
	s.handle("PUT /api/v1/labels/{slot}/{kind}", s.putLabel)
	s.handle("DELETE /api/v1/labels/{slot}/{kind}", s.deleteLabel)
}

func (s *Server) labelStore(w http.ResponseWriter) LabelStore {
	if lb, ok := s.backend.(LabelsBackend); ok {
		if st := lb.Labels(); st != nil {
			return st
		}
	}
	writeError(w, http.StatusNotFound, "", "recorded labels are not available")
	return nil
}

func (s *Server) listLabels(w http.ResponseWriter, r *http.Request) {
	st := s.labelStore(w)
	if st == nil {
		return
	}
	list := st.List()
	if list == nil {
		list = []LabelRecording{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"recordings": list})
}

// labelRecording is the store and the {slot}/{kind} of a request, or
// false once it has answered 404/400 itself.
func (s *Server) labelRecording(w http.ResponseWriter, r *http.Request) (LabelStore, string, string, bool) {
	st := s.labelStore(w)
	if st == nil {
		return nil, "", "", false
	}
	slot, kind, ok := s.labelTarget(w, r)
	return st, slot, kind, ok
}

// labelTarget reads {slot}/{kind}, answering 400/404 itself.
func (s *Server) labelTarget(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	slot, kind := r.PathValue("slot"), r.PathValue("kind")
	if kind != "label" && kind != "announcement" {
		writeError(w, http.StatusBadRequest, "kind", kind+" is not label or announcement")
		return "", "", false
	}
	if !labelSlotRe.MatchString(slot) {
		writeError(w, http.StatusBadRequest, "slot", "not a slot number")
		return "", "", false
	}
	for _, sl := range s.backend.Slots() {
		if sl.Slot == slot {
			return slot, kind, true
		}
	}
	writeError(w, http.StatusNotFound, "slot", "slot "+slot+" is not a configured park slot")
	return "", "", false
}

func (s *Server) getLabel(w http.ResponseWriter, r *http.Request) {
	st, slot, kind, ok := s.labelRecording(w, r)
	if !ok {
		return
	}
	f, err := st.Open(slot, kind)
	if errors.Is(err, ErrNoLabel) {
		writeError(w, http.StatusNotFound, "", "slot "+slot+" has no recorded "+kind)
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Cache-Control", "no-store")
	io.Copy(w, f)
}

// putLabel takes a WAV recording and keeps it, checked and levelled as a
// phone recording is.
func (s *Server) putLabel(w http.ResponseWriter, r *http.Request) {
	st, slot, kind, ok := s.labelRecording(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLabelUpload))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, http.StatusRequestEntityTooLarge, "", "recording larger than 4 MiB")
			return
		}
		writeError(w, http.StatusBadRequest, "", err.Error())
		return
	}
	rec, err := st.Upload(slot, kind, body)
	var p *LabelProblem
	switch {
	case errors.As(err, &p):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"field": "audio", "error": p.Msg, "code": p.Code})
	case errors.Is(err, ErrNotWAV):
		writeError(w, http.StatusUnsupportedMediaType, "audio", err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, "", err.Error())
	default:
		writeJSON(w, http.StatusOK, rec)
	}
}

func (s *Server) deleteLabel(w http.ResponseWriter, r *http.Request) {
	st, slot, kind, ok := s.labelRecording(w, r)
	if !ok {
		return
	}
	if err := st.Delete(slot, kind); errors.Is(err, ErrNoLabel) {
		writeError(w, http.StatusNotFound, "", "slot "+slot+" has no recorded "+kind)
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
