package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
)

// testToken is the bearer token the fake orchestrator and the proof server
// take (an admin's), and the one runCLI passes with --token.
const testToken = "lethe_test-admin-0123456789abcdefghijklmnopqrstuvwxyz"

// fakeOrchestrator is an HTTP server that follows the orchestrator API
// contract closely enough for the CLI: authentication by bearer token with
// roles, JSON for every state-changing call, intake, verification and
// refusal, listing with cursors, exports, tokens, and scripted request
// snapshots for status and wait. Replies are written from plain maps and
// JSON strings, not from the CLI's own types, so a wrong field name in the
// client shows up as a failure.
type fakeOrchestrator struct {
	*httptest.Server

	mu        sync.Mutex
	requests  []map[string]any    // in creation order
	submitted []map[string]any    // bodies of POST /v1/requests
	snapshots map[string][]string // GET /v1/requests/{id}: next JSON each poll, last repeats
	failures  map[string][]int    // GET /v1/requests/{id}: statuses to fail with first
	gets      map[string]int      // polls per id
	bundles   map[string][]byte   // export bundles of finished exports
	manifests map[string]string   // the manifest digest each one's certificate quotes
	cursors   []string            // cursors seen by GET /v1/requests
	queries   []map[string]string // filters seen by GET /v1/requests
	auth      []string            // Authorization headers seen
	bodies    []string            // "METHOD path body" of every POST and DELETE that passed the guard
	// bearers are the tokens it takes, with their roles; tokens are the
	// tokens as GET /v1/tokens shows them, and secrets their secrets by id.
	bearers map[string]string
	tokens  []map[string]any
	secrets map[string]string
	// retryAfter, when set, answers every authenticated call 429 with
	// this Retry-After ("-": without one).
	retryAfter string
}

// fakeRoles are the roles each route allows, as the orchestrator's.
var fakeRoles = map[string][]string{
	"POST /v1/requests":             {"admin", "dpo", "intake"},
	"GET /v1/requests":              {"admin", "dpo", "intake", "auditor"},
	"GET /v1/requests/{id}":         {"admin", "dpo", "intake", "auditor"},
	"POST /v1/requests/{id}/verify": {"admin", "dpo"},
	"POST /v1/requests/{id}/deny":   {"admin", "dpo"},
	"POST /v1/requests/{id}/extend": {"admin", "dpo"},
	"GET /v1/requests/{id}/export":  {"admin", "dpo"},
	"GET /v1/deadline":              {"admin", "dpo", "intake", "auditor"},
	"POST /v1/tokens":               {"admin"},
	"GET /v1/tokens":                {"admin"},
	"DELETE /v1/tokens/{id}":        {"admin"},
}

