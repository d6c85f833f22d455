package httpapi

import (
	"net/http"

	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
)

// handlePolicies lists the retention policies of the caller's tenants.
func (a *API) handlePolicies(w http.ResponseWriter, r *http.Request) {
	p := who(r)
	out := []*retention.Policy{}
	if a.opts.Policies != nil {
		for _, pol := range a.opts.Policies.List {
			if p.Sees(pol.Tenant) {
				out = append(out, pol)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"policies": out})
}

var sweepFields = map[string][]string{"": {"tenant", "policy", "all", "dry_run"}}

type sweepBody struct {
	Tenant string `json:"tenant"`
	// Policy names one policy; All asks for every policy of the tenant.
	Policy string `json:"policy"`
	All    bool   `json:"all"`
	DryRun bool   `json:"dry_run"`
}

type runView struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Policy string `json:"policy"`
	DryRun bool   `json:"dry_run"`
}

// handleSweep starts retention runs on demand: one policy, or all of a
// tenant's. Each is a request of type sweep, followed like any other
// (GET /v1/requests/{id}), with a certificate of its own.
func (a *API) handleSweep(w http.ResponseWriter, r *http.Request) {
	var body sweepBody
	if code, err := decodeJSON(w, r, &body, sweepFields); err != nil {
		writeError(w, code, err.Error())
		return
	}
	p := who(r)
	switch {
	case body.Tenant == "":
		writeError(w, http.StatusBadRequest, "tenant is required")
		return
	case !p.Sees(body.Tenant):
		writeError(w, http.StatusForbidden, "this token may not act for tenant "+body.Tenant)
		return
	case body.All == (body.Policy != ""):
		writeError(w, http.StatusBadRequest, `name one policy ("policy") or ask for all of them ("all": true)`)
		return
	}
	var chosen []*retention.Policy
	if a.opts.Policies != nil {
		for _, pol := range a.opts.Policies.List {
			if pol.Tenant == body.Tenant && (body.All || pol.Name == body.Policy) {
				chosen = append(chosen, pol)
			}
		}
	}
	if len(chosen) == 0 {
		writeError(w, http.StatusNotFound, "no such retention policy for tenant "+body.Tenant+" (GET /v1/policies lists them)")
		return
	}
	runs := []runView{}
	for _, pol := range chosen {
		run, err := a.life.StartSweep(r.Context(), pol, body.DryRun, engine.SourceOnDemand, actor(p))
		if err != nil {
			a.internal(w, err, "could not start the retention run", "sweep", "policy", pol.Name)
			return
		}
		runs = append(runs, runView{ID: run.ID, Tenant: run.Tenant, Policy: pol.Name, DryRun: body.DryRun})
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"runs": runs})
}
