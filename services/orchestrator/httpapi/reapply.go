package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/engine"
)

var reapplyFields = map[string][]string{"": {"tenant", "system", "since"}}

// handleReapply starts a re-application of erasures in a system restored
// from a backup: everyone of the tenant erased since "since" (when the
// backup was taken) is erased there again, named by keyed hashes only.
// It is then a request of type reapply, followed like any other; more
// people than one task carries make several, parts of one
// re-application: "ids" lists them all, "id" is the first.
func (a *API) handleReapply(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tenant string `json:"tenant"`
		System string `json:"system"`
		Since  string `json:"since"`
	}
	if code, err := decodeJSON(w, r, &body, reapplyFields); err != nil {
		writeError(w, code, err.Error())
		return
	}
	p := who(r)
	since, err := time.Parse(time.RFC3339, body.Since)
	switch {
	case body.Tenant == "" || body.System == "":
		writeError(w, http.StatusBadRequest, "tenant and system are required")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "since must be an RFC 3339 time: when the restored backup was taken")
		return
	case !p.Sees(body.Tenant):
		writeError(w, http.StatusForbidden, "this token may not act for tenant "+body.Tenant)
		return
	}
	reqs, err := a.life.StartReapply(r.Context(), body.Tenant, body.System, since, actor(p))
	if errors.Is(err, engine.ErrBadReapply) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		// Parts already opened go on; the caller sees them in the list.
		a.internal(w, err, "could not start the re-application", "reapply")
		return
	}
	ids := make([]string, len(reqs))
	for i, req := range reqs {
		ids[i] = req.ID
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": ids[0], "ids": ids, "state": reqs[0].State})
}
