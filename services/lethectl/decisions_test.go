package main

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
)

// TestConfirmDecision checks what confirm sends: the method (other unless
// told) and the note, left out when there is none.
func TestConfirmDecision(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", lifecycle.MaxNote+1)
	tests := []struct {
		name string
		args []string // after "confirm --api URL"
		want wantOutput
		sent string // the body, "" when nothing may be sent
	}{
		{"method other by default", []string{"req-0001"}, wantOutput{stdout: []string{"req-0001 open\n"}}, `{"method":"other"}`},
		{"method and note", []string{"req-0001", "--method", "document", "--note", "passport checked by the privacy team"},
			wantOutput{stdout: []string{"req-0001 open\n"}}, `{"method":"document","note":"passport checked by the privacy team"}`},
		{"flags first, blank note left out", []string{"--method", "email_code", "--note", "  ", "req-0001"},
			wantOutput{stdout: []string{"req-0001 open\n"}}, `{"method":"email_code"}`},
		{"unknown method", []string{"req-0001", "--method", "phone"},
			wantOutput{code: exitUsage, stderr: []string{`--method must be email_code, account_session, document or other, not "phone"`}}, ""},
		{"a note too long is not echoed", []string{"req-0001", "--note", long},
			wantOutput{code: exitUsage, stderr: []string{"--note is 501 bytes, more than 500", "!nnnnnnnnnn"}}, ""},
		{"help says what a note must not hold", []string{"-h"},
			wantOutput{stdout: []string{"usage: lethectl confirm ID [--method email_code|account_session|document|other] [--note TEXT]", "no personal data", "hashed in the log", "at most 500 bytes"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeOrchestrator(t)
			srv.addRequests(1, "demo", "pending_verification")
			code, stdout, stderr := runCLI(t, append([]string{"confirm", "--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
			got, sent := srv.lastBody("POST", "/v1/requests/req-0001/verify")
			switch {
			case tt.sent == "" && sent:
				t.Errorf("server received %s, want nothing", got)
			case tt.sent != "" && got != tt.sent:
				t.Errorf("server received %q, want %q", got, tt.sent)
			}
		})
	}
}

func TestDeny(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		state string // of req-0001
		args  []string
		want  wantOutput
		sent  string // the body, "" when nothing may be sent
		after string // req-0001's state afterwards
	}{
		{
			name: "refused, with a note", state: "pending_verification",
			args: []string{"req-0001", "--reason", "identity_not_established", "--note", "no answer to the code sent on 2 March"},
			want: wantOutput{stdout: []string{"req-0001 denied\n"}, stderr: []string{"lodge a complaint with a supervisory authority", "Art. 12(4)", "lethectl certificate req-0001"}},
			sent: `{"reason":"identity_not_established","note":"no answer to the code sent on 2 March"}`, after: "denied",
		},
		{
			name: "refused, no note", state: "pending_verification",
			args: []string{"--reason", "manifestly_unfounded", "req-0001"},
			want: wantOutput{stdout: []string{"req-0001 denied\n"}},
			sent: `{"reason":"manifestly_unfounded"}`, after: "denied",
		},
		{
			name: "an open request cannot be refused: the server says why", state: "open",
			args: []string{"req-0001", "--reason", "excessive"},
			want: wantOutput{code: exitError, stdout: []string{"!denied"}, stderr: []string{
				"lethectl deny: only a request waiting for its identity check can be refused: once verified, its systems have been asked (HTTP 409)",
				"see its state with: lethectl status req-0001",
			}},
			sent: `{"reason":"excessive"}`, after: "open",
		},
		{
			name: "unknown request", state: "pending_verification",
			args:  []string{"req-0404", "--reason", "excessive"},
			want:  wantOutput{code: exitError, stderr: []string{"lethectl deny: request not found (HTTP 404)"}},
			after: "pending_verification",
		},
		{
			name: "no reason", state: "pending_verification",
			args:  []string{"req-0001"},
			want:  wantOutput{code: exitUsage, stderr: []string{"--reason is required (manifestly_unfounded, excessive, identity_not_established or other)", "usage: lethectl deny ID --reason"}},
			after: "pending_verification",
		},
		{
			name: "unknown reason", state: "pending_verification",
			args:  []string{"req-0001", "--reason", "spam"},
			want:  wantOutput{code: exitUsage, stderr: []string{`--reason must be manifestly_unfounded, excessive, identity_not_established or other, not "spam"`}},
			after: "pending_verification",
		},
		{
			name: "no id", state: "pending_verification",
			args:  []string{"--reason", "excessive"},
			want:  wantOutput{code: exitUsage, stderr: []string{"missing argument"}},
			after: "pending_verification",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeOrchestrator(t)
			srv.addRequests(1, "demo", tt.state)
			code, stdout, stderr := runCLI(t, append([]string{"deny", "--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
			id := "req-0001"
			if len(tt.args) > 0 && strings.HasPrefix(tt.args[0], "req-") {
				id = tt.args[0]
			}
			got, sent := srv.lastBody("POST", "/v1/requests/"+id+"/deny")
			switch {
			case tt.sent == "" && sent && code == exitUsage:
				t.Errorf("server received %s, want nothing", got)
			case tt.sent != "" && got != tt.sent:
				t.Errorf("server received %q, want %q", got, tt.sent)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if s := srv.requests[0]["state"]; s != tt.after {
				t.Errorf("req-0001 is %v, want %s", s, tt.after)
			}
		})
	}
}

// TestRefusedRequests checks status, wait and list on requests that ended
// denied or expired: no system was asked.
func TestRefusedRequests(t *testing.T) {
	t.Parallel()
	deadline := time.Now().Add(20 * 24 * time.Hour)
	ended := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	pending := snapshot("req-1", "erasure", "pending_verification", deadline, "", task("accounts", "pending", "", 0, ""))
	denied := snapshot("req-1", "erasure", "denied", deadline, ended, task("accounts", "pending", "", 0, ""))
	expired := snapshot("req-1", "export", "expired", deadline, ended, task("accounts", "pending", "", 0, ""))

	t.Run("status of a denied request", func(t *testing.T) {
		t.Parallel()
		srv := newFakeOrchestrator(t)
		srv.snapshots["req-1"] = []string{denied}
		code, stdout, stderr := runCLI(t, "status", "--api", srv.URL, "req-1")
		wantOutput{stdout: []string{"(met)", "no system was asked: the request was refused before its identity was checked", "its certificate says who refused it, when and why: lethectl certificate req-1", "!SYSTEM"}}.check(t, code, stdout, stderr)
		if got := strings.Join(strings.Fields(line(t, stdout, "state ")), " "); got != "state denied" {
			t.Errorf("state line = %q", got)
		}
	})
	t.Run("status of an expired request", func(t *testing.T) {
		t.Parallel()
		srv := newFakeOrchestrator(t)
		srv.snapshots["req-1"] = []string{expired}
		code, stdout, stderr := runCLI(t, "status", "--api", srv.URL, "req-1")
		wantOutput{stdout: []string{"the subject's identity was never checked, and the request expired", "its certificate: lethectl certificate req-1", "!SYSTEM", "!who refused"}}.check(t, code, stdout, stderr)
		if got := strings.Join(strings.Fields(line(t, stdout, "state ")), " "); got != "state expired" {
			t.Errorf("state line = %q", got)
		}
	})
	t.Run("status of a pending request says how to confirm or deny", func(t *testing.T) {
		t.Parallel()
		srv := newFakeOrchestrator(t)
		srv.snapshots["req-1"] = []string{pending}
		code, stdout, stderr := runCLI(t, "status", "--api", srv.URL, "req-1")
		wantOutput{stdout: []string{"lethectl confirm req-1 --method", "lethectl deny req-1 --reason"}}.check(t, code, stdout, stderr)
	})

	for _, tt := range []struct {
		name      string
		snapshots []string
		summary   string
	}{
		{"wait ends at a refusal", []string{pending, denied}, "denied in "},
		{"wait ends at an expiry", []string{expired}, "expired in "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeOrchestrator(t)
			srv.snapshots["req-1"] = tt.snapshots
			code, stdout, stderr := runCLI(t, "wait", "--api", srv.URL, "req-1", "--interval", "2ms", "--timeout", "5s")
			wantOutput{code: exitError, stdout: []string{tt.summary, "no system was asked\n"}, stderr: []string{"lethectl certificate req-1", "!timed out", "!download the bundle"}}.check(t, code, stdout, stderr)
		})
	}

	t.Run("list --state denied", func(t *testing.T) {
		t.Parallel()
		srv := newFakeOrchestrator(t)
		srv.addRequests(2, "demo", "open")
		srv.addRequests(1, "demo", "denied")
		srv.addRequests(1, "demo", "expired")
		for state, id := range map[string]string{"denied": "req-0003", "expired": "req-0004"} {
			code, stdout, stderr := runCLI(t, "list", "--api", srv.URL, "--state", state)
			wantOutput{stdout: []string{id + " ", " " + state + " ", "!req-0001"}}.check(t, code, stdout, stderr)
		}
	})
}
