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
	"golang.org/x/time/rate"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
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
	Verify(ctx context.Context, id string, d engine.Decision) (*store.Request, error)
	Deny(ctx context.Context, id string, d engine.Decision) (*store.Request, error)
	Extend(ctx context.Context, id, reason string, by *proof.Actor) (*store.Request, error)
	Preview(tenant string, received time.Time) (engine.Preview, error)
	TreeHead(ctx context.Context) (proof.TreeHead, error)
	// Checkpoint and LogTile serve the log in the tlog-tiles layout
	// (engine/tiles.go).
	PublicCheckpoint(ctx context.Context) ([]byte, error)
	LogTile(ctx context.Context, t tlog.Tile) ([]byte, error)
	Consistency(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)
	Keys() proof.KeySet
	Now() time.Time
	// Certificate returns an ended request's certificate, issuing first
	// one that waits to be (store.ErrNotFound: none yet).
	Certificate(ctx context.Context, requestID string) ([]byte, error)
	// ExportBlobs reads a task's export, decrypted; Collected destroys a
	// request's export once downloaded. ExportLink makes a single-use
	// download link, UseExportLink spends one (engine/export.go).
	ExportBlobs(k *store.Task) (blob.Store, error)
	Collected(ctx context.Context, requestID string) error
	ExportLink(ctx context.Context, requestID string) (secret string, expires time.Time, err error)
	UseExportLink(ctx context.Context, secret string) (requestID string, err error)
	// Retry, Resolve and Replay re-drive failed tasks (engine/replay.go).
	Retry(ctx context.Context, requestID, system string, by proof.Actor) (*store.Request, error)
	Resolve(ctx context.Context, requestID, system string, by proof.Actor, note string) (*store.Request, error)
	Replay(ctx context.Context, q store.DeadLetterQuery, by proof.Actor) (engine.Replayed, error)
	// StartSweep opens a retention run of a policy (engine/sweep.go).
	StartSweep(ctx context.Context, p *retention.Policy, dryRun bool, source string, by *proof.Actor) (*store.Request, error)
	// StartReapply re-applies erasures in a restored system (engine/reapply.go).
	StartReapply(ctx context.Context, tenant, system string, since time.Time, by *proof.Actor) ([]*store.Request, error)
	// Lift lifts a restriction of processing (engine/lift.go).
	Lift(ctx context.Context, id, reason string, by *proof.Actor) (*store.Request, error)
}

// Reader reads what the API shows; store.Store is one.
type Reader interface {
	Get(ctx context.Context, id string) (*store.Request, []*store.Task, error)
	List(ctx context.Context, q store.ListQuery) ([]*store.Request, string, error)
	DeadLetters(ctx context.Context, q store.DeadLetterQuery) ([]store.DeadLetter, error)
	Ping(ctx context.Context) error
}

// Options are the API's doors.
type Options struct {
	// Auth says who calls; Tokens issues and revokes tokens (admin).
	Auth   auth.Authenticator
	Tokens *auth.Tokens
	// AllowedOrigins are the browser origins whose calls are taken; a
	// call with any other Origin header is refused.
	AllowedOrigins []string
	// RateLimit is the calls per second a caller may make, with bursts of
	// twice that; 0: no limit.
	RateLimit float64
	// HandlerTimeout bounds a handler (DefaultHandlerTimeout).
	HandlerTimeout time.Duration
	// Metrics serves /metrics on the API; off when they have a listener
	// of their own.
	Metrics bool
	// Policies are the retention policies runs may be started of.
	Policies *retention.Policies
	// Console, if set, is served under /console/ (package console): it
	// authenticates with its own sessions, by the same rules.
	Console http.Handler
}

// API serves the HTTP API.
type API struct {
	life   Lifecycle
	store  Reader
	m      *metrics.Metrics
	log    *slog.Logger
	opts   Options
	limits *limiter
	// linkTries bounds the download links an address may try.
	linkTries *limiter
}

