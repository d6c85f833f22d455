package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTokenSources checks where the bearer token comes from: --token, else
// LETHE_TOKEN, else data/admin.token in the working directory, else none,
// and what a refused call says. Not parallel: it sets the environment and
// changes directory.
func TestTokenSources(t *testing.T) {
	const (
		flagTok  = "lethe_from-flag-0123456789abcdefghijklmnopqrstuv"
		envTok   = "lethe_from-env-0123456789abcdefghijklmnopqrstuvw"
		fileTok  = "lethe_from-file-0123456789abcdefghijklmnopqrstuv"
		wrongTok = "lethe_wrong-0123456789abcdefghijklmnopqrstuvwxyz"
		asDir    = "<a directory>"
	)
	tests := []struct {
		name string
		env  string // LETHE_TOKEN
		file string // data/admin.token: "" none, asDir a directory
		args []string
		// auth is the Authorization header every call must carry ("" none).
		auth string
		want wantOutput
	}{
		{
			name: "--token wins over LETHE_TOKEN and the file",
			env:  envTok, file: fileTok,
			args: []string{"--token", flagTok, "status", "req-1"},
			auth: "Bearer " + flagTok,
			want: wantOutput{stdout: []string{"accounts  answered"}},
		},
		{
			name: "--token after the command",
			env:  envTok, file: fileTok,
			args: []string{"status", "req-1", "--token", flagTok},
			auth: "Bearer " + flagTok,
			want: wantOutput{stdout: []string{"accounts  answered"}},
		},
		{
			name: "LETHE_TOKEN wins over the file",
			env:  envTok, file: fileTok,
			args: []string{"status", "req-1"},
			auth: "Bearer " + envTok,
			want: wantOutput{stdout: []string{"accounts  answered"}},
		},
		{
			name: "data/admin.token, as make run writes it",
			file: fileTok + "\n",
			args: []string{"status", "req-1"},
			auth: "Bearer " + fileTok,
			want: wantOutput{stdout: []string{"accounts  answered"}},
		},
		{
			name: "no token: the 401 says where to put one",
			args: []string{"status", "req-1"},
			want: wantOutput{code: exitError, stderr: []string{
				"lethectl status: a bearer token is required (Authorization: Bearer ...) (HTTP 401)\n",
				"lethectl: no token was sent: pass a token with --token or LETHE_TOKEN, or run lethectl from the directory of `make run` (it reads data/admin.token there)",
			}},
		},
		{
			name: "an unreadable data/admin.token: no token, and the 401 says why",
			file: asDir,
			args: []string{"status", "req-1"},
			want: wantOutput{code: exitError, stderr: []string{"(HTTP 401)", "no token was sent: data/admin.token could not be read", "--token or LETHE_TOKEN"}},
		},
		{
			name: "a token the orchestrator does not take: the 401 names where it came from",
			env:  wrongTok, file: fileTok,
			args: []string{"status", "req-1"},
			auth: "Bearer " + wrongTok,
			want: wantOutput{code: exitError, stderr: []string{
				"lethectl status: the bearer token is not valid (HTTP 401)",
				"did not accept the token from LETHE_TOKEN (unknown, expired or revoked", "--token", "data/admin.token",
			}},
		},
		{
			name: "a wrong --token is not replaced by the file",
			file: fileTok,
			args: []string{"--token", wrongTok, "list"},
			auth: "Bearer " + wrongTok,
			want: wantOutput{code: exitError, stderr: []string{"lethectl list: the bearer token is not valid (HTTP 401)", "from --token"}},
		},
		{
			name: "wait stops at a 401 rather than polling on",
			args: []string{"wait", "req-1", "--timeout", "1m"},
			want: wantOutput{code: exitError, stderr: []string{"lethectl wait: a bearer token is required", "!retrying"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeOrchestrator(t)
			srv.snapshots["req-1"] = []string{snapshot("req-1", "erasure", "fulfilled", time.Now(), "", task("accounts", "answered", "erased", 1, ""))}
			for _, tok := range []string{flagTok, envTok, fileTok} {
				srv.bearers[tok] = "dpo"
			}
			t.Chdir(t.TempDir())
			t.Setenv(envToken, tt.env)
			switch tt.file {
			case "":
			case asDir:
				if err := os.MkdirAll(tokenFile, 0o700); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tokenFile, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			code, stdout, stderr := runCLIRaw(t, "", append([]string{"--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
			if time.Since(start) > 30*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			for _, tok := range []string{flagTok, envTok, fileTok, wrongTok} {
				if strings.Contains(stdout+stderr, tok) {
					t.Errorf("a token was printed:\n%s%s", stdout, stderr)
				}
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.auth) == 0 {
				t.Fatal("no call reached the server")
			}
			for _, h := range srv.auth {
				if h != tt.auth {
					t.Errorf("Authorization = %q, want %q", h, tt.auth)
				}
			}
		})
	}
}

// TestRefusedCalls checks what a call the orchestrator refuses for its
// token's role (403) or rate (429) says.
func TestRefusedCalls(t *testing.T) {
	t.Parallel()
	const auditor = "lethe_auditor-0123456789abcdefghijklmnopqrstuvwx"
	tests := []struct {
		name       string
		token      string
		retryAfter string // the fake's, "" none
		args       []string
		want       wantOutput
	}{
		{
			name:  "a role that may not: the server's words",
			token: auditor,
			args:  []string{"deny", "req-0001", "--reason", "excessive"},
			want: wantOutput{code: exitError, stderr: []string{
				"lethectl deny: the role auditor may not do this (HTTP 403)\n",
				"the token is valid but may not do this",
				"!see its state",
			}},
		},
		{
			name:  "tokens are for admins",
			token: auditor,
			args:  []string{"tokens", "list"},
			want:  wantOutput{code: exitError, stderr: []string{"lethectl tokens list: the role auditor may not do this (HTTP 403)"}},
		},
		{
			name:  "an auditor still reads",
			token: auditor,
			args:  []string{"list"},
			want:  wantOutput{stdout: []string{"req-0001"}},
		},
		{
			name:       "over the rate: slow down, after Retry-After",
			token:      testToken,
			retryAfter: "7",
			args:       []string{"list"},
			want: wantOutput{code: exitError, stderr: []string{
				"lethectl list: too many requests: slow down (HTTP 429)\n",
				"lethectl: too many calls with this token: slow down, and try again after 7s (Retry-After)",
			}},
		},
		{
			name:       "over the rate, no Retry-After",
			token:      testToken,
			retryAfter: "-",
			args:       []string{"confirm", "req-0001"},
			want:       wantOutput{code: exitError, stderr: []string{"(HTTP 429)", "try again after a moment"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeOrchestrator(t)
			srv.addRequests(1, "demo", "pending_verification")
			srv.bearers[auditor] = "auditor"
			srv.retryAfter = tt.retryAfter
			args := append([]string{"--api", srv.URL, "--token", tt.token}, tt.args...)
			code, stdout, stderr := runCLIRaw(t, tt.token, args...)
			tt.want.check(t, code, stdout, stderr)
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if srv.requests[0]["state"] != "pending_verification" {
				t.Errorf("a refused call changed the request: %v", srv.requests[0]["state"])
			}
		})
	}
}
