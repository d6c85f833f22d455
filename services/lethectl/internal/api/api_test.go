package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTimeUnmarshal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: `"2025-01-31T09:00:00Z"`, want: time.Date(2025, 1, 31, 9, 0, 0, 0, time.UTC)},
		{in: `"2025-01-31T10:00:00.5+01:00"`, want: time.Date(2025, 1, 31, 9, 0, 0, 5e8, time.UTC)},
		{in: `"2035-12-31"`, want: time.Date(2035, 12, 31, 0, 0, 0, 0, time.UTC)},
		{in: `""`},
		{in: `null`},
		{in: `"0001-01-01T00:00:00Z"`},
		{in: `"31/12/2035"`, wantErr: true},
		{in: `12`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got struct {
				At Time `json:"at"`
			}
			err := json.Unmarshal([]byte(`{"at":`+tt.in+`}`), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !got.At.Equal(tt.want) {
				t.Errorf("got %v, want %v", got.At.Time, tt.want)
			}
			if tt.want.IsZero() && !got.At.IsZero() {
				t.Errorf("got %v, want zero", got.At.Time)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.EscapedPath() {
		case "/v1/requests/json-error":
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error":"request is open"}`)
		case "/v1/requests/html-error":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>proxy error</html>")
		case "/v1/requests/not-json":
			fmt.Fprint(w, "<html>ok</html>")
		case "/v1/requests/a%2Fb%3F":
			// The id was escaped into one path segment.
			fmt.Fprint(w, `{"id":"a/b?","state":"open","tasks":[]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":"no route for %s"}`, r.URL.EscapedPath())
		}
	}))
	defer srv.Close()
	c := New(srv.URL+"/", "", nil)
	ctx := context.Background()

	_, _, err := c.Get(ctx, "json-error")
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 409 || apiErr.Message != "request is open" {
		t.Errorf("json error: %v", err)
	}
	if !IsStatus(err, http.StatusConflict) || IsStatus(err, http.StatusNotFound) {
		t.Errorf("IsStatus wrong for %v", err)
	}
	if _, _, err := c.Get(ctx, "html-error"); err == nil || err.Error() != "bad gateway (HTTP 502)" {
		t.Errorf("non-JSON error body: %v", err)
	}
	if _, _, err := c.Get(ctx, "not-json"); err == nil || !strings.Contains(err.Error(), "decode reply") {
		t.Errorf("non-JSON success body: %v", err)
	}
	r, _, err := c.Get(ctx, "a/b?")
	if err != nil || r.ID != "a/b?" {
		t.Errorf("escaped id: %+v, %v", r, err)
	}

	srv.Close()
	if _, _, err := c.Get(ctx, "x"); err == nil || !strings.HasPrefix(err.Error(), "GET "+srv.URL+"/v1/requests/x: ") {
		t.Errorf("connection error: %v", err)
	}
}

func TestProofEndpoints(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		accepts []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepts = append(accepts, r.URL.Path+" "+r.Header.Get("Accept"))
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/requests/r/1/certificate": // the id escaped: r%2F1
			fmt.Fprint(w, "{\"version\":1}\n")
		case "/v1/requests/r/1/certificate.html":
			fmt.Fprint(w, "<html></html>")
		case "/v1/log/consistency":
			q := r.URL.Query()
			// Two hashes: all zero bytes, then all 0xff.
			fmt.Fprintf(w, `{"old":%s,"new":%s,"proof":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","//////////////////////////////////////////8="]}`, q.Get("old"), q.Get("new"))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c := New(srv.URL, "", nil)
	ctx := context.Background()

	var b strings.Builder
	if n, err := c.Certificate(ctx, "r/1", false, &b); err != nil || b.String() != "{\"version\":1}\n" || n != int64(b.Len()) {
		t.Errorf("certificate: %q, %d, %v", b.String(), n, err)
	}
	b.Reset()
	if _, err := c.Certificate(ctx, "r/1", true, &b); err != nil || b.String() != "<html></html>" {
		t.Errorf("certificate page: %q, %v", b.String(), err)
	}
	cons, err := c.Consistency(ctx, 3, 10)
	if err != nil || cons.Old != 3 || cons.New != 10 || len(cons.Proof) != 2 || cons.Proof[0][0] != 0 || cons.Proof[1][31] != 0xff {
		t.Errorf("consistency: %+v, %v", cons, err)
	}
	want := []string{
		"/v1/requests/r/1/certificate application/json",
		"/v1/requests/r/1/certificate.html text/html",
		"/v1/log/consistency application/json",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(accepts, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(accepts, "\n"), strings.Join(want, "\n"))
	}
}

