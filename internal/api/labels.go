package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"

	"github.com/parkpage/parkpage/internal/codec/wav"
	"github.com/parkpage/parkpage/internal/labels"
)

// LabelStore is the recorded labels and announcements; *labels.Store is
// one.
type LabelStore interface {
	List() []labels.Recording
	Get(slot string, k labels.Kind) (labels.Recording, bool)
	Path(r labels.Recording) string
	Save(slot string, k labels.Kind, pcm []int16, by string) (labels.Recording, error)
	Delete(slot string, k labels.Kind) error
}

// LabelsBackend is a Backend with recorded labels (optional).
type LabelsBackend interface {
	Labels() LabelStore
}

// maxLabelUpload bounds an uploaded recording: 20 s of 48 kHz stereo
// 16-bit WAV, more than the longest announcement allowed.
const maxLabelUpload = 4 << 20

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
	writeJSON(w, http.StatusOK, map[string]any{"recordings": st.List()})
}

// labelTarget reads {slot}/{kind}, answering 400/404 itself.
func (s *Server) labelTarget(w http.ResponseWriter, r *http.Request) (string, labels.Kind, bool) {
	slot := r.PathValue("slot")
	k, err := labels.ParseKind(r.PathValue("kind"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "kind", err.Error())
		return "", "", false
	}
	if err := labels.CheckSlot(slot); err != nil {
		writeError(w, http.StatusBadRequest, "slot", err.Error())
		return "", "", false
	}
	for _, sl := range s.backend.Slots() {
		if sl.Slot == slot {
			return slot, k, true
		}
	}
	writeError(w, http.StatusNotFound, "slot", "slot "+slot+" is not a configured park slot")
	return "", "", false
}

func (s *Server) getLabel(w http.ResponseWriter, r *http.Request) {
	st := s.labelStore(w)
	if st == nil {
		return
	}
	slot, k, ok := s.labelTarget(w, r)
	if !ok {
		return
	}
	rec, ok := st.Get(slot, k)
	if !ok {
		writeError(w, http.StatusNotFound, "", "slot "+slot+" has no recorded "+string(k))
		return
	}
	f, err := os.Open(st.Path(rec))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Cache-Control", "no-store")
	io.Copy(w, f)
}

// putLabel takes a WAV recording (any rate and channel count the wav
// package reads), checks and levels it as a phone recording is, and keeps
// it.
func (s *Server) putLabel(w http.ResponseWriter, r *http.Request) {
	st := s.labelStore(w)
	if st == nil {
		return
	}
	slot, k, ok := s.labelTarget(w, r)
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
	pcm, err := wav.Load16kMono(bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusUnsupportedMediaType, "audio", "not a WAV file parkpage reads: "+err.Error())
		return
	}
	pcm, err = labels.Prepare(pcm, k, 0)
	if err != nil {
		code := ""
		if p, ok := labels.AsProblem(err); ok {
			code = p.Code
		}
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"field": "audio", "error": err.Error(), "code": code})
		return
	}
	rec, err := st.Save(slot, k, pcm, "api")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) deleteLabel(w http.ResponseWriter, r *http.Request) {
	st := s.labelStore(w)
	if st == nil {
		return
	}
	slot, k, ok := s.labelTarget(w, r)
	if !ok {
		return
	}
	if err := st.Delete(slot, k); err != nil {
		if errors.Is(err, labels.ErrNotFound) {
			writeError(w, http.StatusNotFound, "", "slot "+slot+" has no recorded "+string(k))
			return
		}
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
