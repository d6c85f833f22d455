package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/httpapi"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// Fuzz targets of the API's request bodies, through the HTTP handler as a
// client reaches it (routing, the guard, the shared decoding, the
// handler's checks), over a lifecycle and a store that only record what
// they are asked: POST /v1/requests, and the bodies of verify, deny and
// extend, which the same decoding reads.

var fuzzNow = time.Date(2026, 2, 13, 10, 0, 0, 0, time.UTC)

// principals are who calls, by bearer token: role%4 picks one.
var principals = []auth.Principal{
	{Kind: auth.KindToken, ID: "tok-admin", Name: "ops", Role: auth.Admin, Tenant: auth.AnyTenant},
	{Kind: auth.KindToken, ID: "tok-dpo", Name: "dpo", Role: auth.DPO, Tenant: "demo"},
	{Kind: auth.KindToken, ID: "tok-intake", Name: "form", Role: auth.Intake, Tenant: "demo"},
	{Kind: auth.KindToken, ID: "tok-auditor", Name: "audit", Role: auth.Auditor, Tenant: "demo"},
}

type tokens struct{}

func (tokens) Authenticate(_ context.Context, bearer string) (auth.Principal, error) {
	for _, p := range principals {
		if bearer == "lethe_"+p.ID {
			return p, nil
		}
	}
	return auth.Principal{}, auth.ErrInvalid
}

// recorder is the lifecycle and the store: it records what it is asked
// and answers as the engine would, refusing what the engine's own checks
// refuse. Whatever else the API might ask panics (the nil interfaces).
type recorder struct {
	httpapi.Lifecycle
	httpapi.Reader

	submitted []engine.NewRequest
	decided   []decision // the verifications, denials and extensions it took
}

type decision struct {
	what   string // verify, deny, extend
	d      engine.Decision
	reason string
}

func (r *recorder) Now() time.Time { return fuzzNow }

func (r *recorder) Submit(_ context.Context, nr engine.NewRequest) (*store.Request, bool, error) {
	r.submitted = append(r.submitted, nr)
	return &store.Request{ID: "req_fuzz", Tenant: nr.Tenant, Type: nr.Type, State: lifecycle.PendingVerification,
		Deadline: fuzzNow.AddDate(0, 1, 0)}, true, nil
}

func (r *recorder) Verify(_ context.Context, id string, d engine.Decision) (*store.Request, error) {
	if err := engine.CheckVerification(d); err != nil {
		return nil, err
	}
	r.decided = append(r.decided, decision{what: "verify", d: d})
	return &store.Request{ID: id, Tenant: "demo", State: lifecycle.Open}, nil
}

func (r *recorder) Deny(_ context.Context, id string, d engine.Decision) (*store.Request, error) {
	if err := engine.CheckDenial(d); err != nil {
		return nil, err
	}
	r.decided = append(r.decided, decision{what: "deny", d: d})
	return &store.Request{ID: id, Tenant: "demo", State: lifecycle.Denied}, nil
}

func (r *recorder) Extend(_ context.Context, id, reason string, by *proof.Actor) (*store.Request, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("reason is required: %w", engine.ErrBadReason)
	}
	r.decided = append(r.decided, decision{what: "extend", reason: reason, d: engine.Decision{Actor: *by}})
	return &store.Request{ID: id, Tenant: "demo", Type: lifecycle.Erasure, State: lifecycle.Open,
		ReceivedAt: fuzzNow, Deadline: fuzzNow.AddDate(0, 3, 0), ExtendedAt: fuzzNow}, nil
}

func (r *recorder) Get(_ context.Context, id string) (*store.Request, []*store.Task, error) {
	return &store.Request{ID: id, Tenant: "demo", Type: lifecycle.Erasure, State: lifecycle.PendingVerification, SubmittedBy: "tok-intake"}, nil, nil
}

// api serves the API over a fresh recorder for each call.
type api struct {
	rec *recorder
	h   http.Handler
}

func newAPI(tb testing.TB) *api {
	tb.Helper()
	a := &api{rec: &recorder{}}
	m := metrics.New(prometheus.NewRegistry(), nil, nil, nil, nil, func() time.Time { return fuzzNow }, 0)
	a.h = httpapi.New(a.rec, a.rec, m, slog.New(slog.NewTextHandler(io.Discard, nil)), httpapi.Options{Auth: tokens{}}).Handler()
	return a
}

