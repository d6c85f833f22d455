package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/engine"
)

// parseReceivedAt reads a time of receipt as the API takes it.
func parseReceivedAt(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("received_at must be an RFC 3339 time, e.g. 2026-01-31T09:00:00Z")
	}
	if t.Before(earliestReceipt) {
		return time.Time{}, errors.New("received_at is before 1970")
	}
	return t, nil
}

// deadlineView answers "when would a request received then be due?" for a
// privacy team planning ahead (a request announced by post, a tenant's new
// policy) without filing a request: nothing is stored or logged.
type deadlineView struct {
	Tenant     string    `json:"tenant"`
	ReceivedAt time.Time `json:"received_at"`
	Deadline   time.Time `json:"deadline"`
	// ExtendedDeadline is the deadline an extension would give (Art. 12(3)).
	ExtendedDeadline time.Time `json:"extended_deadline"`
	TimeZone         string    `json:"time_zone"`
	RollToWorkingDay bool      `json:"roll_to_working_day"`
	// Holidays are the tenant's public holidays that could move this deadline.
	Holidays []string `json:"holidays,omitempty"`
}

// handleDeadline serves GET /v1/deadline?tenant=T&received_at=TIME: the
// deadline of a request of tenant T (the default policy when absent)
// received at TIME (now when absent), by the same arithmetic Submit uses.
func (a *API) handleDeadline(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "tenant" && k != "received_at" {
			writeError(w, http.StatusBadRequest, "unknown query parameter "+k+" (want tenant, received_at)")
			return
		}
	}
	tenant := q.Get("tenant")
	if tenant != "" && !engine.ValidTenant(tenant) {
		writeError(w, http.StatusBadRequest, engine.ErrTenantFormat.Error())
		return
	}
	if tenant != "" && !who(r).Sees(tenant) {
		writeError(w, http.StatusForbidden, "this token acts for another tenant")
		return
	}
	var given time.Time
	if s := q.Get("received_at"); s != "" {
		t, err := parseReceivedAt(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		given = t
	}
	p, err := a.life.Preview(tenant, given)
	if err != nil {
		a.internal(w, err, "the tenant's deadline policy cannot be read", "deadline policy")
		return
	}
	zone := p.Spec.TimeZone
	if zone == "" {
		zone = "UTC"
	}
	writeJSON(w, http.StatusOK, deadlineView{Tenant: tenant, ReceivedAt: p.ReceivedAt, Deadline: p.Deadline, ExtendedDeadline: p.Extended,
		TimeZone: zone, RollToWorkingDay: p.Spec.RollToWorkingDay, Holidays: p.Spec.Holidays})
}
