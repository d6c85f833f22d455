// Package httpapi is the orchestrator's HTTP API: routes, request decoding,
// JSON views, the certificate page. It reads requests from the store and
// changes them only through the lifecycle, which it sees through
// [Lifecycle].
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// maxBody bounds a request body: a data-subject request is a few hundred bytes.
const maxBody = 64 << 10

// earliestReceipt is the earliest received_at taken; an older one is a
// mistake (a zero time, say), not a request.
var earliestReceipt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// Lifecycle is what the API asks of the request lifecycle (engine.Engine).
type Lifecycle interface {
	Submit(ctx context.Context, nr engine.NewRequest) (*store.Request, bool, error)
	Verify(ctx context.Context, id string) (*store.Request, error)
	Extend(ctx context.Context, id, reason string) (*store.Request, error)
	Preview(tenant string, received time.Time) (engine.Preview, error)
	TreeHead(ctx context.Context) (proof.TreeHead, error)
	Consistency(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)
	Keys() proof.KeySet
	Now() time.Time
}

// Reader reads what the API shows; store.Store is one.
type Reader interface {
	Get(ctx context.Context, id string) (*store.Request, []*store.Task, error)
	List(ctx context.Context, q store.ListQuery) ([]*store.Request, string, error)
	Certificate(ctx context.Context, requestID string) ([]byte, error)
	Ping(ctx context.Context) error
}

// API serves the HTTP API.
type API struct {
	life  Lifecycle
	store Reader
	m     *metrics.Metrics
	log   *slog.Logger
}

// New returns the API over the lifecycle and the store.
func New(life Lifecycle, st Reader, m *metrics.Metrics, log *slog.Logger) *API {
	return &API{life: life, store: st, m: m, log: log}
}

// Handler routes the API's endpoints, /healthz and /metrics.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, a.m.Instrument(pattern, h))
	}
	handle("POST /v1/requests", a.handleSubmit)
	handle("GET /v1/requests", a.handleList)
	handle("GET /v1/requests/{id}", a.handleGet)
	handle("POST /v1/requests/{id}/verify", a.handleVerify)
	handle("POST /v1/requests/{id}/extend", a.handleExtend)
	handle("GET /v1/requests/{id}/export", a.handleExport)
	handle("GET /v1/requests/{id}/certificate", a.handleCertificate)
	handle("GET /v1/requests/{id}/certificate.html", a.handleCertificateHTML)
	handle("GET /v1/deadline", a.handleDeadline)
	handle("GET /v1/keys", a.handleKeys)
	handle("GET /v1/log/tree-head", a.handleTreeHead)
	handle("GET /v1/log/consistency", a.handleConsistency)
	handle("GET /healthz", a.handleHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.m.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	return mux
}

type submitBody struct {
	Type    lifecycle.Type `json:"type"`
	Tenant  string         `json:"tenant"`
	Subject struct {
		Email  string `json:"email"`
		UserID string `json:"user_id"`
	} `json:"subject"`
	ReceivedAt string `json:"received_at"`
	Verified   bool   `json:"verified"`
}

func (a *API) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var body submitBody
	if status, err := decodeJSON(w, r, &body, requestFields); err != nil {
		writeError(w, status, err.Error())
		return
	}
	nr := engine.NewRequest{Type: body.Type, Tenant: body.Tenant, Email: body.Subject.Email, UserID: body.Subject.UserID, Verified: body.Verified, Source: engine.SourceAPI}
	if body.ReceivedAt != "" {
		t, err := parseReceivedAt(body.ReceivedAt)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if t.After(a.life.Now().Add(5 * time.Minute)) {
			writeError(w, http.StatusBadRequest, "received_at is in the future: a request is received before it is filed "+
				"(GET /v1/deadline?received_at=... shows the deadline of any date without filing a request)")
			return
		}
		nr.ReceivedAt = t
	}
	if err := engine.Validate(nr); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req, _, err := a.life.Submit(r.Context(), nr)
	if err != nil {
		a.log.Error("submit failed", "err", err)
		writeError(w, http.StatusInternalServerError, "could not store the request")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": req.ID, "state": req.State, "deadline": req.Deadline.Format(time.RFC3339)})
}

// requestFields are the fields a request body may have, spelled exactly:
// encoding/json would also take "EMAIL" for "email", and a body with both
// must not mean one thing to a reader and another to us.
var requestFields = map[string][]string{
	"":        {"type", "tenant", "subject", "received_at", "verified"},
	"subject": {"email", "user_id"},
}