func newFakeOrchestrator(t *testing.T) *fakeOrchestrator {
	t.Helper()
	created := "2026-01-05T08:00:00Z"
	f := &fakeOrchestrator{
		snapshots: map[string][]string{},
		failures:  map[string][]int{},
		gets:      map[string]int{},
		bundles:   map[string][]byte{},
		manifests: map[string]string{},
		bearers:   map[string]string{testToken: "admin"},
		secrets:   map[string]string{"tok_bootstrap0000": testToken},
		tokens: []map[string]any{{"id": "tok_bootstrap0000", "name": "bootstrap", "tenant": "*", "role": "admin",
			"created_at": created, "last_used_at": "2026-01-06T09:30:00Z"}},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/requests", f.create)
	mux.HandleFunc("POST /v1/requests/{id}/verify", f.verify)
	mux.HandleFunc("POST /v1/requests/{id}/deny", f.deny)
	mux.HandleFunc("POST /v1/requests/{id}/extend", f.extend)
	mux.HandleFunc("GET /v1/requests/{id}", f.get)
	mux.HandleFunc("GET /v1/requests", f.list)
	mux.HandleFunc("GET /v1/requests/{id}/export", f.export)
	mux.HandleFunc("GET /v1/requests/{id}/certificate", f.certificate)
	mux.HandleFunc("GET /v1/policies", func(w http.ResponseWriter, r *http.Request) {
		writeJSONReply(w, http.StatusOK, `{"policies":[{"name":"site_cookies","tenant":"demo","purpose":"Website analytics","legal_basis":"Consent",`+
			`"consent":true,"period":"6m","clock":"record","systems":{"emailanalytics":["cookies"]}}]}`)
	})
	mux.HandleFunc("POST /v1/sweeps", f.sweep)
	mux.HandleFunc("POST /v1/reapply", func(w http.ResponseWriter, r *http.Request) {
		writeJSONReply(w, http.StatusAccepted, `{"id":"req_reapply","ids":["req_reapply","req_reapply2"],"state":"open"}`)
	})
	mux.HandleFunc("POST /v1/requests/{id}/lift", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "req_lifted" {
			writeJSONReply(w, http.StatusConflict, `{"error":"conflict: restriction req_lifted is already lifted (by req_lift)"}`)
			return
		}
		writeJSONReply(w, http.StatusAccepted, `{"id":"req_lift","state":"open","restriction":"`+r.PathValue("id")+`"}`)
	})
	mux.HandleFunc("GET /v1/deadline", f.deadline)
	mux.HandleFunc("POST /v1/requests/{id}/tasks/{system}/retry", f.redrive)
	mux.HandleFunc("POST /v1/requests/{id}/tasks/{system}/resolve", f.redrive)
	mux.HandleFunc("GET /v1/deadletters", f.deadLetters)
	mux.HandleFunc("POST /v1/deadletters/replay", f.replay)
	mux.HandleFunc("POST /v1/tokens", f.createToken)
	mux.HandleFunc("GET /v1/tokens", f.listTokens)
	mux.HandleFunc("DELETE /v1/tokens/{id}", f.revokeToken)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		f.guard(mux, w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// guard checks a call as the orchestrator does before its handler runs:
// JSON for a state-changing call (415), a bearer token it knows (401), the
// rate (429), the role (403).
func (f *fakeOrchestrator) guard(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeErr(w, http.StatusUnsupportedMediaType, "a state-changing call must be sent as content-type: application/json")
			return
		}
	}
	scheme, bearer, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") {
		bearer = ""
	}
	f.mu.Lock()
	role, known := f.bearers[strings.TrimSpace(bearer)]
	retryAfter := f.retryAfter
	f.mu.Unlock()
	switch {
	case bearer == "":
		w.Header().Set("WWW-Authenticate", `Bearer realm="lethe"`)
		writeErr(w, http.StatusUnauthorized, "a bearer token is required (Authorization: Bearer ...)")
		return
	case !known:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lethe"`)
		writeErr(w, http.StatusUnauthorized, "the bearer token is not valid")
		return
	case retryAfter != "":
		if retryAfter != "-" {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeErr(w, http.StatusTooManyRequests, "too many requests: slow down")
		return
	}
	_, pattern := mux.Handler(r)
	if roles, ok := fakeRoles[pattern]; ok && !slices.Contains(roles, role) {
		writeErr(w, http.StatusForbidden, "the role "+role+" may not do this")
		return
	}
	if r.Method == http.MethodPost || r.Method == http.MethodDelete {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(r.Body)
		f.mu.Lock()
		f.bodies = append(f.bodies, r.Method+" "+r.URL.Path+" "+b.String())
		f.mu.Unlock()
		r.Body = readCloser{bytes.NewReader(b.Bytes())}
	}
	mux.ServeHTTP(w, r)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// requireBearer lets through the calls that carry token, as the
// orchestrator's guard lets through an admin's; the proof server uses it.
func requireBearer(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			writeErr(w, http.StatusUnauthorized, "the bearer token is not valid")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// decodeBody reads a JSON object with only the fields allowed, as the
// orchestrator does; it writes the 400 itself.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowed ...string) bool {
	b := new(bytes.Buffer)
	_, _ = b.ReadFrom(r.Body)
	if len(bytes.TrimSpace(b.Bytes())) == 0 {
		writeErr(w, http.StatusBadRequest, "body is empty: a JSON object is expected")
		return false
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b.Bytes(), &raw); err != nil {
		writeErr(w, http.StatusBadRequest, "body is not valid JSON")
		return false
	}
	for k := range raw {
		if !slices.Contains(allowed, k) {
			writeErr(w, http.StatusBadRequest, "body has a field that is not allowed here (allowed: "+strings.Join(allowed, ", ")+")")
			return false
		}
	}
	if err := json.Unmarshal(b.Bytes(), v); err != nil {
		writeErr(w, http.StatusBadRequest, "body is not valid JSON")
		return false
	}
	return true
}

// lastBody is the body of the last POST or DELETE to path.
func (f *fakeOrchestrator) lastBody(method, path string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.bodies) - 1; i >= 0; i-- {
		if rest, ok := strings.CutPrefix(f.bodies[i], method+" "+path+" "); ok {
			return rest, true
		}
	}
	return "", false
}

