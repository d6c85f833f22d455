package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/exportbundle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

// wantOutput checks the exit code and that each stdout/stderr fragment is
// there (or, prefixed with "!", is not).
type wantOutput struct {
	code   int
	stdout []string
	stderr []string
}

func (w wantOutput) check(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if code != w.code {
		t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, w.code, stdout, stderr)
	}
	checkFragments(t, "stdout", stdout, w.stdout)
	checkFragments(t, "stderr", stderr, w.stderr)
}

func checkFragments(t *testing.T, name, got string, want []string) {
	t.Helper()
	for _, f := range want {
		if neg, ok := strings.CutPrefix(f, "!"); ok {
			if strings.Contains(got, neg) {
				t.Errorf("%s contains %q, it should not:\n%s", name, neg, got)
			}
		} else if !strings.Contains(got, f) {
			t.Errorf("%s lacks %q:\n%s", name, f, got)
		}
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want wantOutput
		// sent is the body the server must have received; nil means no
		// request may reach the server at all.
		sent map[string]any
	}{
		{
			name: "erasure by email waits for verification",
			args: []string{"--type", "erasure", "--email", "person-0001@example.com"},
			want: wantOutput{
				stdout: []string{"req-0001\nstate pending_verification, deadline ", " left)"},
				stderr: []string{"lethectl confirm req-0001"},
			},
			sent: map[string]any{
				"type": "erasure", "tenant": "demo", "verified": false,
				"subject": map[string]any{"email": "person-0001@example.com"},
			},
		},
		{
			name: "verified export by user id with a received time",
			args: []string{"--type", "export", "--tenant", "acme", "--user-id", "user-0002", "--received-at", "2025-01-31T09:00:00Z", "--verified"},
			want: wantOutput{
				// 31 Jan + 1 month, as the (fake) server computes it; long past.
				stdout: []string{"req-0001\nstate open, deadline 2025-03-03 09:00 UTC (overdue by "},
				stderr: []string{"!confirm"},
			},
			sent: map[string]any{
				"type": "export", "tenant": "acme", "verified": true, "received_at": "2025-01-31T09:00:00Z",
				"subject": map[string]any{"user_id": "user-0002"},
			},
		},
		{
			name: "json prints the server's reply",
			args: []string{"--json", "--type", "erasure", "--email", "person-0003@example.com"},
			want: wantOutput{stdout: []string{`"id": "req-0001"`, `"state": "pending_verification"`, `"deadline": "`}},
			sent: map[string]any{
				"type": "erasure", "tenant": "demo", "verified": false,
				"subject": map[string]any{"email": "person-0003@example.com"},
			},
		},
		{
			name: "server rejects the email: its message is shown, the address is not",
			args: []string{"--type", "erasure", "--email", "person-0004.example.com"},
			want: wantOutput{
				code:   exitError,
				stderr: []string{"lethectl submit: invalid email address (HTTP 400)", "!person-0004"},
				stdout: []string{"!req-"},
			},
			sent: map[string]any{
				"type": "erasure", "tenant": "demo", "verified": false,
				"subject": map[string]any{"email": "person-0004.example.com"},
			},
		},
		{
			name: "neither email nor user id",
			args: []string{"--type", "erasure"},
			want: wantOutput{code: exitUsage, stderr: []string{"give --email or --user-id", "usage: lethectl submit"}},
		},
		{
			name: "blank email",
			args: []string{"--type", "erasure", "--email", "  "},
			want: wantOutput{code: exitUsage, stderr: []string{"give --email or --user-id"}},
		},
		{
			name: "missing type",
			args: []string{"--email", "person-0001@example.com"},
			want: wantOutput{code: exitUsage, stderr: []string{"--type is required"}},
		},
		{
			name: "bad type",
			args: []string{"--type", "delete", "--email", "person-0001@example.com"},
			want: wantOutput{code: exitUsage, stderr: []string{`--type must be erasure, export, consent_withdrawal, objection or restriction, not "delete"`}},
		},
		{
			name: "bad received time is not echoed",
			args: []string{"--type", "erasure", "--email", "person-0001@example.com", "--received-at", "31/01/2025"},
			want: wantOutput{code: exitUsage, stderr: []string{"--received-at must be RFC 3339", "!31/01/2025"}},
		},
		{
			name: "stray argument",
			args: []string{"--type", "erasure", "--email", "person-0001@example.com", "extra"},
			want: wantOutput{code: exitUsage, stderr: []string{"too many arguments"}},
		},
		{
			name: "unknown flag",
			args: []string{"--type", "erasure", "--mail", "person-0001@example.com"},
			want: wantOutput{code: exitUsage, stderr: []string{"flag provided but not defined: -mail", "usage: lethectl submit"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeOrchestrator(t)
			code, stdout, stderr := runCLI(t, append([]string{"submit", "--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if tt.sent == nil {
				if len(srv.submitted) != 0 {
					t.Fatalf("server received %v, want nothing", srv.submitted)
				}
				return
			}
			if len(srv.submitted) != 1 {
				t.Fatalf("server received %d submissions, want 1", len(srv.submitted))
			}
			if got, want := mustJSON(t, srv.submitted[0]), mustJSON(t, tt.sent); got != want {
				t.Errorf("server received %s, want %s", got, want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfirm(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	if code, _, stderr := runCLI(t, "submit", "--api", srv.URL, "--type", "erasure", "--email", "person-0001@example.com"); code != 0 {
		t.Fatalf("submit: exit %d: %s", code, stderr)
	}
	// In order: the first confirmation opens the request, the second is a
	// conflict because it is no longer pending.
	steps := []struct {
		name string
		id   string
		want wantOutput
	}{
		{"pending request opens", "req-0001", wantOutput{stdout: []string{"req-0001 open\n"}}},
		{"second confirmation conflicts", "req-0001", wantOutput{
			code:   exitError,
			stderr: []string{"lethectl confirm: request is open, not pending verification (HTTP 409)", "lethectl status req-0001"},
		}},
		{"unknown request", "req-9999", wantOutput{code: exitError, stderr: []string{"request not found (HTTP 404)"}}},
	}
	for _, s := range steps {
		code, stdout, stderr := runCLI(t, "confirm", "--api", srv.URL, s.id)
		t.Run(s.name, func(t *testing.T) { s.want.check(t, code, stdout, stderr) })
	}
	code, stdout, stderr := runCLI(t, "confirm", "--api", srv.URL)
	wantOutput{code: exitUsage, stderr: []string{"missing argument"}}.check(t, code, stdout, stderr)
}

func TestExtend(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	if code, _, stderr := runCLI(t, "submit", "--api", srv.URL, "--type", "erasure", "--email", "person-0001@example.com"); code != 0 {
		t.Fatalf("submit: exit %d: %s", code, stderr)
	}
	steps := []struct {
		name string
		args []string
		want wantOutput
	}{
		{"no reason", []string{"req-0001"}, wantOutput{code: exitUsage, stderr: []string{"--reason is required"}}},
		{"blank reason", []string{"--reason", "  ", "req-0001"}, wantOutput{code: exitUsage, stderr: []string{"--reason is required"}}},
		{"no id", []string{"--reason", "volume"}, wantOutput{code: exitUsage, stderr: []string{"missing argument"}}},
		{"extended", []string{"--reason", "Archives must be restored", "req-0001"},
			wantOutput{stdout: []string{"req-0001 deadline extended from 2025-02-28 23:59 UTC to 2025-04-30 23:59 UTC"}}},
		{"second time", []string{"--reason", "again", "req-0001"}, wantOutput{
			code:   exitError,
			stderr: []string{"already extended", "(HTTP 409)", "lethectl status req-0001"},
		}},
		{"unknown request", []string{"--reason", "volume", "req-9999"}, wantOutput{code: exitError, stderr: []string{"request not found (HTTP 404)"}}},
	}
	for _, s := range steps {
		code, stdout, stderr := runCLI(t, append([]string{"extend", "--api", srv.URL}, s.args...)...)
		t.Run(s.name, func(t *testing.T) { s.want.check(t, code, stdout, stderr) })
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	tests := []struct {
		name string
		args []string
		want wantOutput
	}{
		{"utc, future", []string{"--received-at", "2028-01-31T10:00:00Z"}, wantOutput{stdout: []string{
			"received     2028-01-31 10:00 UTC",
			"deadline     2028-02-29 23:59 UTC  one month (GDPR Art. 12(3))\n",
			"if extended  2028-04-29 23:59 UTC  two further months, once, with notice\n",
			"counted in   days of UTC\n",
		}}},
		{"tenant zone and roll", []string{"--tenant", "acme-fr", "--received-at", "2028-04-08T09:00:00+02:00"}, wantOutput{stdout: []string{
			"deadline     2028-05-09 21:59 UTC  one month (GDPR Art. 12(3)), end of Tue 9 May 2028 in Europe/Paris",
			"if extended  2028-07-10 21:59 UTC  two further months, once, with notice, end of Mon 10 Jul 2028 in Europe/Paris",
			"days of Europe/Paris; a deadline on a weekend or public holiday moves to the next working day",
		}}},
		{"json", []string{"--json", "--received-at", "2028-01-31T10:00:00Z"}, wantOutput{stdout: []string{`"extended_deadline": "2028-04-29T23:59:59Z"`}}},
		{"bad time", []string{"--received-at", "tomorrow"}, wantOutput{code: exitUsage, stderr: []string{"--received-at must be RFC 3339"}}},
		{"refused", []string{"--tenant", "ACME", "--received-at", "2028-01-31T10:00:00Z"}, wantOutput{code: exitError, stderr: []string{"tenant must be", "(HTTP 400)"}}},
		{"stray argument", []string{"req-1"}, wantOutput{code: exitUsage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"deadline", "--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}

// Fixtures for request snapshots, as the orchestrator would send them.

func task(system, state, outcome string, attempts int, more string) string {
	s := fmt.Sprintf(`{"system":%q,"state":%q,"outcome":%q,"attempts":%d,"legal_basis":"","retain_until":"","counts":{},"remaining":0,"detail":""`,
		system, state, outcome, attempts)
	if more != "" {
		// Later keys win in encoding/json, so more overrides the defaults.
		s += "," + more
	}
	return s + "}"
}

func snapshot(id, typ, state string, deadline time.Time, completed string, tasks ...string) string {
	c := ""
	if completed != "" {
		c = fmt.Sprintf(`,"completed_at":%q`, completed)
	}
	return fmt.Sprintf(`{"id":%q,"tenant":"demo","type":%q,"state":%q,"source":"api","received_at":"2025-01-31T09:00:00Z",`+
		`"deadline":%q,"created_at":"2025-01-31T09:00:01Z"%s,"tasks":[%s],"future_field":"kept"}`,
		id, typ, state, deadline.UTC().Format(time.RFC3339), c, strings.Join(tasks, ","))
}

// line returns the line of text that starts with prefix.
func line(t *testing.T, text, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starts with %q in:\n%s", prefix, text)
	return ""
}

func TestStatus(t *testing.T) {
	t.Parallel()
	now := time.Now()
	answered := `"answered_at":"2025-02-01T10:30:00Z"`
	srv := newFakeOrchestrator(t)
	srv.snapshots["req-open"] = []string{snapshot("req-open", "erasure", "open", now.Add(10*24*time.Hour+90*time.Minute), "",
		task("accounts", "answered", "erased", 1, answered+`,"counts":{"profile":1,"login_history":12}`),
		task("billing", "answered", "retained", 1, answered+`,"legal_basis":"accounting law: invoices kept 10 years","retain_until":"2035-12-31T00:00:00Z","counts":{"invoice":3},"remaining":3`),
		task("emailanalytics", "dead_letter", "", 5, `"detail":"vendor API answered 503 five times"`),
		task("recordings", "published", "", 1, ""),
	)}
	srv.snapshots["req-late"] = []string{snapshot("req-late", "export", "open", now.Add(-(2*24*time.Hour + 90*time.Minute)), "",
		task("accounts", "retrying", "", 2, `"detail":"connection reset"`))}
	srv.snapshots["req-done"] = []string{snapshot("req-done", "erasure", "fulfilled", now.Add(-time.Hour), now.Add(-3*time.Hour).UTC().Format(time.RFC3339),
		task("accounts", "answered", "not_found", 1, answered))}
	srv.snapshots["req-new"] = []string{`{"id":"req-new","tenant":"demo","type":"erasure","state":"pending_verification","deadline":"2099-01-01T00:00:00Z","tasks":[]}`}
	// Billing keeps invoices by law: its task is deferred to the end of the
	// retention, when a follow-up erasure runs.
	srv.snapshots["req-kept"] = []string{snapshot("req-kept", "erasure", "partially_retained", now.Add(20*24*time.Hour), now.Add(-time.Hour).UTC().Format(time.RFC3339),
		task("accounts", "answered", "erased", 1, answered),
		task("billing", "deferred", "retained", 1, answered+`,"legal_basis":"tax law","retain_until":"2031-12-31T00:00:00Z","next_attempt_at":"2031-12-31T00:00:00Z","counts":{"invoice":3},"remaining":3`),
	)}

	t.Run("deferred erasure", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "status", "--api", srv.URL, "req-kept")
		wantOutput{stdout: []string{"(met)"}}.check(t, code, stdout, stderr)
		if got := strings.Fields(line(t, stdout, "state ")); strings.Join(got, " ") != "state partially_retained" {
			t.Errorf("state line = %q", got)
		}
		row := line(t, stdout, "billing ")
		if got := strings.Join(strings.Fields(row)[:4], " "); got != "billing deferred retained 1" {
			t.Errorf("billing row starts %q, want state deferred and outcome retained", got)
		}
		if want := "retained under tax law until 2031-12-31, 3 records remain; follow-up erasure on 2031-12-31"; !strings.Contains(row, want) {
			t.Errorf("billing row %q lacks %q", row, want)
		}
	})

	t.Run("rows per system", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "status", "--api", srv.URL, "req-open")
		wantOutput{stdout: []string{"request   req-open", "type      erasure", "tenant    demo", "state     open"}}.check(t, code, stdout, stderr)
		if got := line(t, stdout, "deadline"); !strings.HasSuffix(got, "(10d 1h left)") {
			t.Errorf("deadline line = %q, want the time left", got)
		}
		header := line(t, stdout, "SYSTEM")
		for _, col := range []string{"STATE", "OUTCOME", "ATTEMPTS", "ANSWERED", "RECORDS", "NOTE"} {
			if !strings.Contains(header, col) {
				t.Errorf("header %q lacks %s", header, col)
			}
		}
		rows := []struct{ system, want string }{
			{"accounts ", "2025-02-01 10:30 UTC"},
			{"accounts ", "login_history=12 profile=1"},
			{"billing ", "retained under accounting law: invoices kept 10 years until 2035-12-31, 3 records remain"},
			{"billing ", "invoice=3"},
			{"emailanalytics ", "dead_letter"},
			{"emailanalytics ", "vendor API answered 503 five times"},
			{"recordings ", "published"},
		}
		for _, r := range rows {
			if got := line(t, stdout, r.system); !strings.Contains(got, r.want) {
				t.Errorf("row %q lacks %q", got, r.want)
			}
		}
		if got := strings.Fields(line(t, stdout, "accounts ")); strings.Join(got[:4], " ") != "accounts answered erased 1" {
			t.Errorf("accounts row = %q", got)
		}
		// Unanswered cells read "-", and a published row has no note.
		if got := strings.Fields(line(t, stdout, "recordings ")); strings.Join(got, " ") != "recordings published - 1 - - -" {
			t.Errorf("recordings row = %q", got)
		}
	})

	cases := []struct {
		name string
		args []string
		want wantOutput
	}{
		{"overdue", []string{"req-late"}, wantOutput{stdout: []string{"(overdue by 2d 1h)", "connection reset"}}},
		{"finished before its deadline", []string{"req-done"}, wantOutput{stdout: []string{"(met)", "completed ", "not_found"}}},
		{"pending verification", []string{"req-new"}, wantOutput{stdout: []string{"pending_verification", "lethectl confirm req-new"}}},
		{"flag after the id", []string{"req-open", "--json"}, wantOutput{stdout: []string{`"future_field": "kept"`, `"legal_basis": "accounting law`}}},
		{"unknown request", []string{"req-nope"}, wantOutput{code: exitError, stderr: []string{"lethectl status: request not found (HTTP 404)"}}},
		{"two ids", []string{"req-open", "req-late"}, wantOutput{code: exitUsage, stderr: []string{"too many arguments"}}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, append([]string{"status", "--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
		})
	}

	t.Run("json is the server's reply", func(t *testing.T) {
		t.Parallel()
		code, stdout, _ := runCLI(t, "status", "--api", srv.URL, "--json", "req-open")
		var got map[string]any
		if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil {
			t.Fatalf("exit %d, stdout not JSON:\n%s", code, stdout)
		}
		if tasks, _ := got["tasks"].([]any); len(tasks) != 4 {
			t.Errorf("tasks = %v, want 4", got["tasks"])
		}
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	srv.addRequests(7, "demo", "open")
	srv.addRequests(2, "acme", "open")
	srv.addRequests(1, "demo", "fulfilled")

	tests := []struct {
		name        string
		args        []string
		wantIDs     []string
		wantCursors []string // cursors the server saw, in order
		want        wantOutput
	}{
		{
			name:        "all pages",
			args:        []string{"--state", "open", "--tenant", "demo", "--limit", "3", "--all"},
			wantIDs:     []string{"req-0001", "req-0002", "req-0003", "req-0004", "req-0005", "req-0006", "req-0007"},
			wantCursors: []string{"", "c3", "c6"},
			want:        wantOutput{stderr: []string{"!more requests"}},
		},
		{
			name:        "one page says how to go on",
			args:        []string{"--tenant", "demo", "--limit", "3"},
			wantIDs:     []string{"req-0001", "req-0002", "req-0003"},
			wantCursors: []string{""},
			want:        wantOutput{stderr: []string{"--cursor c3"}},
		},
		{
			name:        "from a cursor to the end",
			args:        []string{"--tenant", "demo", "--limit", "3", "--cursor", "c6", "--all"},
			wantIDs:     []string{"req-0007", "req-0010"},
			wantCursors: []string{"c6"},
		},
		{
			name:        "filter by state",
			args:        []string{"--state", "fulfilled"},
			wantIDs:     []string{"req-0010"},
			wantCursors: []string{""},
		},
		{
			name:        "nothing matches",
			args:        []string{"--state", "failed"},
			wantCursors: []string{""},
			want:        wantOutput{stdout: []string{"no requests"}},
		},
		{
			name: "unknown state",
			args: []string{"--state", "done"},
			want: wantOutput{code: exitUsage, stderr: []string{`--state must be pending_verification, open, fulfilled, partially_retained, failed, denied or expired, not "done"`}},
		},
		{
			name:        "server rejects the cursor",
			args:        []string{"--cursor", "zz"},
			wantCursors: []string{"zz"},
			want:        wantOutput{code: exitError, stderr: []string{"lethectl list: bad cursor (HTTP 400)"}},
		},
	}
	for _, tt := range tests {
		// Sequential: the cursors the server saw are checked per case.
		srv.mu.Lock()
		srv.cursors = nil
		srv.mu.Unlock()
		code, stdout, stderr := runCLI(t, append([]string{"list", "--api", srv.URL}, tt.args...)...)
		t.Run(tt.name, func(t *testing.T) {
			tt.want.check(t, code, stdout, stderr)
			ids := regexp.MustCompile(`(?m)^req-\d{4}`).FindAllString(stdout, -1)
			if strings.Join(ids, " ") != strings.Join(tt.wantIDs, " ") {
				t.Errorf("listed %v, want %v\n%s", ids, tt.wantIDs, stdout)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if strings.Join(srv.cursors, ",") != strings.Join(tt.wantCursors, ",") {
				t.Errorf("server saw cursors %q, want %q", srv.cursors, tt.wantCursors)
			}
			if len(tt.wantIDs) > 0 {
				row := line(t, stdout, tt.wantIDs[0])
				if !strings.Contains(row, "erasure") || !strings.Contains(row, "UTC") {
					t.Errorf("row %q lacks type or times", row)
				}
			}
		})
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	deadline := time.Now().Add(20 * 24 * time.Hour)
	retained := `"legal_basis":"tax law","retain_until":"2031-12-31"`
	tests := []struct {
		name      string
		snapshots []string
		failures  []int // statuses the first polls fail with
		args      []string
		wantCode  int
		// wantLines is stdout line by line; the last line is a regexp for
		// the summary (it holds the elapsed time).
		wantLines []string
		stderr    []string
	}{
		{
			name: "partially retained after a retry",
			snapshots: []string{
				snapshot("req-1", "erasure", "open", deadline, "", task("accounts", "published", "", 1, ""), task("billing", "published", "", 1, "")),
				snapshot("req-1", "erasure", "open", deadline, "", task("accounts", "published", "", 1, ""), task("billing", "published", "", 1, "")),
				snapshot("req-1", "erasure", "open", deadline, "", task("accounts", "answered", "erased", 1, ""), task("billing", "retrying", "", 2, `"detail":"timeout"`)),
				snapshot("req-1", "erasure", "partially_retained", deadline, "", task("accounts", "answered", "erased", 1, ""), task("billing", "answered", "retained", 2, retained)),
			},
			wantLines: []string{
				"request req-1 (erasure, tenant demo): open",
				"accounts: published",
				"billing: published",
				"accounts: published -> answered (erased)",
				"billing: published -> retrying (attempt 2): timeout",
				"billing: retrying -> answered (retained under tax law until 2031-12-31)",
				"request: open -> partially_retained",
				`^partially_retained in \d+(\.\d)?m?s: 2 systems: 1 erased, 1 retained$`,
			},
		},
		{
			name: "fulfilled export points at the download",
			snapshots: []string{
				snapshot("req-1", "export", "open", deadline, "", task("accounts", "pending", "", 0, "")),
				snapshot("req-1", "export", "open", deadline, "", task("accounts", "published", "", 1, "")),
				snapshot("req-1", "export", "fulfilled", deadline, "", task("accounts", "answered", "exported", 1, "")),
			},
			wantLines: []string{
				"request req-1 (export, tenant demo): open",
				"accounts: pending",
				"accounts: pending -> published",
				"accounts: published -> answered (exported)",
				"request: open -> fulfilled",
				`^fulfilled in .+: 1 system: 1 exported$`,
			},
			stderr: []string{"lethectl export download req-1 -o export.zip"},
		},
		{
			// The request has ended; billing's deferred task is not awaited:
			// its follow-up erasure runs years later.
			name: "partially retained with a deferred erasure",
			snapshots: []string{
				snapshot("req-1", "erasure", "open", deadline, "", task("accounts", "answered", "erased", 1, ""), task("billing", "published", "", 1, "")),
				snapshot("req-1", "erasure", "partially_retained", deadline, "", task("accounts", "answered", "erased", 1, ""),
					task("billing", "deferred", "retained", 1, retained+`,"next_attempt_at":"2031-12-31T00:00:00Z"`)),
			},
			wantLines: []string{
				"request req-1 (erasure, tenant demo): open",
				"accounts: answered (erased)",
				"billing: published",
				"billing: published -> deferred (retained under tax law until 2031-12-31, follow-up erasure on 2031-12-31)",
				"request: open -> partially_retained",
				`^partially_retained in .+: 2 systems: 1 erased, 1 retained; follow-up erasure of billing on 2031-12-31$`,
			},
		},
		{
			name: "failed after dead letter",
			snapshots: []string{
				snapshot("req-1", "erasure", "open", deadline, "", task("accounts", "retrying", "", 4, `"detail":"refused"`), task("recordings", "answered", "not_found", 1, "")),
				snapshot("req-1", "erasure", "failed", deadline, "", task("accounts", "dead_letter", "failed", 5, `"detail":"refused five times"`), task("recordings", "answered", "not_found", 1, "")),
			},
			wantCode: exitError,
			wantLines: []string{
				"request req-1 (erasure, tenant demo): open",
				"accounts: retrying (attempt 4): refused",
				"recordings: answered (not_found)",
				"accounts: retrying -> dead_letter (failed): refused five times",
				"request: open -> failed",
				`^failed in .+: 2 systems: 1 not_found, 1 failed$`,
			},
		},
		{
			name:      "already finished",
			snapshots: []string{snapshot("req-1", "erasure", "fulfilled", deadline, "", task("accounts", "answered", "erased", 1, ""))},
			wantLines: []string{
				"request req-1 (erasure, tenant demo): fulfilled",
				"accounts: answered (erased)",
				`^fulfilled in .+: 1 system: 1 erased$`,
			},
		},
		{
			name:      "times out",
			snapshots: []string{snapshot("req-1", "erasure", "open", deadline, "", task("accounts", "answered", "erased", 1, ""), task("billing", "published", "", 1, ""))},
			args:      []string{"--timeout", "150ms"},
			wantCode:  exitTimeout,
			wantLines: []string{
				"request req-1 (erasure, tenant demo): open",
				"accounts: answered (erased)",
				"billing: published",
			},
			stderr: []string{"timed out after 150ms: request still open, 1 of 2 systems answered"},
		},
		{
			name:      "pending verification is pointed out, then times out",
			snapshots: []string{`{"id":"req-1","tenant":"demo","type":"erasure","state":"pending_verification","deadline":"2099-01-01T00:00:00Z","tasks":[]}`},
			args:      []string{"--timeout", "100ms"},
			wantCode:  exitTimeout,
			wantLines: []string{"request req-1 (erasure, tenant demo): pending_verification"},
			stderr:    []string{"nothing happens until lethectl confirm req-1", "timed out"},
		},
		{
			name:      "server errors are retried",
			failures:  []int{503, 503, 502},
			snapshots: []string{snapshot("req-1", "erasure", "fulfilled", deadline, "", task("accounts", "answered", "erased", 1, ""))},
			wantLines: []string{
				"request req-1 (erasure, tenant demo): fulfilled",
				"accounts: answered (erased)",
				`^fulfilled in .+$`,
			},
			// Said once per distinct error, not once per poll.
			stderr: []string{"store unavailable (HTTP 503) (retrying)", "store unavailable (HTTP 502) (retrying)"},
		},
		{
			name:      "over the rate limit, it slows down and polls on",
			failures:  []int{429, 429},
			snapshots: []string{snapshot("req-1", "erasure", "fulfilled", deadline, "", task("accounts", "answered", "erased", 1, ""))},
			wantLines: []string{
				"request req-1 (erasure, tenant demo): fulfilled",
				"accounts: answered (erased)",
				`^fulfilled in .+$`,
			},
			stderr: []string{"store unavailable (HTTP 429) (slowing down)", "!lethectl: too many"},
		},
		{
			name:     "unknown request",
			wantCode: exitError,
			stderr:   []string{"lethectl wait: request not found (HTTP 404)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeOrchestrator(t)
			srv.snapshots["req-1"] = tt.snapshots
			srv.failures["req-1"] = tt.failures
			args := append([]string{"wait", "--api", srv.URL, "req-1", "--interval", "2ms"}, tt.args...)
			code, stdout, stderr := runCLI(t, args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if stdout == "" {
				got = nil
			}
			if len(got) != len(tt.wantLines) {
				t.Fatalf("stdout has %d lines, want %d:\n%s", len(got), len(tt.wantLines), stdout)
			}
			for i, want := range tt.wantLines {
				if strings.HasPrefix(want, "^") {
					if !regexp.MustCompile(want).MatchString(got[i]) {
						t.Errorf("line %d = %q, want match for %s", i+1, got[i], want)
					}
				} else if got[i] != want {
					t.Errorf("line %d = %q, want %q", i+1, got[i], want)
				}
			}
			checkFragments(t, "stderr", stderr, tt.stderr)
			if n := strings.Count(stderr, "(retrying)"); n != 0 && n != 2 {
				t.Errorf("retry warned %d times, want once per distinct error:\n%s", n, stderr)
			}
			if strings.Contains(stdout, "\x1b[") {
				t.Errorf("escape sequences in non-terminal output:\n%q", stdout)
			}
		})
	}
}

func TestWaitFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"wait"},
		{"wait", "req-1", "--timeout", "0s"},
		{"wait", "req-1", "--interval", "soon"},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "usage: lethectl wait") {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, stderr)
		}
	}
}

func TestLiveProgress(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := &liveProgress{w: &buf}
	r := api.Request{ID: "req-1", Type: "erasure", Tenant: "demo", State: "open", Tasks: []api.Task{
		{System: "accounts", State: "published", Attempts: 1},
		{System: "emailanalytics", State: "published", Attempts: 1},
	}}
	p.update(r, 100*time.Millisecond)
	first := buf.String()
	if strings.Contains(first, "\x1b[3A") {
		t.Errorf("first draw moves the cursor up: %q", first)
	}
	if !strings.Contains(first, "\r\x1b[2K  accounts        published\n\r\x1b[2K  emailanalytics  published\n") {
		t.Errorf("first draw lacks an aligned accounts line: %q", first)
	}

	buf.Reset()
	r.Tasks[0] = api.Task{System: "accounts", State: "answered", Outcome: "erased", Attempts: 1}
	p.update(r, 600*time.Millisecond)
	second := buf.String()
	// Back up over the header and both systems, then redraw them in place.
	if !strings.HasPrefix(second, "\x1b[3A") {
		t.Errorf("redraw does not move up 3 lines: %q", second)
	}
	for _, want := range []string{"open  600ms\n", "\r\x1b[2K  accounts        answered    (erased)\n"} {
		if !strings.Contains(second, want) {
			t.Errorf("redraw lacks %q: %q", want, second)
		}
	}
	if n := strings.Count(second, "\n"); n != 3 {
		t.Errorf("redraw wrote %d lines, want 3", n)
	}

	// After something else was printed, the block starts afresh below it.
	buf.Reset()
	p.detach()
	p.update(r, time.Second)
	if strings.Contains(buf.String(), "\x1b[3A") {
		t.Errorf("draw after detach moves up: %q", buf.String())
	}
}

// testBundle is a real export bundle of one system, with the digest of
// its manifest.
func testBundle(t *testing.T) ([]byte, string) {
	t.Helper()
	records := []byte(`{"account":{"profile":[{"email":"person-0001@example.com"}]}}`)
	video := bytes.Repeat([]byte("frame "), 100000)
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	m := &exportbundle.Manifest{Format: exportbundle.Format, RequestID: "req-1", Tenant: "demo", GeneratedAt: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		Systems: []exportbundle.System{{Name: "accounts", Outcome: "exported", Categories: []string{"account", "recordings"}, Counts: map[string]int64{"profile": 1},
			Records: &exportbundle.File{Path: exportbundle.RecordsPath("accounts"), Size: int64(len(records)), SHA256: sum(records), Ref: "r"},
			Files: []exportbundle.File{{Path: exportbundle.FilePath("accounts", "talk.mp4"), Category: "recordings", ContentType: "video/mp4",
				Size: int64(len(video)), SHA256: sum(video), Ref: "v"}}}}}
	blobs := map[string][]byte{"r": records, "v": video}
	var buf bytes.Buffer
	err := exportbundle.Write(t.Context(), &buf, m, func(_ context.Context, ref string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blobs[ref])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), hex.EncodeToString(d[:])
}

func TestExport(t *testing.T) {
	t.Parallel()
	bundle, digest := testBundle(t)
	srv := newFakeOrchestrator(t)
	srv.bundles["req-1"], srv.manifests["req-1"] = bundle, digest
	// A bundle one byte off its manifest, and one whose certificate quotes
	// another manifest.
	bad := bytes.Clone(bundle)
	bad[bytes.Index(bad, []byte("frame "))+3] ^= 1
	srv.bundles["req-bad"], srv.manifests["req-bad"] = bad, digest
	srv.bundles["req-other"], srv.manifests["req-other"] = bundle, strings.Repeat("0", 64)

	t.Run("to a file, checked", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "bundle.zip")
		code, stdout, stderr := runCLI(t, "export", "download", "--api", srv.URL, "req-1", "-o", out)
		wantOutput{stderr: []string{"to " + out + ": 1 systems, 2 files, every sha256 matches the manifest", "manifest sha256 " + digest,
			"the certificate of req-1 quotes this manifest"}}.check(t, code, stdout, stderr)
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, bundle) {
			t.Errorf("file holds %d bytes, want the bundle's %d", len(got), len(bundle))
		}
		if stdout != "" {
			t.Errorf("bundle also went to stdout: %q", stdout)
		}
		fi, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("file mode %v, want 0600: the bundle is personal data", fi.Mode().Perm())
		}
	})
	for _, tt := range []struct{ id, want string }{
		{"req-bad", "the bundle does not match its manifest"},
		{"req-other", "quotes manifest"},
	} {
		t.Run(tt.id+" is refused", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := filepath.Join(dir, "bundle.zip")
			code, _, stderr := runCLI(t, "export", "download", "--api", srv.URL, tt.id, "-o", out)
			if code != exitError || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q, want 1 and %q", code, stderr, tt.want)
			}
			if tt.id == "req-bad" {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("a bundle that does not check left files: %v", entries)
				}
			}
		})
	}
	t.Run("to stdout", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "export", "--api", srv.URL, "req-1")
		wantOutput{stderr: []string{"not checked"}}.check(t, code, stdout, stderr)
		if stdout != string(bundle) {
			t.Errorf("stdout holds %d bytes, want the bundle", len(stdout))
		}
	})
	t.Run("not finished leaves no file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out := filepath.Join(dir, "bundle.zip")
		code, stdout, stderr := runCLI(t, "export", "--api", srv.URL, "req-2", "-o", out)
		wantOutput{code: exitError, stderr: []string{"lethectl export: export is not finished (HTTP 409)"}}.check(t, code, stdout, stderr)
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("files left behind: %v", entries)
		}
	})
	t.Run("failed download keeps an earlier file", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "bundle.json")
		if err := os.WriteFile(out, []byte("earlier"), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := runCLI(t, "export", "--api", srv.URL, "req-2", "-o", out); code != exitError {
			t.Fatalf("exit %d, want 1", code)
		}
		if got, _ := os.ReadFile(out); string(got) != "earlier" {
			t.Errorf("earlier file now holds %q", got)
		}
	})
}