// decodeJSON reads exactly one JSON object of at most maxBody bytes whose
// fields are all in fields.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, fields map[string][]string) (int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body is larger than %d bytes", maxBody)
	case err != nil:
		return http.StatusBadRequest, errors.New("body could not be read")
	case len(bytes.TrimSpace(body)) == 0:
		return http.StatusBadRequest, errors.New("body is empty: a JSON object is expected")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
			return http.StatusBadRequest, errors.New("body is not valid JSON")
		case errors.As(err, &typ):
			return http.StatusBadRequest, fmt.Errorf("field %q has the wrong type", typ.Field)
		}
		return http.StatusBadRequest, unknownField(fields)
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("body holds more than one JSON value")
	}
	if !exactFields(body, "", fields) {
		return http.StatusBadRequest, unknownField(fields)
	}
	return 0, nil
}

// exactFields reports whether every key of the object at path (and of the
// objects below it that fields names) is spelled as fields lists it.
func exactFields(data []byte, path string, fields map[string][]string) bool {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return true // not an object: the typed decoding has judged it
	}
	for k, raw := range obj {
		if !slices.Contains(fields[path], k) {
			return false
		}
		if _, nested := fields[k]; nested && !exactFields(raw, k, fields) {
			return false
		}
	}
	return true
}

// unknownField names what is allowed rather than repeating what was sent,
// which may be personal data.
func unknownField(fields map[string][]string) error {
	allowed := strings.Join(fields[""], ", ")
	for _, k := range fields[""] {
		if sub, ok := fields[k]; ok {
			allowed += "; " + k + ": " + strings.Join(sub, ", ")
		}
	}
	return fmt.Errorf("body has a field that is not allowed here (allowed: %s)", allowed)
}

var extendFields = map[string][]string{"": {"reason"}}

// handleExtend extends a request's deadline: POST {"reason": "..."}.
// Refusals are 4xx that change nothing: 400 for a missing reason, 404 for
// an unknown request, 409 (with a code) for one extended already, ended,
// or past its original deadline.
func (a *API) handleExtend(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason *string `json:"reason"`
	}
	if status, err := decodeJSON(w, r, &body, extendFields); err != nil {
		writeError(w, status, err.Error())
		return
	}
	reason := ""
	if body.Reason != nil {
		reason = *body.Reason
	}
	req, err := a.life.Extend(r.Context(), r.PathValue("id"), reason)
	switch {
	case errors.Is(err, engine.ErrBadReason):
		writeError(w, http.StatusBadRequest, strings.TrimSuffix(err.Error(), ": "+engine.ErrBadReason.Error()))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such request")
	case errors.Is(err, engine.ErrConflict):
		code := map[error]string{engine.ErrAlreadyExtended: "already_extended", engine.ErrTooLate: "too_late", engine.ErrEnded: "ended"}
		for e, c := range code {
			if errors.Is(err, e) {
				writeJSON(w, http.StatusConflict, map[string]string{"error": strings.TrimSuffix(err.Error(), ": "+engine.ErrConflict.Error()), "code": c})
				return
			}
		}
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		a.log.Error("extend failed", "err", err)
		writeError(w, http.StatusInternalServerError, "could not extend the request")
	default:
		writeJSON(w, http.StatusOK, viewOf(req, nil))
	}
}

func (a *API) handleVerify(w http.ResponseWriter, r *http.Request) {
	req, err := a.life.Verify(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such request")
	case errors.Is(err, engine.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		a.log.Error("verify failed", "err", err)
		writeError(w, http.StatusInternalServerError, "could not verify the request")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"id": req.ID, "state": req.State})
	}
}

type taskView struct {
	System      string              `json:"system"`
	State       lifecycle.TaskState `json:"state"`
	Outcome     lifecycle.Outcome   `json:"outcome"`
	Attempts    int                 `json:"attempts"`
	AnsweredAt  *time.Time          `json:"answered_at,omitempty"`
	NextAttempt *time.Time          `json:"next_attempt_at,omitempty"`
	LegalBasis  string              `json:"legal_basis,omitempty"`
	RetainUntil *time.Time          `json:"retain_until,omitempty"`
	Counts      map[string]int64    `json:"counts"`
	Remaining   int64               `json:"remaining"`
	ExportSHA   string              `json:"export_sha256,omitempty"`
	Detail      string              `json:"detail,omitempty"`
}