// post sends body to path as principal role%4; the recorder starts empty.
func (a *api) post(tb testing.TB, role uint8, path string, body []byte) (int, []byte) {
	tb.Helper()
	*a.rec = recorder{}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer lethe_"+principals[int(role)%len(principals)].ID)
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

// userIDChars is the one '@' of the API's own words: the characters of a
// user id, in the message refusing one.
const userIDChars = "._:@-"

// checkAnswer checks what every answer promises: JSON, an "error" when it
// refuses, and never a subject's identifier. Only the body can hold an
// '@' (nothing the recorder answers has one, and the API's messages but
// userIDChars none), so an answer with one repeats what was sent.
func checkAnswer(t *testing.T, status int, out []byte, allowed ...int) {
	t.Helper()
	if !slices.Contains(allowed, status) {
		t.Fatalf("status %d (want one of %v): %s", status, allowed, out)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("the answer is not a JSON object: %v: %s", err, out)
	}
	if msg, ok := v["error"].(string); status >= 400 && (!ok || msg == "") {
		t.Fatalf("a refusal that says nothing: %s", out)
	}
	said := bytes.ReplaceAll(out, []byte(userIDChars), nil)
	if bytes.Contains(said, []byte("@")) || bytes.Contains(bytes.ToLower(said), []byte(`\u0040`)) {
		t.Fatalf("the answer repeats what the body sent (an email?): %s", out)
	}
}

var (
	tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	userIDRE = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
)

// fields decodes a JSON object's fields by their exact names (nil if it
// is not one).
func fields(raw []byte) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// str is the string a field holds ("" for none or null).
func str(t *testing.T, m map[string]json.RawMessage, k string) string {
	t.Helper()
	var s string
	if raw, ok := m[k]; ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("accepted a body whose %q is not a string: %s", k, raw)
		}
	}
	return s
}

