package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

var liftFields = map[string][]string{"": {"reason"}}

// handleLift lifts a restriction of processing (Art. 18): every system
// that restricted the person's data removes its marks. The lift is a
// request of its own (type lift, 202 with its id), followed like any
// other; its certificate is the evidence of the lift, and the
// restriction's certificate, issued again once it is done, names it.
func (a *API) handleLift(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if code, err := decodeJSON(w, r, &body, liftFields); err != nil {
		writeError(w, code, err.Error())
		return
	}
	if _, _, ok := a.request(w, r); !ok {
		return
	}
	req, err := a.life.Lift(r.Context(), r.PathValue("id"), body.Reason, actor(who(r)))
	switch {
	case errors.Is(err, engine.ErrBadLift):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such request")
	case errors.Is(err, engine.ErrConflict):
		writeError(w, http.StatusConflict, strings.TrimSuffix(err.Error(), ": "+engine.ErrConflict.Error()))
	case err != nil:
		a.internal(w, err, "could not lift the restriction", "lift")
	default:
		writeJSON(w, http.StatusAccepted, map[string]any{"id": req.ID, "state": req.State, "restriction": r.PathValue("id")})
	}
}