func writeJSONReply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if s, ok := v.(string); ok {
		fmt.Fprint(w, s)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSONReply(w, status, map[string]string{"error": msg})
}

func (f *fakeOrchestrator) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Type    string `json:"type"`
		Tenant  string `json:"tenant"`
		Subject struct {
			Email  string `json:"email"`
			UserID string `json:"user_id"`
		} `json:"subject"`
		ReceivedAt string `json:"received_at"`
		Verified   bool   `json:"verified"`
	}
	var raw map[string]any
	b := new(bytes.Buffer)
	_, _ = b.ReadFrom(r.Body)
	if err := json.Unmarshal(b.Bytes(), &body); err != nil || json.Unmarshal(b.Bytes(), &raw) != nil {
		writeErr(w, http.StatusBadRequest, "malformed JSON")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submitted = append(f.submitted, raw)
	switch {
	case body.Type != "erasure" && body.Type != "export":
		writeErr(w, http.StatusBadRequest, "type must be erasure or export")
		return
	case body.Tenant == "":
		writeErr(w, http.StatusBadRequest, "tenant is required")
		return
	case body.Subject.Email == "" && body.Subject.UserID == "":
		writeErr(w, http.StatusBadRequest, "subject needs an email or a user id")
		return
	case body.Subject.Email != "" && !strings.Contains(body.Subject.Email, "@"):
		writeErr(w, http.StatusBadRequest, "invalid email address")
		return
	}
	received := time.Now().UTC()
	if body.ReceivedAt != "" {
		t, err := time.Parse(time.RFC3339, body.ReceivedAt)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "received_at must be RFC 3339")
			return
		}
		received = t.UTC()
	}
	state := "pending_verification"
	if body.Verified {
		state = "open"
	}
	req := map[string]any{
		"id":          fmt.Sprintf("req-%04d", len(f.requests)+1),
		"tenant":      body.Tenant,
		"type":        body.Type,
		"state":       state,
		"received_at": received.Format(time.RFC3339),
		"deadline":    received.AddDate(0, 1, 0).Format(time.RFC3339),
	}
	f.requests = append(f.requests, req)
	writeJSONReply(w, http.StatusAccepted, map[string]any{"id": req["id"], "state": state, "deadline": req["deadline"]})
}

func (f *fakeOrchestrator) find(id string) map[string]any {
	for _, r := range f.requests {
		if r["id"] == id {
			return r
		}
	}
	return nil
}

func (f *fakeOrchestrator) verify(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Method string `json:"method"`
		Reason string `json:"reason"`
		Note   string `json:"note"`
	}
	if !decodeBody(w, r, &body, "method", "reason", "note") {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	req := f.find(r.PathValue("id"))
	switch {
	case req == nil:
		writeErr(w, http.StatusNotFound, "request not found")
	case body.Reason != "":
		writeErr(w, http.StatusBadRequest, "a verification has a method, not a reason")
	case !slices.Contains(lifecycle.VerificationMethods, body.Method):
		writeErr(w, http.StatusBadRequest, "method must be one of email_code, account_session, document, other")
	case len(body.Note) > 500:
		writeErr(w, http.StatusBadRequest, "note is longer than 500 bytes (it is a line for the record and must hold no personal data)")
	case req["state"] != "pending_verification":
		writeErr(w, http.StatusConflict, fmt.Sprintf("request is %s, not pending verification", req["state"]))
	default:
		req["state"] = "open"
		writeJSONReply(w, http.StatusOK, map[string]any{"id": req["id"], "state": "open"})
	}
}

