package accounts

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// maxBody bounds an admin request body.
const maxBody = 64 << 10

// AdminHandler is the system's admin API:
//
//	POST /v1/accounts/delete {"tenant":"demo","email":"..."}
//
// deletes the account as [System.DeleteAccount] does and answers 202
// {"user_id","event_id"}; 404 for an unknown account, 400 for a body that
// is not such JSON.
func (s *System) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/accounts/delete", s.handleDelete)
	return mux
}

func (s *System) handleDelete(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tenant string `json:"tenant"`
		Email  string `json:"email"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON {\"tenant\":...,\"email\":...}"})
		return
	}
	req.Tenant, req.Email = strings.TrimSpace(req.Tenant), strings.TrimSpace(req.Email)
	if req.Tenant == "" || req.Email == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "tenant and email are required"})
		return
	}
	if !strings.Contains(req.Email, "@") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "email is not an email address"})
		return
	}
	id, err := s.DeleteAccount(r.Context(), req.Tenant, req.Email)
	switch {
	case errors.Is(err, ErrNoAccount):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no account with this email in this tenant"})
	case err != nil:
		s.log.Error("admin: delete account failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the account could not be deleted"})
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"user_id": id, "event_id": s.eventID(req.Tenant, id)})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
