package httpapi

import (
	"errors"
	"net/http"
	"time"
	"unicode"

	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// tokenView is a token as the API shows it: never its secret, but once,
// when it is created.
type tokenView struct {
	ID         string     `json:"id"`
	Token      string     `json:"token,omitempty"`
	Name       string     `json:"name"`
	Tenant     string     `json:"tenant"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

func viewOfToken(k *store.Token) tokenView {
	return tokenView{ID: k.ID, Name: k.Name, Tenant: k.Tenant, Role: k.Role, CreatedAt: k.CreatedAt,
		LastUsedAt: timePtr(k.LastUsedAt), ExpiresAt: timePtr(k.ExpiresAt), RevokedAt: timePtr(k.RevokedAt)}
}

var tokenFields = map[string][]string{"": {"name", "tenant", "role", "expires_at"}}

// validName: a token's name says what uses it ("support-form"): 1-64
// printable characters.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// handleCreateToken issues a token: POST {"name", "tenant", "role",
// "expires_at"}. The answer holds the token, this once.
func (a *API) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name      string    `json:"name"`
		Tenant    string    `json:"tenant"`
		Role      auth.Role `json:"role"`
		ExpiresAt string    `json:"expires_at"`
	}
	if status, err := decodeJSON(w, r, &body, tokenFields); err != nil {
		writeError(w, status, err.Error())
		return
	}
	var expires time.Time
	switch {
	case !validName(body.Name):
		writeError(w, http.StatusBadRequest, "name must be 1-64 printable characters")
		return
	case !body.Role.Known():
		writeError(w, http.StatusBadRequest, "role must be admin, dpo, intake or auditor")
		return
	case body.Role != auth.Admin && !engine.ValidTenant(body.Tenant):
		writeError(w, http.StatusBadRequest, "tenant is required for this role: "+engine.ErrTenantFormat.Error())
		return
	case body.ExpiresAt != "":
		t, err := time.Parse(time.RFC3339, body.ExpiresAt)
		if err != nil || !t.After(a.life.Now()) {
			writeError(w, http.StatusBadRequest, "expires_at must be an RFC 3339 time in the future")
			return
		}
		expires = t.UTC().Truncate(time.Millisecond)
	}
	k, secret, err := a.opts.Tokens.Create(r.Context(), body.Name, body.Tenant, body.Role, expires)
	if err != nil {
		a.internal(w, err, "could not create the token", "create token")
		return
	}
	a.log.Info("token created", "token_id", k.ID, "role", k.Role, "tenant", k.Tenant, "by", who(r).ID)
	v := viewOfToken(k)
	v.Token = secret
	writeJSON(w, http.StatusCreated, v)
}

func (a *API) handleTokens(w http.ResponseWriter, r *http.Request) {
	all, err := a.opts.Tokens.Store.Tokens(r.Context())
	if err != nil {
		a.internal(w, err, "could not list the tokens", "list tokens")
		return
	}
	out := make([]tokenView, 0, len(all))
	for _, k := range all {
		out = append(out, viewOfToken(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// handleRevokeToken revokes a token at once: its next call is 401.
func (a *API) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := a.life.Now()
	err := a.opts.Tokens.Store.RevokeToken(r.Context(), id, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such token")
	case err != nil:
		a.internal(w, err, "could not revoke the token", "revoke token")
	default:
		a.log.Info("token revoked", "token_id", id, "by", who(r).ID)
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
	}
}