// TestCalls checks what goes on the wire: the bearer token on every call,
// and JSON (with {} for nothing) on every state-changing one, as the
// orchestrator requires (401, 415 otherwise).
func TestCalls(t *testing.T) {
	t.Parallel()
	type seen struct{ method, path, auth, contentType, body string }
	var (
		mu    sync.Mutex
		calls []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(strings.Builder)
		_, _ = io.Copy(b, r.Body)
		mu.Lock()
		calls = append(calls, seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b.String()})
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/tokens":
			if r.Method == http.MethodPost {
				w.WriteHeader(http.StatusCreated)
				fmt.Fprint(w, `{"id":"tok_1","token":"lethe_s3cret","name":"n","tenant":"demo","role":"dpo","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-04-01T00:00:00Z"}`)
				return
			}
			fmt.Fprint(w, `{"tokens":[{"id":"tok_1","name":"n","tenant":"demo","role":"dpo","created_at":"2026-01-01T00:00:00Z","revoked_at":"2026-02-01T00:00:00Z"}]}`)
		default:
			fmt.Fprint(w, `{"id":"r1","state":"open"}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, "tok-123", nil)

	if _, err := c.Verify(ctx, "r1", Verification{Method: "document"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deny(ctx, "r1", Denial{Reason: "excessive", Note: "ten requests this week"}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(ctx, NewToken{Name: "n", Tenant: "demo", Role: "dpo", ExpiresAt: "2026-04-01T00:00:00Z"})
	if err != nil || string(tok.Secret) != "lethe_s3cret" || tok.ID != "tok_1" || tok.ExpiresAt.IsZero() {
		t.Fatalf("create token: %+v, %v", tok, err)
	}
	toks, _, err := c.Tokens(ctx)
	if err != nil || len(toks) != 1 || toks[0].RevokedAt.IsZero() || toks[0].Secret != "" || !toks[0].LastUsedAt.IsZero() {
		t.Fatalf("tokens: %+v, %v", toks, err)
	}
	if err := c.RevokeToken(ctx, "tok_1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := New(srv.URL, "", nil).Get(ctx, "r1"); err != nil {
		t.Fatal(err)
	}

	want := []seen{
		{"POST", "/v1/requests/r1/verify", "Bearer tok-123", "application/json", `{"method":"document"}`},
		{"POST", "/v1/requests/r1/deny", "Bearer tok-123", "application/json", `{"reason":"excessive","note":"ten requests this week"}`},
		{"POST", "/v1/tokens", "Bearer tok-123", "application/json", `{"name":"n","tenant":"demo","role":"dpo","expires_at":"2026-04-01T00:00:00Z"}`},
		{"GET", "/v1/tokens", "Bearer tok-123", "", ""},
		{"DELETE", "/v1/tokens/tok_1", "Bearer tok-123", "application/json", `{}`},
		{"GET", "/v1/requests/r1", "Bearer tok-123", "", ""},
		{"GET", "/v1/requests/r1", "", "", ""}, // no token: no header
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != len(want) {
		t.Fatalf("server saw %d calls, want %d: %+v", len(calls), len(want), calls)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i+1, calls[i], want[i])
		}
	}
}

func TestSecretIsRedacted(t *testing.T) {
	t.Parallel()
	tok := Token{ID: "tok_1", Secret: "lethe_s3cret"}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok.Secret)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("the secret is printed: %s", s)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-3", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":"too many requests: slow down"}`)
	}))
	defer srv.Close()
	_, err := New(srv.URL, "", nil).List(context.Background(), ListOptions{})
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.RetryAfter != 3*time.Second || apiErr.Message != "too many requests: slow down" {
		t.Errorf("429: %#v", err)
	}
}
