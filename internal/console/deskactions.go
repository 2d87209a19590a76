package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/park"
)

// DeskKey is the Env key of the front desk's Desk.
const DeskKey = "park.Desk"

// Desk is what the front desk's actions need from the park server
// (park/sip.Server).
type Desk interface {
	HangupSlot(ctx context.Context, slot string) error
	MoveSlot(ctx context.Context, from, to string) error
	RingSlot(ctx context.Context, slot, target string) error
}

// deskRequest is the body of the slot actions: {"to": "705"} for move,
// {"to": "201"} for ring, {} for hangup.
type deskRequest struct {
	To string `json:"to,omitempty"`
}

func init() {
	for _, action := range []string{"hangup", "move", "ring"} {
		RegisterRoute("POST /api/v1/slots/{slot}/"+action, func(env *Env) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { env.slotAction(w, r, action) })
		})
	}
}

// slotAction serves POST /api/v1/slots/{slot}/hangup|move|ring.
func (env *Env) slotAction(w http.ResponseWriter, r *http.Request, action string) {
	desk, _ := env.Value(DeskKey).(Desk)
	if desk == nil {
		WriteError(w, http.StatusServiceUnavailable, "", "the park server is not running")
		return
	}
	var req deskRequest
	if err := DecodeJSON(w, r, &req); err != nil {
		var fe *api.FieldError
		if errors.As(err, &fe) {
			WriteError(w, http.StatusBadRequest, fe.Field, fe.Msg)
			return
		}
		WriteError(w, http.StatusBadRequest, "", err.Error())
		return
	}
	slot := r.PathValue("slot")
	req.To = strings.TrimSpace(req.To)
	var err error
	switch action {
	case "hangup":
		err = desk.HangupSlot(r.Context(), slot)
	case "move", "ring":
		if req.To == "" {
			WriteError(w, http.StatusBadRequest, "to", fmt.Sprintf("say which %s", map[string]string{"move": "slot to move the call to", "ring": "extension to ring"}[action]))
			return
		}
		if action == "move" {
			err = desk.MoveSlot(r.Context(), slot, req.To)
		} else {
			err = desk.RingSlot(r.Context(), slot, req.To)
		}
	}
	if err != nil {
		code, field := deskStatus(err)
		env.Log.Info("front desk action refused", "action", action, "slot", slot, "to", req.To, "err", err)
		WriteError(w, code, field, err.Error())
		return
	}
	env.Log.Info("front desk action", "action", action, "slot", slot, "to", req.To, "user", env.user(r))
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "action": action, "slot": slot, "to": req.To})
}

// deskStatus maps a park error to an HTTP status and the field at fault.
func deskStatus(err error) (int, string) {
	switch {
	case errors.Is(err, park.ErrBadTarget):
		return http.StatusBadRequest, "to"
	case errors.Is(err, park.ErrUnknownExt) && strings.HasPrefix(err.Error(), "slot "):
		return http.StatusBadRequest, "to" // the destination slot
	case errors.Is(err, park.ErrUnknownExt):
		return http.StatusNotFound, ""
	case errors.Is(err, park.ErrTaken):
		return http.StatusConflict, "to"
	case errors.Is(err, park.ErrEmpty), errors.Is(err, park.ErrBusy):
		return http.StatusConflict, ""
	}
	return http.StatusInternalServerError, ""
}

func (env *Env) user(r *http.Request) string {
	if env.Auth == nil {
		return ""
	}
	return env.Auth.User(r)
}
