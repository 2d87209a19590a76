package api

import (
	"net/http"
	"time"
)

// Drainer is implemented by a backend whose park can be drained before
// parkpage is stopped for good (POST and DELETE /api/v1/drain; the drain
// shows in GET /api/v1/status). It is a separate interface so backends
// without a park need not implement it.
type Drainer interface {
	// Drain refuses new parks and rings every parked call back.
	Drain() (DrainStatus, error)
	// CancelDrain takes parks again.
	CancelDrain() (DrainStatus, error)
	// Draining reports the drain and the calls left.
	Draining() (DrainStatus, error)
}

// DrainStatus is the answer to /api/v1/drain and the "drain" of
// GET /api/v1/status.
type DrainStatus struct {
	Draining bool       `json:"draining"`
	Since    *time.Time `json:"since,omitempty"`
	// ParkedAtStart is how many calls were parked when the drain began.
	ParkedAtStart int `json:"parked_at_start"`
	// Parked is how many calls are left in the lot (parked, ringing back
	// or being connected); Ringing of them are ringing now.
	Parked  int `json:"parked"`
	Ringing int `json:"ringing"`
	// Empty: draining and no call left; parkpage can be stopped.
	Empty bool `json:"empty"`
}

// errNoDrain answers when the backend has no park to drain.
const errNoDrain = "draining is not available"

func (s *Server) drainRoutes() {
	d, ok := s.backend.(Drainer)
	serve := func(code int, f func() (DrainStatus, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !ok {
				writeError(w, http.StatusNotImplemented, "", errNoDrain)
				return
			}
			st, err := f()
			if err != nil {
				writeError(w, http.StatusServiceUnavailable, "", err.Error())
				return
			}
			writeJSON(w, code, st)
		}
	}
	s.handle("POST /api/v1/drain", serve(http.StatusAccepted, func() (DrainStatus, error) { return d.Drain() }))
	s.handle("DELETE /api/v1/drain", serve(http.StatusOK, func() (DrainStatus, error) { return d.CancelDrain() }))
}