type requestView struct {
	ID         string          `json:"id"`
	Tenant     string          `json:"tenant"`
	Type       lifecycle.Type  `json:"type"`
	State      lifecycle.State `json:"state"`
	Source     string          `json:"source"`
	EventID    string          `json:"event_id,omitempty"` // of the account deletion that opened it
	ReceivedAt time.Time       `json:"received_at"`
	Deadline   time.Time       `json:"deadline"`
	CreatedAt  time.Time       `json:"created_at"`
	// Set when the deadline was extended (Art. 12(3)).
	OriginalDeadline *time.Time `json:"original_deadline,omitempty"`
	ExtendedAt       *time.Time `json:"extended_at,omitempty"`
	ExtensionReason  string     `json:"extension_reason,omitempty"`
	// TimeZone and RollToWorkingDay: the tenant's deadline policy, when not
	// the default (UTC, no roll).
	TimeZone         string `json:"time_zone,omitempty"`
	RollToWorkingDay bool   `json:"roll_to_working_day,omitempty"`
	// AnsweredAt is when every system had answered; for a partially
	// retained request, before its deferred erasures end it.
	AnsweredAt  *time.Time `json:"answered_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Tasks       []taskView `json:"tasks,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewOf(r *store.Request, tasks []*store.Task) requestView {
	v := requestView{ID: r.ID, Tenant: r.Tenant, Type: r.Type, State: r.State, Source: r.Source,
		ReceivedAt: r.ReceivedAt, Deadline: r.Deadline, CreatedAt: r.CreatedAt, CompletedAt: timePtr(r.CompletedAt),
		OriginalDeadline: timePtr(r.OriginalDeadline), ExtendedAt: timePtr(r.ExtendedAt), ExtensionReason: r.ExtensionReason,
		AnsweredAt: timePtr(r.AnsweredAt)}
	if spec, _, err := engine.RequestPolicy(r); err == nil && spec != nil {
		v.TimeZone, v.RollToWorkingDay = spec.TimeZone, spec.RollToWorkingDay
	}
	if r.Source == engine.SourceAccountDeleted {
		v.EventID = strings.TrimPrefix(r.SourceRef, engine.AccountDeletedRef(""))
	}
	for _, k := range tasks {
		tv := taskView{System: k.System, State: k.State, Outcome: k.Outcome, Attempts: k.Attempts, AnsweredAt: timePtr(k.AnsweredAt),
			LegalBasis: k.LegalBasis, RetainUntil: timePtr(k.RetainUntil), Counts: k.Counts, Remaining: k.Remaining, Detail: k.Detail}
		if k.State.Waiting() {
			tv.NextAttempt = timePtr(k.NextAttemptAt)
		}
		if len(k.ExportSHA256) > 0 {
			tv.ExportSHA = fmt.Sprintf("%x", k.ExportSHA256)
		}
		if tv.Counts == nil {
			tv.Counts = map[string]int64{}
		}
		v.Tasks = append(v.Tasks, tv)
	}
	return v
}

func (a *API) handleGet(w http.ResponseWriter, r *http.Request) {
	req, tasks, err := a.store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such request")
		return
	}
	if err != nil {
		a.log.Error("get request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the request")
		return
	}
	writeJSON(w, http.StatusOK, viewOf(req, tasks))
}

func (a *API) handleList(w http.ResponseWriter, r *http.Request) {
	q := store.ListQuery{State: lifecycle.State(r.URL.Query().Get("state")), Tenant: r.URL.Query().Get("tenant"), After: r.URL.Query().Get("cursor"), Limit: 50}
	if q.State != "" && !q.State.Known() {
		writeError(w, http.StatusBadRequest, "unknown state")
		return
	}
	if q.Tenant != "" && !engine.ValidTenant(q.Tenant) {
		writeError(w, http.StatusBadRequest, engine.ErrTenantFormat.Error())
		return
	}
	if ev := r.URL.Query().Get("event_id"); ev != "" {
		q.SourceRef = engine.AccountDeletedRef(ev)
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "limit must be between 1 and 500")
			return
		}
		q.Limit = n
	}
	reqs, next, err := a.store.List(r.Context(), q)
	if errors.Is(err, store.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "bad cursor")
		return
	}
	if err != nil {
		a.log.Error("list failed", "err", err)
		writeError(w, http.StatusInternalServerError, "could not list requests")
		return
	}
	out := make([]requestView, 0, len(reqs))
	for _, req := range reqs {
		out = append(out, viewOf(req, nil))
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out, "next_cursor": next})
}

// handleExport assembles the answers of an export request into one bundle:
// the structured, machine-readable copy Art. 15 and 20 ask for.
func (a *API) handleExport(w http.ResponseWriter, r *http.Request) {
	req, tasks, err := a.store.Get(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such request")
		return
	case err != nil:
		a.log.Error("export failed", "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the request")
		return
	case req.Type != lifecycle.Export:
		writeError(w, http.StatusConflict, "not an export request")
		return
	case req.CompletedAt.IsZero():
		writeError(w, http.StatusConflict, "the export is not complete yet")
		return
	}
	systems := map[string]any{}
	for _, k := range tasks {
		entry := map[string]any{"outcome": k.Outcome, "counts": k.Counts}
		if len(k.ExportData) > 0 {
			entry["data"] = json.RawMessage(k.ExportData)
			entry["sha256"] = fmt.Sprintf("%x", k.ExportSHA256)
		}
		systems[k.System] = entry
	}
	w.Header().Set("Content-Disposition", `attachment; filename="`+req.ID+`.json"`)
	writeJSON(w, http.StatusOK, map[string]any{"request": viewOf(req, nil), "systems": systems})
}

func (a *API) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := a.store.Ping(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