// FuzzSubmitBody: any body of POST /v1/requests, by any role. The API
// never panics, answers JSON with a status it documents, never repeats
// the body's identifiers; and a request it files (202) is one the
// validator promises: a known type, a well-formed tenant the caller acts
// for, a plain valid email address, a well-formed user id, a time of
// receipt from 1970 to now, "verified" only from a dpo or an admin, and
// a body that says exactly that, field by field, in the fields' exact
// names. A refused body files nothing.
func FuzzSubmitBody(f *testing.F) {
	for _, s := range []struct {
		role uint8
		body string
	}{
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"}}`},
		{1, `{"type":"export","tenant":"demo","subject":{"email":"person-0009@example.com","user_id":"user-0009"},"received_at":"2026-02-01T09:00:00+01:00"}`},
		{1, `{"type":"erasure","tenant":"demo","subject":{"email":"a.b+c@mail.example.co.uk"},"verified":true}`},
		{2, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"},"verified":true}`},
		{2, `{"type":"erasure","tenant":"other","subject":{"email":"person-0007@example.com"}}`},
		{3, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"}}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"},"received_at":"2099-01-01T00:00:00Z"}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"},"received_at":"1969-12-31T23:59:59Z"}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"EMAIL":"person-0007@example.com"}}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"x@y.com","Email":"person-0007@example.com"}}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"Ann <person-0007@example.com>"}}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":" person-0007@example.com"}}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@localhost"}}`},
		{0, `{"type":"erasure","tenant":"Demo","subject":{"email":"person-0007@example.com"}}`},
		{0, `{"type":"delete","tenant":"demo","subject":{"email":"person-0007@example.com"}}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"},"extra":1}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"}} {}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":7}}`},
		{0, `{"type":"erasure","tenant":"demo","subject":"person-0007@example.com"}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com","user_id":"a b"}}`},
		{0, `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"`},
		{0, `[]`},
		{0, `null`},
		{0, ``},
		{0, "\xff"},
	} {
		f.Add(s.role, []byte(s.body))
	}
	a := newAPI(f)
	// The set-up is right: a request as lethectl sends it is filed.
	if status, out := a.post(f, 0, "/v1/requests", []byte(`{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"}}`)); status != http.StatusAccepted {
		f.Fatalf("a plain request: %d %s", status, out)
	}

	f.Fuzz(func(t *testing.T, role uint8, body []byte) {
		p := principals[int(role)%len(principals)]
		status, out := a.post(t, role, "/v1/requests", body)
		checkAnswer(t, status, out, http.StatusAccepted, http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge)
		if status != http.StatusAccepted {
			if len(a.rec.submitted) > 0 {
				t.Fatalf("refused (%d), yet filed: %+v", status, a.rec.submitted)
			}
			return
		}
		if len(a.rec.submitted) != 1 {
			t.Fatalf("accepted, and filed %d requests", len(a.rec.submitted))
		}
		nr := a.rec.submitted[0]
		if err := engine.Validate(nr); err != nil {
			t.Fatalf("filed a request the validator refuses: %v", err)
		}
		// What the body says, read by the fields' exact names.
		top := fields(body)
		if top == nil {
			t.Fatalf("filed a body that is not a JSON object: %q", body)
		}
		for k := range top {
			if !slices.Contains([]string{"type", "tenant", "subject", "received_at", "verified"}, k) {
				t.Fatalf("filed a body with field %q", k)
			}
		}
		subject := fields(top["subject"])
		for k := range subject {
			if k != "email" && k != "user_id" {
				t.Fatalf("filed a body with subject field %q", k)
			}
		}
		var verified bool
		if raw, ok := top["verified"]; ok && json.Unmarshal(raw, &verified) != nil {
			t.Fatalf("filed a body whose verified is %s", raw)
		}
		switch {
		case string(nr.Type) != str(t, top, "type") || nr.Tenant != str(t, top, "tenant") ||
			nr.Email != str(t, subject, "email") || nr.UserID != str(t, subject, "user_id") || nr.Verified != verified:
			t.Fatalf("filed %+v for the body %s", nr, body)
		case nr.Type != lifecycle.Erasure && nr.Type != lifecycle.Export:
			t.Fatalf("filed type %q", nr.Type)
		case !tenantRE.MatchString(nr.Tenant):
			t.Fatalf("filed tenant %q", nr.Tenant)
		case !p.Sees(nr.Tenant):
			t.Fatalf("%s of %s filed for tenant %q", p.Role, p.Tenant, nr.Tenant)
		case nr.Verified && p.Role != auth.Admin && p.Role != auth.DPO:
			t.Fatalf("%s filed a verified request", p.Role)
		case nr.UserID != "" && !userIDRE.MatchString(nr.UserID):
			t.Fatalf("filed user id %q", nr.UserID)
		case nr.Source != engine.SourceAPI || nr.SourceRef != "" || nr.By == nil || nr.By.ID != p.ID:
			t.Fatalf("filed from source %q (%q) by %+v", nr.Source, nr.SourceRef, nr.By)
		}
		if msg := plainEmail(nr.Email); msg != "" {
			t.Fatalf("filed email %q, which %s", nr.Email, msg)
		}
		if at := str(t, top, "received_at"); at == "" {
			if !nr.ReceivedAt.IsZero() {
				t.Fatalf("filed received at %s without a received_at", nr.ReceivedAt)
			}
		} else {
			got, err := time.Parse(time.RFC3339, at)
			if err != nil || !got.Equal(nr.ReceivedAt) {
				t.Fatalf("filed received at %s for %q", nr.ReceivedAt, at)
			}
			if nr.ReceivedAt.Year() < 1970 || nr.ReceivedAt.After(fuzzNow.Add(5*time.Minute)) {
				t.Fatalf("filed a request received at %s (now %s)", nr.ReceivedAt, fuzzNow)
			}
		}
	})
}

// plainEmail says what is wrong with an accepted email address: it must be
// an address alone (no name, comment, quotes or spaces), of at most 254
// bytes, valid UTF-8 without control characters, with one '@' and a
// domain with a dot, not at its end.
func plainEmail(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	a, err := mail.ParseAddress(s)
	switch {
	case len(s) > 254:
		return "is too long"
	case !utf8.ValidString(s):
		return "is not UTF-8"
	case strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`"\<>(),;`, r)
	}):
		return "holds a space, a control character or a special"
	case !ok || local == "" || strings.Contains(domain, "@"):
		return "has no single '@'"
	case !strings.Contains(domain, ".") || strings.HasSuffix(domain, "."):
		return "has a domain without a dot, or ending with one"
	case err != nil || a.Address != s || a.Name != "":
		return "is not an address net/mail reads as itself"
	}
	return ""
}