// New returns the API over the lifecycle and the store.
func New(life Lifecycle, st Reader, m *metrics.Metrics, log *slog.Logger, opts Options) *API {
	if opts.HandlerTimeout == 0 {
		opts.HandlerTimeout = DefaultHandlerTimeout
	}
	a := &API{life: life, store: st, m: m, log: log, opts: opts, linkTries: &limiter{rate: LinkTries, burst: 5}}
	if opts.RateLimit > 0 {
		a.limits = &limiter{rate: rate.Limit(opts.RateLimit), burst: max(1, int(2*opts.RateLimit))}
	}
	return a
}

// Handler routes the API's endpoints and /healthz (and /metrics unless
// they have a listener of their own).
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, rt route) {
		mux.Handle(pattern, a.m.Instrument(pattern, a.guard(rt)))
	}
	handle("POST /v1/requests", route{roles: submitters, h: a.handleSubmit})
	handle("GET /v1/requests", route{roles: anyRole, h: a.handleList})
	handle("GET /v1/requests/{id}", route{roles: anyRole, h: a.handleGet})
	handle("POST /v1/requests/{id}/verify", route{roles: deciders, h: a.handleVerify})
	handle("POST /v1/requests/{id}/deny", route{roles: deciders, h: a.handleDeny})
	handle("POST /v1/requests/{id}/extend", route{roles: deciders, h: a.handleExtend})
	handle("POST /v1/requests/{id}/lift", route{roles: deciders, h: a.handleLift})
	handle("POST /v1/requests/{id}/tasks/{system}/retry", route{roles: deciders, h: a.handleRetry})
	handle("POST /v1/requests/{id}/tasks/{system}/resolve", route{roles: deciders, h: a.handleResolve})
	handle("GET /v1/deadletters", route{roles: readers, h: a.handleDeadLetters})
	handle("POST /v1/deadletters/replay", route{roles: deciders, h: a.handleReplay})
	handle("GET /v1/requests/{id}/export", route{roles: deciders, timeout: ExportTimeout, byLink: true, h: a.handleExport})
	handle("POST /v1/requests/{id}/export/link", route{roles: deciders, h: a.handleExportLink})
	handle("GET /v1/requests/{id}/certificate", route{roles: readers, timeout: DownloadTimeout, h: a.handleCertificate})
	handle("GET /v1/requests/{id}/certificate.html", route{roles: readers, h: a.handleCertificateHTML})
	handle("GET /v1/deadline", route{roles: anyRole, h: a.handleDeadline})
	handle("GET /v1/keys", route{roles: readers, h: a.handleKeys})
	handle("GET /v1/log/tree-head", route{roles: readers, h: a.handleTreeHead})
	handle("GET /v1/log/consistency", route{roles: readers, h: a.handleConsistency})
	handle("POST /v1/tokens", route{roles: admins, h: a.handleCreateToken})
	handle("GET /v1/tokens", route{roles: admins, h: a.handleTokens})
	handle("DELETE /v1/tokens/{id}", route{roles: admins, h: a.handleRevokeToken})
	handle("GET /v1/policies", route{roles: readers, h: a.handlePolicies})
	handle("POST /v1/sweeps", route{roles: deciders, h: a.handleSweep})
	handle("POST /v1/reapply", route{roles: deciders, h: a.handleReapply})
	mux.Handle("GET /healthz", a.m.Instrument("GET /healthz", http.HandlerFunc(a.handleHealth)))
	mux.Handle("GET /log/checkpoint", a.m.Instrument("GET /log/checkpoint", a.public(a.handleCheckpoint)))
	mux.Handle("GET /log/tile/", a.m.Instrument("GET /log/tile/", a.public(a.handleTile)))
	mux.HandleFunc("OPTIONS /", a.handlePreflight)
	if a.opts.Console != nil {
		console := a.m.Instrument("/console/", a.opts.Console)
		mux.Handle("GET /console/", console)
		mux.Handle("POST /console/", console)
	}
	if a.opts.Metrics {
		mux.Handle("GET /metrics", MetricsHandler(a.m))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	return mux
}

// MetricsHandler serves the Prometheus metrics.
func MetricsHandler(m *metrics.Metrics) http.Handler {
	return promhttp.HandlerFor(m.Gatherer, promhttp.HandlerOpts{})
}

