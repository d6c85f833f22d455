package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/httpapi"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

type deadRow struct {
	RequestID, Tenant, System, Detail, DeadAt, Age, Value string
	Attempts                                              int
}

type deadLettersPage struct {
	Systems  []option
	Since    string
	Rows     []deadRow
	BySystem []struct {
		System string
		Count  int
	}
	ShowTenant bool
	Error      string
}

// sinceOf reads a date (YYYY-MM-DD, UTC midnight) or an RFC 3339 time as
// the API's since.
func sinceOf(s string) string {
	if s == "" {
		return ""
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC().Format(time.RFC3339)
	}
	return s
}

func (c *Console) handleDeadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	c.deadLetters(w, r, s, http.StatusOK, "")
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	in := r.URL.Query()
	system, since := in.Get("system"), in.Get("since")
	q, err := httpapi.DeadLetterScope(s.p, system, sinceOf(since))
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, sentence(err.Error()))
		return
	}
	dead, err := c.cfg.Store.DeadLetters(r.Context(), q)
	if err != nil {
		c.internal(w, r, s, err, "list the dead letters")
		return
	}
	now := c.cfg.Life.Now()
	pg := deadLettersPage{Since: since, ShowTenant: s.p.Role == auth.Admin, Error: msg}
	pg.Systems = append(pg.Systems, option{"", "Every system", system == ""})
	for _, sys := range c.cfg.Systems {
		pg.Systems = append(pg.Systems, option{sys, sys, system == sys})
	}
	count := map[string]int{}
	for _, d := range dead {
		loc := c.zone(d.Tenant)
		pg.Rows = append(pg.Rows, deadRow{RequestID: d.RequestID, Tenant: d.Tenant, System: d.System, Detail: d.Detail, Attempts: d.Attempts,
			DeadAt: when(d.DeadAt, loc), Age: ago(now, d.DeadAt), Value: d.RequestID + "/" + d.System})
		count[d.System]++
	}
	for _, sys := range c.cfg.Systems {
		if count[sys] > 0 {
			pg.BySystem = append(pg.BySystem, struct {
				System string
				Count  int
			}{sys, count[sys]})
		}
	}
	c.render(w, r, status, "deadletters", s, "Dead letters", pg)
}