func TestDemoDeleteAccount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		opened bool // the orchestrator has opened the event's request
		want   wantOutput
		sent   map[string]string
	}{
		{
			name:   "deleted, request found",
			args:   []string{"person-0001@example.com"},
			opened: true,
			want:   wantOutput{stdout: []string{"user id user-0001, event evt-42", "erasure request req-0002 opened", "lethectl wait req-0002"}},
			sent:   map[string]string{"tenant": "demo", "email": "person-0001@example.com"},
		},
		{
			name: "deleted, request not seen yet",
			args: []string{"--find", "300ms", "person-0001@example.com"},
			want: wantOutput{stdout: []string{"user id user-0001, event evt-42", "erasure request", "lethectl list --tenant demo --state open", "lethectl wait"}},
			sent: map[string]string{"tenant": "demo", "email": "person-0001@example.com"},
		},
		{
			name: "unknown account",
			args: []string{"--tenant", "acme", "person-0001@example.com"},
			want: wantOutput{code: exitError, stderr: []string{"lethectl demo delete-account: account not found (HTTP 404)", "!person-0001"}},
			sent: map[string]string{"tenant": "acme", "email": "person-0001@example.com"},
		},
		{
			name: "missing email",
			want: wantOutput{code: exitUsage, stderr: []string{"missing argument", "usage: lethectl demo delete-account"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			accounts := newFakeAccounts(t)
			orch := newFakeOrchestrator(t)
			orch.addRequests(1, "demo", "open")
			if tt.opened {
				orch.addRequests(1, "demo", "open")
				orch.requests[1]["event_id"] = "evt-42"
			}
			code, stdout, stderr := runCLI(t, append([]string{"demo", "delete-account", "--accounts", accounts.URL, "--api", orch.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
			accounts.mu.Lock()
			defer accounts.mu.Unlock()
			var sent map[string]string
			if len(accounts.bodies) > 0 {
				sent = accounts.bodies[0]
			}
			if mustJSON(t, sent) != mustJSON(t, tt.sent) {
				t.Errorf("server received %v, want %v", sent, tt.sent)
			}
			// The orchestrator's token is for the orchestrator alone.
			for _, h := range accounts.auth {
				if h != "" {
					t.Errorf("the accounts system received Authorization %q", h)
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want wantOutput
	}{
		{"no command", nil, wantOutput{code: exitUsage, stderr: []string{"usage: lethectl", "commands:"}}},
		{"unknown command", []string{"erase"}, wantOutput{code: exitUsage, stderr: []string{`unknown command "erase"`, "usage: lethectl"}}},
		{"verify checks certificates, not identities", []string{"verify", "req-1"}, wantOutput{code: exitUsage, stderr: []string{"--keys is required", "to confirm a subject's identity, see confirm"}}},
		{"unknown global flag", []string{"--bogus", "list"}, wantOutput{code: exitUsage, stderr: []string{"flag provided but not defined: -bogus"}}},
		{"help", []string{"help"}, wantOutput{stdout: []string{"commands:", "submit", "confirm", "deny", "status", "list", "wait", "export", "certificate", "verify", "keys", "audit", "tokens", "demo", "LETHE_API",
			"[--token TOKEN]", "LETHE_TOKEN", "data/admin.token"}}},
		{"tokens -h lists its subcommands", []string{"tokens", "-h"}, wantOutput{stdout: []string{
			"usage: lethectl tokens create --tenant T --role admin|dpo|intake|auditor --name N [--expires 90d|12h|2027-01-01T00:00:00Z]",
			"       lethectl tokens list", "       lethectl tokens revoke ID"}}},
		{"help deny", []string{"help", "deny"}, wantOutput{stdout: []string{"usage: lethectl deny ID --reason manifestly_unfounded|excessive|identity_not_established|other [--note TEXT]", "-note", "no personal data"}}},
		{"commands that call the orchestrator take --token", []string{"status", "-h"}, wantOutput{stdout: []string{"-token TOKEN", "LETHE_TOKEN"}}},
		{"verify has no --token: it never uses the network", []string{"verify", "c.json", "--keys", "k.json", "--token", "x"}, wantOutput{code: exitUsage, stderr: []string{"flag provided but not defined: -token"}}},
		{"-h", []string{"-h"}, wantOutput{stdout: []string{"commands:"}}},
		{"help for a command", []string{"help", "wait"}, wantOutput{stdout: []string{"usage: lethectl wait ID", "-timeout", "-interval"}}},
		{"help for an unknown command", []string{"help", "nope"}, wantOutput{code: exitUsage, stderr: []string{`unknown command "nope"`}}},
		{"command -h", []string{"list", "-h"}, wantOutput{stdout: []string{"usage: lethectl list", "-all", "-cursor"}}},
		{"demo -h", []string{"demo", "-h"}, wantOutput{stdout: []string{"usage: lethectl demo delete-account"}}},
		{"unknown demo subcommand", []string{"demo", "reset"}, wantOutput{code: exitUsage, stderr: []string{`unknown subcommand "reset"`}}},
		{"keys -h lists its subcommands", []string{"keys", "-h"}, wantOutput{stdout: []string{"usage: lethectl keys list", "       lethectl keys export", "lethectl keys add KEYS.json PUBFILE...", "lethectl keys retire KEYS.json KEYID"}}},
		{"help audit", []string{"help", "audit"}, wantOutput{stdout: []string{"usage: lethectl audit log", "lethectl audit consistency --old"}}},
		{"keys without subcommand", []string{"keys"}, wantOutput{code: exitUsage, stderr: []string{"lethectl keys: missing subcommand", "usage: lethectl keys list"}}},
		{"audit consistency -h", []string{"audit", "consistency", "-h"}, wantOutput{stdout: []string{"usage: lethectl audit consistency", "-old", "-new", "-keys"}}},
		{"verify has no --api: it never uses the network", []string{"verify", "c.json", "--keys", "k.json", "--api", "http://x"}, wantOutput{code: exitUsage, stderr: []string{"flag provided but not defined: -api"}}},
		{"unknown command flag", []string{"status", "req-1", "--verbose"}, wantOutput{code: exitUsage, stderr: []string{"flag provided but not defined: -verbose", "usage: lethectl status"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, tt.args...)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}

func TestGlobalFlagsAndEnvironment(t *testing.T) {
	// Not parallel: it sets environment variables.
	srv := newFakeOrchestrator(t)
	srv.snapshots["req-1"] = []string{snapshot("req-1", "erasure", "open", time.Now().Add(time.Hour), "")}

	srv.bearers["s3cret"] = "auditor"

	t.Setenv(envAPI, "http://127.0.0.1:1") // nothing listens there
	t.Setenv(envToken, "s3cret")
	code, _, stderr := runCLIRaw(t, "s3cret", "status", "req-1")
	if code != exitError || !strings.Contains(stderr, "http://127.0.0.1:1/v1/requests/req-1") {
		t.Errorf("LETHE_API ignored: exit %d, stderr %s", code, stderr)
	}

	t.Setenv(envAPI, srv.URL)
	if code, stdout, stderr := runCLIRaw(t, "s3cret", "status", "req-1"); code != 0 || !strings.Contains(stdout, "req-1") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	// A global flag before the command wins over the environment.
	t.Setenv(envAPI, "http://127.0.0.1:1")
	if code, _, stderr := runCLIRaw(t, "s3cret", "--api", srv.URL, "status", "req-1"); code != 0 {
		t.Fatalf("global --api ignored: exit %d: %s", code, stderr)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, h := range srv.auth {
		if h != "Bearer s3cret" {
			t.Errorf("Authorization = %q, want the token from %s", h, envToken)
		}
	}
	if len(srv.auth) != 2 {
		t.Errorf("server saw %d calls, want 2", len(srv.auth))
	}
}

// A failed task is listed, retried one by one or in bulk, or resolved by
// hand; bad flags are refused before any call.
func TestRetryResolveDeadLetters(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	srv.addRequests(4, "demo", "failed")
	srv.mu.Lock()
	srv.requests[0]["dead"], srv.requests[1]["dead"], srv.requests[2]["dead"] = "recordings", "recordings", "billing"
	srv.mu.Unlock()
	steps := []struct {
		name string
		args []string
		want wantOutput
	}{
		{"list", []string{"deadletters", "list"}, wantOutput{stdout: []string{"REQUEST", "req-0001  demo    recordings", "req-0003  demo    billing", "no answer after 8 attempts"}}},
		{"list one system", []string{"deadletters", "list", "--system", "billing"}, wantOutput{stdout: []string{"req-0003"}}},
		{"list since a bad time", []string{"deadletters", "list", "--since", "yesterday"}, wantOutput{code: exitUsage, stderr: []string{"--since must be an RFC 3339 time"}}},
		{"retry without a system", []string{"retry", "req-0001"}, wantOutput{code: exitUsage, stderr: []string{"--system is required"}}},
		{"retry", []string{"retry", "--system", "recordings", "req-0001"}, wantOutput{stdout: []string{"req-0001: recordings's task retried"}}},
		{"retry again", []string{"retry", "--system", "recordings", "req-0001"}, wantOutput{code: exitError, stderr: []string{"(HTTP 409)", "lethectl status req-0001"}}},
		{"resolve without a note", []string{"resolve", "--system", "billing", "req-0003"}, wantOutput{code: exitUsage, stderr: []string{"--note is required"}}},
		{"resolve", []string{"resolve", "--system", "billing", "--note", "erased by hand, ticket OPS-12", "req-0003"}, wantOutput{stdout: []string{"req-0003: billing's task resolved by hand; the request is fulfilled"}}},
		{"replay without a system", []string{"deadletters", "replay"}, wantOutput{code: exitUsage, stderr: []string{"--system is required"}}},
		{"replay", []string{"deadletters", "replay", "--system", "recordings"}, wantOutput{stdout: []string{"1 task(s) of recordings retried"}}},
		{"none left", []string{"deadletters", "list"}, wantOutput{stdout: []string{"no dead letters"}}},
	}
	for _, s := range steps {
		args := append([]string{s.args[0]}, s.args[1:]...)
		if s.args[0] == "deadletters" {
			args = append([]string{"deadletters", s.args[1], "--api", srv.URL}, s.args[2:]...)
		} else {
			args = append([]string{s.args[0], "--api", srv.URL}, s.args[1:]...)
		}
		code, stdout, stderr := runCLI(t, args...)
		t.Run(s.name, func(t *testing.T) { s.want.check(t, code, stdout, stderr) })
	}
}