// deny follows the orchestrator's rules: a ground, and only while the
// request waits for its identity check.
func (f *fakeOrchestrator) deny(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Method string `json:"method"`
		Reason string `json:"reason"`
		Note   string `json:"note"`
	}
	if !decodeBody(w, r, &body, "method", "reason", "note") {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	req := f.find(r.PathValue("id"))
	switch {
	case req == nil:
		writeErr(w, http.StatusNotFound, "request not found")
	case body.Method != "":
		writeErr(w, http.StatusBadRequest, "a refusal has a reason, not a method")
	case !slices.Contains(lifecycle.DenialGrounds, body.Reason):
		writeErr(w, http.StatusBadRequest, "reason must be one of manifestly_unfounded, excessive, identity_not_established, other")
	case req["state"] != "pending_verification":
		writeErr(w, http.StatusConflict, "only a request waiting for its identity check can be refused: once verified, its systems have been asked")
	default:
		req["state"] = "denied"
		writeJSONReply(w, http.StatusOK, map[string]any{"id": req["id"], "state": "denied"})
	}
}

// deadlines are the fake's answers to GET /v1/deadline, by "tenant|received_at";
// the orchestrator's own tests check the arithmetic.
var deadlines = map[string]string{
	"demo|2028-01-31T10:00:00Z": `{"tenant":"demo","received_at":"2028-01-31T10:00:00Z","deadline":"2028-02-29T23:59:59Z",` +
		`"extended_deadline":"2028-04-29T23:59:59Z","time_zone":"UTC","roll_to_working_day":false}`,
	"acme-fr|2028-04-08T09:00:00+02:00": `{"tenant":"acme-fr","received_at":"2028-04-08T07:00:00Z","deadline":"2028-05-09T21:59:59Z",` +
		`"extended_deadline":"2028-07-10T21:59:59Z","time_zone":"Europe/Paris","roll_to_working_day":true,"holidays":["2028-05-08"]}`,
}

func (f *fakeOrchestrator) deadline(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	reply, ok := deadlines[q.Get("tenant")+"|"+q.Get("received_at")]
	if !ok {
		writeErr(w, http.StatusBadRequest, "tenant must be 1-63 lowercase letters, digits, '-' or '_'")
		return
	}
	writeJSONReply(w, http.StatusOK, reply)
}

// extend follows the orchestrator's rules: a reason, once.
func (f *fakeOrchestrator) extend(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if !decodeBody(w, r, &body, "reason") {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	req := f.find(r.PathValue("id"))
	switch {
	case req == nil:
		writeErr(w, http.StatusNotFound, "request not found")
	case strings.TrimSpace(body.Reason) == "":
		writeErr(w, http.StatusBadRequest, "reason is required")
	case req["extended_at"] != nil:
		writeJSONReply(w, http.StatusConflict, map[string]any{"error": "the deadline was already extended, and Art. 12(3) allows one extension", "code": "already_extended"})
	default:
		req["extended_at"] = "2025-02-10T10:00:00Z"
		writeJSONReply(w, http.StatusOK, map[string]any{"id": req["id"], "state": req["state"], "deadline": "2025-04-30T23:59:59Z",
			"original_deadline": "2025-02-28T23:59:59Z", "extended_at": "2025-02-10T10:00:00Z", "extension_reason": body.Reason})
	}
}

func (f *fakeOrchestrator) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	if fail := f.failures[id]; len(fail) > 0 {
		f.failures[id] = fail[1:]
		writeErr(w, fail[0], "store unavailable")
		return
	}
	snaps := f.snapshots[id]
	if len(snaps) == 0 {
		writeErr(w, http.StatusNotFound, "request not found")
		return
	}
	n := f.gets[id]
	f.gets[id]++
	writeJSONReply(w, http.StatusOK, snaps[min(n, len(snaps)-1)])
}