// handleRetrySelected retries the dead letters ticked on the list, each
// in its own transaction, as POST .../tasks/{system}/retry would.
func (c *Console) handleRetrySelected(w http.ResponseWriter, r *http.Request, s *session) {
	sel := r.PostForm["sel"]
	if len(sel) == 0 {
		c.deadLetters(w, r, s, http.StatusBadRequest, "Tick the dead letters to retry first.")
		return
	}
	retried, refused := 0, []string{}
	for _, v := range sel {
		id, system, ok := strings.Cut(v, "/")
		if !ok {
			continue
		}
		req, _, err := c.cfg.Store.Get(r.Context(), id)
		if err == nil && !httpapi.Visible(s.p, req) {
			err = store.ErrNotFound
		}
		if err == nil {
			_, err = c.cfg.Life.Retry(r.Context(), id, system, *httpapi.Actor(s.p))
		}
		if err != nil {
			if status, msg := words(err); status != 0 {
				refused = append(refused, id+" ("+system+"): "+msg)
				continue
			}
			c.internal(w, r, s, err, "retry")
			return
		}
		retried++
		c.log.Info("console: retry", "request_id", id, "system", system, "by", s.p.ID)
	}
	msg := plural(retried, "task") + " sent again."
	if len(refused) > 0 {
		msg += " Not retried: " + strings.Join(refused, " ")
	}
	s.setFlash(msg)
	http.Redirect(w, r, Prefix+"deadletters", http.StatusSeeOther)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// handleReplay re-drives every dead letter of a system since a time, as
// POST /v1/deadletters/replay.
func (c *Console) handleReplay(w http.ResponseWriter, r *http.Request, s *session) {
	system, since := r.PostFormValue("system"), r.PostFormValue("since")
	if system == "" {
		c.deadLetters(w, r, s, http.StatusBadRequest, "Choose a system: replay one system's dead letters once it is fixed.")
		return
	}
	q, err := httpapi.DeadLetterScope(s.p, system, sinceOf(since))
	if err != nil {
		c.deadLetters(w, r, s, http.StatusBadRequest, sentence(err.Error()))
		return
	}
	done, err := c.cfg.Life.Replay(r.Context(), q, *httpapi.Actor(s.p))
	if err != nil {
		c.log.Error("console: replay", "system", system, "retried", len(done.Retried), "err", err)
		c.deadLetters(w, r, s, http.StatusInternalServerError, "The replay stopped on an error; what it retried ("+plural(len(done.Retried), "task")+") stays retried.")
		return
	}
	c.log.Info("console: replay", "system", system, "retried", len(done.Retried), "by", s.p.ID)
	msg := plural(len(done.Retried), "task") + " of " + system + " sent again."
	if len(done.Skipped) > 0 {
		msg += " " + plural(len(done.Skipped), "request") + " could not be retried (identifiers dropped): resolve them by hand."
	}
	s.setFlash(msg)
	http.Redirect(w, r, Prefix+"deadletters?system="+url.QueryEscape(system), http.StatusSeeOther)
}

type newRequestPage struct {
	Type, Tenant, Email, UserID string
	Verified                    bool
	FixedTenant                 bool
	Error                       string
}

func (c *Console) handleNewForm(w http.ResponseWriter, r *http.Request, s *session) {
	pg := newRequestPage{Type: string(lifecycle.Erasure)}
	if s.p.Tenant != auth.AnyTenant {
		pg.Tenant, pg.FixedTenant = s.p.Tenant, true
	}
	c.render(w, r, http.StatusOK, "new", s, "New request", pg)
}

// handleNew files a request as POST /v1/requests does, with its checks
// and messages.
func (c *Console) handleNew(w http.ResponseWriter, r *http.Request, s *session) {
	p := s.p
	pg := newRequestPage{Type: r.PostFormValue("type"), Tenant: strings.TrimSpace(r.PostFormValue("tenant")), Email: strings.TrimSpace(r.PostFormValue("email")),
		UserID: strings.TrimSpace(r.PostFormValue("user_id")), Verified: r.PostFormValue("verified") != ""}
	if p.Tenant != auth.AnyTenant {
		pg.FixedTenant = true
		if pg.Tenant == "" {
			pg.Tenant = p.Tenant
		}
	}
	refuse := func(status int, msg string) {
		c.render(w, r, status, "new", s, "New request", func() newRequestPage { pg.Error = msg; return pg }())
	}
	nr := engine.NewRequest{Type: lifecycle.Type(pg.Type), Tenant: pg.Tenant, Email: pg.Email, UserID: pg.UserID, Verified: pg.Verified,
		Source: engine.SourceAPI, By: httpapi.Actor(p)}
	if err := engine.Validate(nr); err != nil {
		refuse(http.StatusBadRequest, sentence(strings.ReplaceAll(err.Error(), "subject.", "")))
		return
	}
	switch {
	case !p.Sees(nr.Tenant):
		refuse(http.StatusForbidden, "You act for another tenant.")
		return
	case nr.Verified && p.Role != auth.Admin && p.Role != auth.DPO:
		refuse(http.StatusForbidden, "Only a dpo or an admin may say the identity was checked (verified).")
		return
	}
	req, _, err := c.cfg.Life.Submit(r.Context(), nr)
	if err != nil {
		if status, msg := words(err); status != 0 {
			refuse(status, msg)
			return
		}
		c.internal(w, r, s, err, "store the request")
		return
	}
	c.log.Info("console: request filed", "request_id", req.ID, "tenant", req.Tenant, "by", p.ID)
	if req.State == lifecycle.Open {
		s.setFlash("Request filed and verified: the tasks are on their way to every system.")
	} else {
		s.setFlash("Request filed: it waits for the identity check.")
	}
	http.Redirect(w, r, Prefix+"requests/"+url.PathEscape(req.ID), http.StatusSeeOther)
}

type tokenRow struct {
	ID, Name, Tenant, Role, Created, LastUsed, Expires, Revoked string
	Live                                                        bool
}

type tokensPage struct {
	Rows                       []tokenRow
	Name, Tenant, Role, Expire string
	Created                    *tokenRow
	Secret                     string
	Error                      string
}

func (c *Console) handleTokens(w http.ResponseWriter, r *http.Request, s *session) {
	c.tokens(w, r, s, http.StatusOK, tokensPage{Role: string(auth.DPO)})
}

func (c *Console) tokens(w http.ResponseWriter, r *http.Request, s *session, status int, pg tokensPage) {
	all, err := c.cfg.Tokens.Store.Tokens(r.Context())
	if err != nil {
		c.internal(w, r, s, err, "list the tokens")
		return
	}
	now := c.cfg.Life.Now()
	for _, k := range slices.Backward(all) {
		pg.Rows = append(pg.Rows, rowOf(k, now))
	}
	c.render(w, r, status, "tokens", s, "Tokens", pg)
}

func rowOf(k *store.Token, now time.Time) tokenRow {
	row := tokenRow{ID: k.ID, Name: k.Name, Tenant: k.Tenant, Role: k.Role, Created: when(k.CreatedAt, time.UTC),
		LastUsed: ago(now, k.LastUsedAt), Expires: when(k.ExpiresAt, time.UTC), Revoked: when(k.RevokedAt, time.UTC)}
	row.Live = k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
	return row
}

// handleCreateToken issues a token, with the API's checks; its secret is
// shown on this answer only.
func (c *Console) handleCreateToken(w http.ResponseWriter, r *http.Request, s *session) {
	pg := tokensPage{Name: strings.TrimSpace(r.PostFormValue("name")), Tenant: strings.TrimSpace(r.PostFormValue("tenant")),
		Role: r.PostFormValue("role"), Expire: r.PostFormValue("expires")}
	role := auth.Role(pg.Role)
	var expires time.Time
	switch {
	case !httpapi.ValidTokenName(pg.Name):
		pg.Error = "The name must be 1-64 printable characters."
	case !role.Known():
		pg.Error = "The role must be admin, dpo, intake or auditor."
	case role != auth.Admin && !engine.ValidTenant(pg.Tenant):
		pg.Error = "A tenant is required for this role: " + engine.ErrTenantFormat.Error() + "."
	case pg.Expire != "":
		t, err := time.Parse("2006-01-02", pg.Expire)
		if err != nil || !t.After(c.cfg.Life.Now()) {
			pg.Error = "The expiry must be a date in the future."
		}
		expires = t.UTC()
	}
	if pg.Error != "" {
		c.tokens(w, r, s, http.StatusBadRequest, pg)
		return
	}
	k, secret, err := c.cfg.Tokens.Create(r.Context(), pg.Name, pg.Tenant, role, expires)
	if err != nil {
		c.internal(w, r, s, err, "create the token")
		return
	}
	c.log.Info("console: token created", "token_id", k.ID, "role", k.Role, "tenant", k.Tenant, "by", s.p.ID)
	row := rowOf(k, c.cfg.Life.Now())
	c.tokens(w, r, s, http.StatusCreated, tokensPage{Created: &row, Secret: secret, Role: string(auth.DPO)})
}

func (c *Console) handleRevokeToken(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	err := c.cfg.Tokens.Store.RevokeToken(r.Context(), id, c.cfg.Life.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.fail(w, r, s, http.StatusNotFound, "There is no such token.")
		return
	case err != nil:
		c.internal(w, r, s, err, "revoke the token")
		return
	}
	c.log.Info("console: token revoked", "token_id", id, "by", s.p.ID)
	s.setFlash("Token " + id + " revoked: its next call, and every session signed in with it, is refused.")
	http.Redirect(w, r, Prefix+"tokens", http.StatusSeeOther)
}
