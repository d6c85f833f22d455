package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// Re-driving failures: a dead-lettered task retried (one, or in bulk) once
// its system is fixed, or resolved by hand.

var resolveFields = map[string][]string{"": {"note"}}

// handleRetry opens a new round of attempts for a failed or dead-lettered
// task: POST /v1/requests/{id}/tasks/{system}/retry, no body (or {}).
func (a *API) handleRetry(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		var body struct{}
		if status, err := decodeJSON(w, r, &body, map[string][]string{"": {}}); err != nil {
			writeError(w, status, err.Error())
			return
		}
	}
	if _, _, ok := a.request(w, r); !ok {
		return
	}
	req, err := a.life.Retry(r.Context(), r.PathValue("id"), r.PathValue("system"), *actor(who(r)))
	a.redriven(w, req, err, "retry")
}

// handleResolve records a failure fixed by hand: POST
// /v1/requests/{id}/tasks/{system}/resolve {"note"}.
func (a *API) handleResolve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Note string `json:"note"`
	}
	if status, err := decodeJSON(w, r, &body, resolveFields); err != nil {
		writeError(w, status, err.Error())
		return
	}
	if _, _, ok := a.request(w, r); !ok {
		return
	}
	req, err := a.life.Resolve(r.Context(), r.PathValue("id"), r.PathValue("system"), *actor(who(r)), body.Note)
	a.redriven(w, req, err, "resolve")
}

func (a *API) redriven(w http.ResponseWriter, req *store.Request, err error, what string) {
	switch {
	case errors.Is(err, engine.ErrBadNote):
		writeError(w, http.StatusBadRequest, strings.TrimSuffix(err.Error(), ": "+engine.ErrBadNote.Error()))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such request, or no such system in it")
	case errors.Is(err, engine.ErrConflict):
		writeError(w, http.StatusConflict, strings.TrimSuffix(err.Error(), ": "+engine.ErrConflict.Error()))
	case err != nil:
		a.internal(w, err, "could not "+what+" the task", what+" failed")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"id": req.ID, "state": req.State})
	}
}

var replayFields = map[string][]string{"": {"system", "since"}}

// deadLetterQuery reads the system and since of a dead-letter listing or
// replay, and scopes it to the caller's tenant.
func deadLetterQuery(p auth.Principal, system, since string) (store.DeadLetterQuery, error) {
	q := store.DeadLetterQuery{System: system}
	if p.Role != auth.Admin && p.Tenant != auth.AnyTenant {
		q.Tenant = p.Tenant
	}
	if system != "" && !validSystem(system) {
		return q, errors.New("system must be letters, digits, '-' and '_'")
	}
	if since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return q, errors.New("since must be an RFC 3339 time, such as 2026-11-30T00:00:00Z")
		}
		q.Since = t
	}
	return q, nil
}

func validSystem(s string) bool {
	return len(s) <= 64 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

type deadLetterView struct {
	RequestID string    `json:"request_id"`
	Tenant    string    `json:"tenant"`
	System    string    `json:"system"`
	Attempts  int       `json:"attempts"`
	Detail    string    `json:"detail,omitempty"`
	DeadAt    time.Time `json:"dead_at"`
}

// handleDeadLetters lists the dead-lettered tasks the caller may see:
// GET /v1/deadletters?system=&since=.
func (a *API) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	q, err := deadLetterQuery(who(r), r.URL.Query().Get("system"), r.URL.Query().Get("since"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	dead, err := a.store.DeadLetters(r.Context(), q)
	if err != nil {
		a.internal(w, err, "could not list the dead letters", "list dead letters")
		return
	}
	out := make([]deadLetterView, 0, len(dead))
	for _, d := range dead {
		out = append(out, deadLetterView{RequestID: d.RequestID, Tenant: d.Tenant, System: d.System, Attempts: d.Attempts, Detail: d.Detail, DeadAt: d.DeadAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"deadletters": out})
}

// handleReplay re-drives the dead letters of a system, since a time:
// POST /v1/deadletters/replay {"system", "since"}.
func (a *API) handleReplay(w http.ResponseWriter, r *http.Request) {
	var body struct {
		System string `json:"system"`
		Since  string `json:"since"`
	}
	if status, err := decodeJSON(w, r, &body, replayFields); err != nil {
		writeError(w, status, err.Error())
		return
	}
	if body.System == "" {
		writeError(w, http.StatusBadRequest, "system is required: replay one system's dead letters once it is fixed")
		return
	}
	q, err := deadLetterQuery(who(r), body.System, body.Since)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	done, err := a.life.Replay(r.Context(), q, *actor(who(r)))
	if err != nil {
		a.internal(w, err, "the replay stopped on an error; what it retried stays retried", "replay dead letters", "retried", len(done.Retried))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"retried": len(done.Retried), "skipped": nonNil(done.Skipped)})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clip(s)
}