func (f *fakeOrchestrator) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cursors = append(f.cursors, q.Get("cursor"))
	f.queries = append(f.queries, map[string]string{"state": q.Get("state"), "tenant": q.Get("tenant"), "limit": q.Get("limit")})
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			writeErr(w, http.StatusBadRequest, "bad limit")
			return
		}
		limit = n
	}
	var match []map[string]any
	for _, req := range f.requests {
		if (q.Get("state") == "" || req["state"] == q.Get("state")) && (q.Get("tenant") == "" || req["tenant"] == q.Get("tenant")) &&
			(q.Get("event_id") == "" || req["event_id"] == q.Get("event_id")) {
			match = append(match, req)
		}
	}
	// Cursors are opaque to the client; here they are "c" + offset.
	offset := 0
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "c"))
		if err != nil || !strings.HasPrefix(c, "c") || n > len(match) {
			writeErr(w, http.StatusBadRequest, "bad cursor")
			return
		}
		offset = n
	}
	end := min(offset+limit, len(match))
	next := ""
	if end < len(match) {
		next = "c" + strconv.Itoa(end)
	}
	rows := []map[string]any{}
	for _, req := range match[offset:end] {
		rows = append(rows, req)
	}
	writeJSONReply(w, http.StatusOK, map[string]any{"requests": rows, "next_cursor": next})
}

