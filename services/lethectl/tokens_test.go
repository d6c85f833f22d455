package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestTokens follows a token's life: created (shown once), listed, used,
// revoked, refused.
func TestTokens(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	srv.addRequests(1, "demo", "open")

	// Create: the id, then the token, once; the note on stderr.
	before := time.Now()
	code, stdout, stderr := runCLI(t, "tokens", "create", "--api", srv.URL, "--tenant", "demo", "--role", "dpo", "--name", "privacy-team", "--expires", "90d")
	wantOutput{stderr: []string{"token tok_0000000000000002: dpo, tenant demo, named privacy-team; expires ", "shown this once: store it now", "LETHE_TOKEN, not --token"}}.check(t, code, stdout, stderr)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 || lines[0] != "tok_0000000000000002" || !strings.HasPrefix(lines[1], "lethe_fake-secret-") {
		t.Fatalf("stdout = %q, want the id, then the token", stdout)
	}
	secret := lines[1]
	if strings.Count(stdout+stderr, secret) != 1 {
		t.Errorf("the token is printed %d times, want once:\n%s%s", strings.Count(stdout+stderr, secret), stdout, stderr)
	}
	body, _ := srv.lastBody("POST", "/v1/tokens")
	var sent map[string]string
	if err := json.Unmarshal([]byte(body), &sent); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	expires, err := time.Parse(time.RFC3339, sent["expires_at"])
	if want := before.AddDate(0, 0, 90); err != nil || expires.Before(want.Add(-time.Second)) || expires.After(want.Add(time.Minute)) {
		t.Errorf("expires_at = %q, want 90 days from now (%v)", sent["expires_at"], err)
	}
	delete(sent, "expires_at")
	if got := mustJSON(t, sent); got != `{"name":"privacy-team","role":"dpo","tenant":"demo"}` {
		t.Errorf("server received %s", got)
	}

	// List: a row a token, never a secret.
	code, stdout, stderr = runCLI(t, "tokens", "list", "--api", srv.URL)
	wantOutput{stdout: []string{"ID", "NAME", "TENANT", "ROLE", "CREATED", "LAST USED", "EXPIRES", "REVOKED"}}.check(t, code, stdout, stderr)
	if got := strings.Fields(line(t, stdout, "tok_bootstrap0000")); strings.Join(got[:4], " ") != "tok_bootstrap0000 bootstrap * admin" ||
		!strings.Contains(line(t, stdout, "tok_bootstrap0000"), "2026-01-06 09:30 UTC") {
		t.Errorf("bootstrap row = %q", got)
	}
	row := line(t, stdout, "tok_0000000000000002")
	if got := strings.Fields(row); strings.Join(got[:4], " ") != "tok_0000000000000002 privacy-team demo dpo" || got[len(got)-1] != "-" {
		t.Errorf("privacy-team row = %q, want not revoked", row)
	}
	if strings.Contains(stdout, secret) {
		t.Errorf("tokens list prints a secret:\n%s", stdout)
	}

	// The new token works for what a dpo may do, and not for tokens.
	if code, stdout, stderr := runCLIRaw(t, secret, "--token", secret, "list", "--api", srv.URL); code != exitOK || !strings.Contains(stdout, "req-0001") {
		t.Errorf("list with the new token: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLIRaw(t, secret, "--token", secret, "tokens", "list", "--api", srv.URL)
	wantOutput{code: exitError, stderr: []string{"the role dpo may not do this (HTTP 403)"}}.check(t, code, stdout, stderr)

	// Revoke: DELETE with {}, and the token is refused at once.
	code, stdout, stderr = runCLI(t, "tokens", "revoke", "--api", srv.URL, "tok_0000000000000002")
	wantOutput{stdout: []string{"tok_0000000000000002 revoked"}}.check(t, code, stdout, stderr)
	if body, ok := srv.lastBody("DELETE", "/v1/tokens/tok_0000000000000002"); !ok || body != "{}" {
		t.Errorf("DELETE body = %q, want {}", body)
	}
	code, stdout, stderr = runCLIRaw(t, secret, "--token", secret, "list", "--api", srv.URL)
	wantOutput{code: exitError, stderr: []string{"the bearer token is not valid (HTTP 401)", "did not accept the token from --token"}}.check(t, code, stdout, stderr)
	code, stdout, stderr = runCLI(t, "tokens", "list", "--api", srv.URL)
	if row := line(t, stdout, "tok_0000000000000002"); code != exitOK || strings.HasSuffix(row, " -") {
		t.Errorf("revoked row = %q (exit %d, %s)", row, code, stderr)
	}
	code, stdout, stderr = runCLI(t, "tokens", "revoke", "--api", srv.URL, "tok_nope")
	wantOutput{code: exitError, stderr: []string{"lethectl tokens revoke: no such token (HTTP 404)"}}.check(t, code, stdout, stderr)
}

func TestTokensCreate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string // after "tokens create --api URL"
		retryAfter string
		want       wantOutput
		sent       bool // a call reached POST /v1/tokens
	}{
		{"an admin acts for every tenant", []string{"--role", "admin", "--name", "ops"}, "",
			wantOutput{stdout: []string{"tok_0000000000000002\nlethe_fake-secret-"}, stderr: []string{"admin, tenant *", "never expires"}}, true},
		{"an admin's --tenant binds nothing", []string{"--role", "admin", "--name", "ops", "--tenant", "demo", "--expires", "12h"}, "",
			wantOutput{stderr: []string{"--tenant does not bind it", "expires "}}, true},
		{"an expiry at a time", []string{"--role", "auditor", "--tenant", "demo", "--name", "audit-2027", "--expires", "2099-01-01T00:00:00Z"}, "",
			wantOutput{stderr: []string{"expires 2099-01-01 00:00 UTC"}}, true},
		{"no role", []string{"--tenant", "demo", "--name", "x"}, "",
			wantOutput{code: exitUsage, stderr: []string{"--role is required (admin, dpo, intake or auditor)"}}, false},
		{"unknown role", []string{"--role", "root", "--tenant", "demo", "--name", "x"}, "",
			wantOutput{code: exitUsage, stderr: []string{`--role must be admin, dpo, intake or auditor, not "root"`}}, false},
		{"a dpo needs a tenant", []string{"--role", "dpo", "--name", "x"}, "",
			wantOutput{code: exitUsage, stderr: []string{"--tenant is required: a dpo token acts for one tenant"}}, false},
		{"no name", []string{"--role", "intake", "--tenant", "demo"}, "",
			wantOutput{code: exitUsage, stderr: []string{"--name is required"}}, false},
		{"an expiry in the past", []string{"--role", "intake", "--tenant", "demo", "--name", "x", "--expires", "2020-01-01T00:00:00Z"}, "",
			wantOutput{code: exitUsage, stderr: []string{"--expires must be a duration (90d, 12h) or an RFC 3339 time"}}, false},
		{"a refused call prints no token", []string{"--role", "intake", "--tenant", "demo", "--name", "web-form"}, "5",
			wantOutput{code: exitError, stdout: []string{"!lethe_"}, stderr: []string{"(HTTP 429)", "try again after 5s", "!lethe_", "!shown this once"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeOrchestrator(t)
			srv.retryAfter = tt.retryAfter
			code, stdout, stderr := runCLI(t, append([]string{"tokens", "create", "--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
			if _, sent := srv.lastBody("POST", "/v1/tokens"); sent != tt.sent {
				t.Errorf("a call reached the server: %v, want %v", sent, tt.sent)
			}
		})
	}
}

func TestParseExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 9, 0, 0, 500e6, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: ""},
		{in: "90d", want: time.Date(2026, 5, 31, 9, 0, 0, 0, time.UTC)},
		{in: "1d", want: time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)},
		{in: "12h", want: time.Date(2026, 3, 2, 21, 0, 0, 0, time.UTC)},
		{in: "1h30m", want: time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)},
		{in: "2027-01-01T00:00:00Z", want: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2027-01-01T01:00:00+01:00", want: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "0d", wantErr: true},
		{in: "-5d", wantErr: true},
		{in: "-1h", wantErr: true},
		{in: "90x", wantErr: true},
		{in: "d", wantErr: true},
		{in: "2026-01-01T00:00:00Z", wantErr: true},
		{in: "2027-01-01", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseExpiry(tt.in, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