// request reads a request and its tasks for the caller: one of another
// tenant, or (for an intake token) one it did not submit, is "no such
// request", exactly as a missing one. It writes the error response itself.
func (a *API) request(w http.ResponseWriter, r *http.Request) (*store.Request, []*store.Task, bool) {
	req, tasks, err := a.store.Get(r.Context(), r.PathValue("id"))
	if err == nil && !visible(who(r), req) {
		err = store.ErrNotFound
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such request")
		return nil, nil, false
	case err != nil:
		a.internal(w, err, "could not read the request", "read request")
		return nil, nil, false
	}
	return req, tasks, true
}

// submitters may file requests.
var submitters = roles(auth.Admin, auth.DPO, auth.Intake)

// Roles are who may do what through the API's routes; the console
// enforces the same.
var Roles = struct {
	Any, Readers, Deciders, Admins, Submitters []auth.Role
}{anyRole, readers, deciders, admins, submitters}

// Visible reports whether p may see req, as every route judges it.
func Visible(p auth.Principal, req *store.Request) bool { return visible(p, req) }

// Actor is the principal as the log names it.
func Actor(p auth.Principal) *proof.Actor { return actor(p) }

// DeadLetterScope reads the system and since of a dead-letter listing or
// replay, scoped to p's tenant, with the API's error messages.
func DeadLetterScope(p auth.Principal, system, since string) (store.DeadLetterQuery, error) {
	return deadLetterQuery(p, system, since)
}

// ValidTokenName reports whether s may name a token.
func ValidTokenName(s string) bool { return validName(s) }

// visible reports whether p may see req.
func visible(p auth.Principal, req *store.Request) bool {
	if !p.Sees(req.Tenant) {
		return false
	}
	return p.Role != auth.Intake || (req.SubmittedBy != "" && req.SubmittedBy == p.ID)
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
	// Purposes: for a consent withdrawal or an objection, the purposes
	// (retention policies) it covers.
	Purposes []string `json:"purposes"`
}

func (a *API) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var body submitBody
	if status, err := decodeJSON(w, r, &body, requestFields); err != nil {
		writeError(w, status, err.Error())
		return
	}
	p := who(r)
	nr := engine.NewRequest{Type: body.Type, Tenant: body.Tenant, Email: body.Subject.Email, UserID: body.Subject.UserID, Verified: body.Verified,
		Source: engine.SourceAPI, By: actor(p), Purposes: body.Purposes}
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
	switch {
	case !p.Sees(nr.Tenant):
		writeError(w, http.StatusForbidden, "this token acts for another tenant")
		return
	case nr.Verified && p.Role != auth.Admin && p.Role != auth.DPO:
		writeError(w, http.StatusForbidden, "only a dpo or an admin may say the identity was checked (verified)")
		return
	}
	req, _, err := a.life.Submit(r.Context(), nr)
	if errors.Is(err, engine.ErrBadPurpose) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		a.internal(w, err, "could not store the request", "submit failed")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": req.ID, "state": req.State, "deadline": req.Deadline.Format(time.RFC3339)})
}

// requestFields are the fields a request body may have, spelled exactly:
// encoding/json would also take "EMAIL" for "email", and a body with both
// must not mean one thing to a reader and another to us.
var requestFields = map[string][]string{
	"":        {"type", "tenant", "subject", "received_at", "verified", "purposes"},
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
	if _, _, ok := a.request(w, r); !ok {
		return
	}
	req, err := a.life.Extend(r.Context(), r.PathValue("id"), reason, actor(who(r)))
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
		a.internal(w, err, "could not extend the request", "extend failed")
	default:
		writeJSON(w, http.StatusOK, viewOf(req, nil))
	}
}

var decisionFields = map[string][]string{"": {"method", "reason", "note"}}

// decision reads a verify or deny body: {"method" or "reason", "note"}.
func (a *API) decision(w http.ResponseWriter, r *http.Request) (engine.Decision, bool) {
	var body struct {
		Method string `json:"method"`
		Reason string `json:"reason"`
		Note   string `json:"note"`
	}
	if status, err := decodeJSON(w, r, &body, decisionFields); err != nil {
		writeError(w, status, err.Error())
		return engine.Decision{}, false
	}
	if _, _, ok := a.request(w, r); !ok {
		return engine.Decision{}, false
	}
	return engine.Decision{Actor: *actor(who(r)), Method: body.Method, Ground: body.Reason, Note: body.Note}, true
}