func (f *fakeOrchestrator) export(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.bundles[r.PathValue("id")]
	if !ok {
		writeErr(w, http.StatusConflict, "export is not finished")
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Write(b)
}

// sweep starts a run of the policy site_cookies, whose snapshots the
// test set as run_<policy>[_dry].
func (f *fakeOrchestrator) sweep(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tenant, Policy string
		All            bool
		DryRun         bool `json:"dry_run"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErr(w, http.StatusBadRequest, "bad body")
		return
	}
	if body.Policy != "site_cookies" && !body.All {
		writeErr(w, http.StatusNotFound, "no such retention policy for tenant demo (GET /v1/policies lists them)")
		return
	}
	id := "run_site_cookies"
	if body.DryRun {
		id += "_dry"
	}
	writeJSONReply(w, http.StatusAccepted, fmt.Sprintf(`{"runs":[{"id":%q,"tenant":"demo","policy":"site_cookies","dry_run":%v}]}`, id, body.DryRun))
}

// certificate answers the part of a certificate that export download
// reads: the manifest digest it quotes.
func (f *fakeOrchestrator) certificate(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	writeJSONReply(w, http.StatusOK, map[string]string{"request_id": r.PathValue("id"), "export_manifest_sha256": f.manifests[r.PathValue("id")]})
}

// createToken issues a token as the orchestrator does: checked, shown
// once with its secret.
func (f *fakeOrchestrator) createToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name      string `json:"name"`
		Tenant    string `json:"tenant"`
		Role      string `json:"role"`
		ExpiresAt string `json:"expires_at"`
	}
	if !decodeBody(w, r, &body, "name", "tenant", "role", "expires_at") {
		return
	}
	switch {
	case body.Name == "" || len(body.Name) > 64:
		writeErr(w, http.StatusBadRequest, "name must be 1-64 printable characters")
		return
	case !slices.Contains(tokenRoles, body.Role):
		writeErr(w, http.StatusBadRequest, "role must be admin, dpo, intake or auditor")
		return
	case body.Role != "admin" && body.Tenant == "":
		writeErr(w, http.StatusBadRequest, "tenant is required for this role: tenant must be 1-63 lowercase letters, digits, '-' or '_'")
		return
	}
	view := map[string]any{"name": body.Name, "tenant": body.Tenant, "role": body.Role, "created_at": time.Now().UTC().Format(time.RFC3339)}
	if body.Role == "admin" {
		view["tenant"] = "*"
	}
	if body.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, body.ExpiresAt)
		if err != nil || !t.After(time.Now()) {
			writeErr(w, http.StatusBadRequest, "expires_at must be an RFC 3339 time in the future")
			return
		}
		view["expires_at"] = t.UTC().Format(time.RFC3339)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.tokens) + 1
	id := fmt.Sprintf("tok_%016x", n)
	secret := fmt.Sprintf("lethe_fake-secret-%04d-abcdefghijklmnopqrstuvwxyz0123456789", n)
	view["id"] = id
	f.tokens = append(f.tokens, view)
	f.bearers[secret] = body.Role
	f.secrets[id] = secret
	reply := map[string]any{"token": secret}
	for k, v := range view {
		reply[k] = v
	}
	writeJSONReply(w, http.StatusCreated, reply)
}

func (f *fakeOrchestrator) listTokens(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	writeJSONReply(w, http.StatusOK, map[string]any{"tokens": f.tokens})
}

// revokeToken revokes a token at once: its next call is 401.
func (f *fakeOrchestrator) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.tokens {
		if k["id"] == id {
			if k["revoked_at"] == nil {
				k["revoked_at"] = time.Now().UTC().Format(time.RFC3339)
			}
			delete(f.bearers, f.secrets[id])
			writeJSONReply(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
			return
		}
	}
	writeErr(w, http.StatusNotFound, "no such token")
}

// addRequests stores n requests directly, as if submitted and verified.
func (f *fakeOrchestrator) addRequests(n int, tenant, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	base := time.Now().UTC().Truncate(time.Second)
	for range n {
		f.requests = append(f.requests, map[string]any{
			"id":          fmt.Sprintf("req-%04d", len(f.requests)+1),
			"tenant":      tenant,
			"type":        "erasure",
			"state":       state,
			"received_at": base.Format(time.RFC3339),
			"deadline":    base.AddDate(0, 1, 0).Format(time.RFC3339),
		})
	}
}

// fakeAccounts is the demo accounts system's admin API.
type fakeAccounts struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]string
	auth   []string // Authorization headers seen
}

func newFakeAccounts(t *testing.T) *fakeAccounts {
	t.Helper()
	f := &fakeAccounts{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/accounts/delete", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeErr(w, http.StatusBadRequest, "malformed JSON")
			return
		}
		f.mu.Lock()
		f.bodies = append(f.bodies, body)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		if body["tenant"] != "demo" || body["email"] != "person-0001@example.com" {
			writeErr(w, http.StatusNotFound, "account not found")
			return
		}
		writeJSONReply(w, http.StatusAccepted, map[string]string{"user_id": "user-0001", "event_id": "evt-42"})
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// runCLI runs lethectl with args, and the fakes' token (--token
// testToken, before them), and returns its exit code and output. The
// token must not be printed.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIRaw(t, testToken, append([]string{"--token", testToken}, args...)...)
}

// runCLIRaw runs lethectl with args as they are: the token is the one they
// give, or LETHE_TOKEN's, or data/admin.token's. secret, when not empty,
// is the token in use, which must not be printed.
func runCLIRaw(t *testing.T, secret string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	if secret != "" && strings.Contains(out.String()+errb.String(), secret) {
		t.Errorf("the bearer token was printed:\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	return code, out.String(), errb.String()
}

// redrive retries or resolves a request's dead task ("dead": its system).
func (f *fakeOrchestrator) redrive(w http.ResponseWriter, r *http.Request) {
	resolve := strings.HasSuffix(r.URL.Path, "/resolve")
	var body struct {
		Note string `json:"note"`
	}
	if resolve && !decodeBody(w, r, &body, "note") {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	req := f.find(r.PathValue("id"))
	switch {
	case req == nil:
		writeErr(w, http.StatusNotFound, "no such request, or no such system in it")
	case resolve && strings.TrimSpace(body.Note) == "":
		writeErr(w, http.StatusBadRequest, "a note saying what was done is required")
	case req["dead"] != r.PathValue("system"):
		writeErr(w, http.StatusConflict, "only a task that failed or ran out of attempts (dead_letter) can be retried or resolved")
	default:
		delete(req, "dead")
		if resolve {
			req["state"] = "fulfilled"
		}
		writeJSONReply(w, http.StatusOK, map[string]any{"id": req["id"], "state": req["state"]})
	}
}

func (f *fakeOrchestrator) deadLetters(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for _, req := range f.requests {
		if sys, ok := req["dead"].(string); ok && (r.URL.Query().Get("system") == "" || r.URL.Query().Get("system") == sys) {
			out = append(out, map[string]any{"request_id": req["id"], "tenant": req["tenant"], "system": sys, "attempts": 8,
				"detail": "no answer after 8 attempts", "dead_at": "2025-02-10T10:00:00Z"})
		}
	}
	writeJSONReply(w, http.StatusOK, map[string]any{"deadletters": out})
}

func (f *fakeOrchestrator) replay(w http.ResponseWriter, r *http.Request) {
	var body struct {
		System string `json:"system"`
		Since  string `json:"since"`
	}
	if !decodeBody(w, r, &body, "system", "since") {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, req := range f.requests {
		if req["dead"] == body.System {
			delete(req, "dead")
			n++
		}
	}
	writeJSONReply(w, http.StatusOK, map[string]any{"retried": n, "skipped": []string{}})
}
