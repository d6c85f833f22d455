package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOrchestrator is an HTTP server that follows the orchestrator API
// contract closely enough for the CLI: intake, verification, listing with
// cursors, exports, and scripted request snapshots for status and wait.
// Replies are written from plain maps and JSON strings, not from the CLI's
// own types, so a wrong field name in the client shows up as a failure.
type fakeOrchestrator struct {
	*httptest.Server

	mu        sync.Mutex
	requests  []map[string]any    // in creation order
	submitted []map[string]any    // bodies of POST /v1/requests
	snapshots map[string][]string // GET /v1/requests/{id}: next JSON each poll, last repeats
	failures  map[string][]int    // GET /v1/requests/{id}: statuses to fail with first
	gets      map[string]int      // polls per id
	bundles   map[string]string   // export bundles of finished exports
	cursors   []string            // cursors seen by GET /v1/requests
	queries   []map[string]string // filters seen by GET /v1/requests
	auth      []string            // Authorization headers seen
}

func newFakeOrchestrator(t *testing.T) *fakeOrchestrator {
	t.Helper()
	f := &fakeOrchestrator{
		snapshots: map[string][]string{},
		failures:  map[string][]int{},
		gets:      map[string]int{},
		bundles:   map[string]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/requests", f.create)
	mux.HandleFunc("POST /v1/requests/{id}/verify", f.verify)
	mux.HandleFunc("POST /v1/requests/{id}/extend", f.extend)
	mux.HandleFunc("GET /v1/requests/{id}", f.get)
	mux.HandleFunc("GET /v1/requests", f.list)
	mux.HandleFunc("GET /v1/requests/{id}/export", f.export)
	mux.HandleFunc("GET /v1/deadline", f.deadline)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
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
	f.mu.Lock()
	defer f.mu.Unlock()
	req := f.find(r.PathValue("id"))
	switch {
	case req == nil:
		writeErr(w, http.StatusNotFound, "request not found")
	case req["state"] != "pending_verification":
		writeErr(w, http.StatusConflict, fmt.Sprintf("request is %s, not pending verification", req["state"]))
	default:
		req["state"] = "open"
		writeJSONReply(w, http.StatusOK, map[string]any{"id": req["id"], "state": "open"})
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
	json.NewDecoder(r.Body).Decode(&body)
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
	writeJSONReply(w, http.StatusOK, b)
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

// runCLI runs lethectl with args and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}