// FuzzDecisionBody: any body of POST /v1/requests/{id}/verify, deny or
// extend (kind%3), by any role. The API never panics, answers JSON with a
// status it documents and never repeats the body's identifiers; and a
// decision it takes (200) is what the body says, in the fields' exact
// names: a verification has a known method and no reason, a refusal a
// known ground and no method, both a note of at most lifecycle.MaxNote
// bytes of UTF-8; an extension the body's reason, not blank; each made by
// a dpo or an admin. A refused body decides nothing.
func FuzzDecisionBody(f *testing.F) {
	for _, s := range []struct {
		kind, role uint8
		body       string
	}{
		{0, 1, `{"method":"document","note":"passport checked at the desk"}`},
		{0, 0, `{"method":"email_code"}`},
		{0, 1, `{"method":"document","reason":"excessive"}`},
		{0, 1, `{"method":"telepathy"}`},
		{0, 1, `{"method":"document","note":"checked with person-0007@example.com"}`},
		{0, 2, `{"method":"document"}`},
		{1, 1, `{"reason":"excessive","note":"fifth request this week"}`},
		{1, 0, `{"reason":"identity_not_established"}`},
		{1, 1, `{"reason":"excessive","method":"document"}`},
		{1, 1, `{"Reason":"excessive"}`},
		{1, 3, `{"reason":"excessive"}`},
		{2, 1, `{"reason":"the request covers many systems, some of them run by processors"}`},
		{2, 0, `{"reason":null}`},
		{2, 1, `{"reason":"   "}`},
		{2, 1, `{"reason":"x","note":"y"}`},
		{2, 1, `{"reason":7}`},
		{2, 1, `{}`},
		{0, 1, `{"method":"document","note":"` + strings.Repeat("n", 501) + `"}`},
		{0, 1, `{"method":"document","note":"\ud800"}`},
		{0, 1, `[1]`},
		{0, 1, ``},
	} {
		f.Add(s.kind, s.role, []byte(s.body))
	}
	a := newAPI(f)
	kinds := []string{"verify", "deny", "extend"}
	// The set-up is right: a decision as lethectl sends it is taken.
	for _, d := range []struct{ what, body string }{{"verify", `{"method":"document"}`}, {"deny", `{"reason":"excessive"}`}, {"extend", `{"reason":"many systems"}`}} {
		if status, out := a.post(f, 1, "/v1/requests/req_fuzz/"+d.what, []byte(d.body)); status != http.StatusOK {
			f.Fatalf("%s: %d %s", d.what, status, out)
		}
	}

	f.Fuzz(func(t *testing.T, kind, role uint8, body []byte) {
		what := kinds[int(kind)%len(kinds)]
		p := principals[int(role)%len(principals)]
		status, out := a.post(t, role, "/v1/requests/req_fuzz/"+what, body)
		checkAnswer(t, status, out, http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge)
		if status != http.StatusOK {
			if len(a.rec.decided) > 0 {
				t.Fatalf("refused (%d), yet decided: %+v", status, a.rec.decided)
			}
			return
		}
		if len(a.rec.decided) != 1 || a.rec.decided[0].what != what {
			t.Fatalf("answered %s with 200, and decided %+v", what, a.rec.decided)
		}
		if p.Role != auth.Admin && p.Role != auth.DPO {
			t.Fatalf("a %s decided", p.Role)
		}
		got := a.rec.decided[0]
		if got.d.Actor.ID != p.ID || got.d.Actor.Role != string(p.Role) {
			t.Fatalf("decided by %+v, called by %+v", got.d.Actor, p)
		}
		top := fields(body)
		if top == nil {
			t.Fatalf("decided on a body that is not a JSON object: %q", body)
		}
		allowed := []string{"method", "reason", "note"}
		if what == "extend" {
			allowed = []string{"reason"}
		}
		for k := range top {
			if !slices.Contains(allowed, k) {
				t.Fatalf("decided on a body with field %q", k)
			}
		}
		switch what {
		case "extend":
			if got.reason != str(t, top, "reason") || strings.TrimSpace(got.reason) == "" {
				t.Fatalf("extended with reason %q for the body %s", got.reason, body)
			}
			return
		case "verify":
			if !slices.Contains(lifecycle.VerificationMethods, got.d.Method) || got.d.Ground != "" {
				t.Fatalf("verified by %q with ground %q", got.d.Method, got.d.Ground)
			}
		case "deny":
			if !slices.Contains(lifecycle.DenialGrounds, got.d.Ground) || got.d.Method != "" {
				t.Fatalf("denied on ground %q with method %q", got.d.Ground, got.d.Method)
			}
		}
		if got.d.Method != str(t, top, "method") || got.d.Ground != str(t, top, "reason") || got.d.Note != str(t, top, "note") {
			t.Fatalf("decided %+v for the body %s", got.d, body)
		}
		if !utf8.ValidString(got.d.Note) || len(got.d.Note) > lifecycle.MaxNote {
			t.Fatalf("decided with a note of %d bytes", len(got.d.Note))
		}
	})
}