// handleVerify records the identity check: POST {"method", "note"}.
func (a *API) handleVerify(w http.ResponseWriter, r *http.Request) {
	d, ok := a.decision(w, r)
	if !ok {
		return
	}
	if d.Ground != "" {
		writeError(w, http.StatusBadRequest, "a verification has a method, not a reason")
		return
	}
	req, err := a.life.Verify(r.Context(), r.PathValue("id"), d)
	a.decided(w, req, err, "verify")
}

// handleDeny refuses a request: POST {"reason", "note"}.
func (a *API) handleDeny(w http.ResponseWriter, r *http.Request) {
	d, ok := a.decision(w, r)
	if !ok {
		return
	}
	if d.Method != "" {
		writeError(w, http.StatusBadRequest, "a refusal has a reason, not a method")
		return
	}
	req, err := a.life.Deny(r.Context(), r.PathValue("id"), d)
	a.decided(w, req, err, "deny")
}

func (a *API) decided(w http.ResponseWriter, req *store.Request, err error, what string) {
	switch {
	case errors.Is(err, engine.ErrBadDecision):
		writeError(w, http.StatusBadRequest, strings.TrimSuffix(err.Error(), ": "+engine.ErrBadDecision.Error()))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such request")
	case errors.Is(err, engine.ErrConflict):
		writeError(w, http.StatusConflict, strings.TrimSuffix(err.Error(), ": "+engine.ErrConflict.Error()))
	case err != nil:
		a.internal(w, err, "could not "+what+" the request", what+" failed")
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
	// Sweep is what a retention run (type sweep) sweeps.
	Sweep *proof.SweepRun `json:"sweep,omitempty"`
	// Purposes is what a consent withdrawal or an objection covers.
	Purposes *proof.PurposeScope `json:"purposes,omitempty"`
	// Reapply is what a re-application after a restore covers.
	Reapply *proof.ReapplyScope `json:"reapply,omitempty"`
	// Lift is, for a lift, the restriction it lifts and why; LiftedBy,
	// for a restriction, the lift opened for it.
	Lift     *proof.LiftScope `json:"lift,omitempty"`
	LiftedBy string           `json:"lifted_by,omitempty"`
	Tasks    []taskView       `json:"tasks,omitempty"`
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
	v.Sweep, _ = engine.SweepOf(r)
	v.Purposes, _ = engine.PurposesOf(r)
	v.Reapply, _ = engine.ReapplyOf(r)
	v.Lift, _ = engine.LiftOf(r)
	v.LiftedBy = engine.LiftedBy(r)
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
	req, tasks, ok := a.request(w, r)
	if !ok {
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
	p := who(r)
	switch {
	case q.Tenant != "" && !p.Sees(q.Tenant):
		writeError(w, http.StatusForbidden, "this token acts for another tenant")
		return
	case p.Tenant != auth.AnyTenant:
		q.Tenant = p.Tenant // a list never crosses tenants
	}
	if p.Role == auth.Intake {
		q.SubmittedBy = p.ID
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
		a.internal(w, err, "could not list requests", "list failed")
		return
	}
	out := make([]requestView, 0, len(reqs))
	for _, req := range reqs {
		out = append(out, viewOf(req, nil))
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out, "next_cursor": next})
}

func (a *API) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := a.store.Ping(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// internal answers a failure of the lifecycle or the store, logged as what
// (with attrs; never personal data): 503 with Retry-After when the store
// cannot take it for now (full, or unreachable), since nothing was changed
// and the same call succeeds later; 500 with msg otherwise.
func (a *API) internal(w http.ResponseWriter, err error, msg, what string, attrs ...any) {
	a.log.Error(what, append(attrs, "err", err)...)
	if store.IsUnavailable(err) {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterUnavailable))
		writeError(w, http.StatusServiceUnavailable, "the store cannot take this now (full or unreachable); nothing was changed: try again later")
		return
	}
	writeError(w, http.StatusInternalServerError, msg)
}

// RetryAfterUnavailable is the Retry-After, in seconds, of a 503 for a
// store that cannot take writes.
const RetryAfterUnavailable = 30

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
