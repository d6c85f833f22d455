package main

import (
	"testing"
	"time"
)

func TestSweep(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	deadline := time.Date(2027, 1, 1, 23, 59, 59, 0, time.UTC)
	counted := task("emailanalytics", "answered", "erased", 1, `"counts":{"cookie_consents":40}`)
	srv.snapshots["run_site_cookies"] = []string{
		snapshot("run_site_cookies", "sweep", "open", deadline, "", task("emailanalytics", "published", "", 1, "")),
		snapshot("run_site_cookies", "sweep", "fulfilled", deadline, "2026-12-01T06:00:00Z", counted),
	}
	srv.snapshots["run_site_cookies_dry"] = []string{snapshot("run_site_cookies_dry", "sweep", "fulfilled", deadline, "2026-12-01T06:00:00Z", counted)}
	tests := []struct {
		name string
		args []string
		want wantOutput
	}{
		{"list", []string{"sweep", "list"}, wantOutput{stdout: []string{"TENANT", "demo", "site_cookies", "6m", "record", "yes", "emailanalytics:cookies", "Website analytics"}}},
		{"run", []string{"sweep", "run", "site_cookies"}, wantOutput{stdout: []string{"policy=site_cookies system=emailanalytics run=run_site_cookies deleted=40"},
			stderr: []string{"[1/1] site_cookies: run run_site_cookies started"}}},
		{"dry run", []string{"sweep", "run", "--all", "--dry-run"}, wantOutput{stdout: []string{"policy=site_cookies system=emailanalytics run=run_site_cookies_dry would_delete=40"}}},
		{"unknown policy", []string{"sweep", "run", "birthdays"}, wantOutput{code: exitError, stderr: []string{"no such retention policy"}}},
		{"neither", []string{"sweep", "run"}, wantOutput{code: exitUsage, stderr: []string{"name one POLICY, or give --all"}}},
		{"both", []string{"sweep", "run", "site_cookies", "--all"}, wantOutput{code: exitUsage, stderr: []string{"name one POLICY, or give --all"}}},
		{"no subcommand", []string{"sweep"}, wantOutput{code: exitUsage, stderr: []string{"missing subcommand"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if len(args) > 1 {
				args = append([]string{args[0], args[1], "--api", srv.URL}, args[2:]...)
			}
			code, stdout, stderr := runCLI(t, args...)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}

func TestReapply(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	deadline := time.Date(2027, 1, 1, 23, 59, 59, 0, time.UTC)
	srv.snapshots["req_reapply"] = []string{snapshot("req_reapply", "reapply", "fulfilled", deadline, "2026-12-01T06:00:00Z",
		task("accounts", "answered", "erased", 1, `"counts":{"profile":3,"login_history":9}`))}
	srv.snapshots["req_reapply2"] = []string{snapshot("req_reapply2", "reapply", "fulfilled", deadline, "2026-12-01T06:00:00Z",
		task("accounts", "answered", "erased", 1, `"counts":{"profile":1}`))}
	for _, tt := range []struct {
		name string
		args []string
		want wantOutput
	}{
		{"run", []string{"--system", "accounts", "--since", "2026-11-30T00:00:00Z"}, wantOutput{stdout: []string{"system=accounts request=req_reapply erased=12", "system=accounts request=req_reapply2 erased=1"},
			stderr: []string{"(2 part(s))"}}},
		{"no since", []string{"--system", "accounts"}, wantOutput{code: exitUsage, stderr: []string{"--system and --since are required"}}},
		{"bad since", []string{"--system", "accounts", "--since", "yesterday"}, wantOutput{code: exitUsage, stderr: []string{"--since must be an RFC 3339 time"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"reapply", "--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}

func TestLift(t *testing.T) {
	t.Parallel()
	srv := newFakeOrchestrator(t)
	deadline := time.Date(2027, 1, 1, 23, 59, 59, 0, time.UTC)
	srv.snapshots["req_lift"] = []string{snapshot("req_lift", "lift", "fulfilled", deadline, "2026-12-01T06:00:00Z",
		task("accounts", "answered", "lifted", 1, ""), task("billing", "answered", "not_found", 1, ""))}
	for _, tt := range []struct {
		name string
		args []string
		want wantOutput
	}{
		{"lift", []string{"req_r", "--reason", "claims_settled"}, wantOutput{stdout: []string{
			"system=accounts lift=req_lift restriction=req_r outcome=lifted", "system=billing lift=req_lift restriction=req_r outcome=not_found"},
			stderr: []string{"lethectl certificate req_lift"}}},
		{"no reason", []string{"req_r"}, wantOutput{code: exitUsage, stderr: []string{"--reason is required"}}},
		{"already lifted", []string{"req_lifted", "--reason", "claims_settled"}, wantOutput{code: exitError, stderr: []string{"already lifted", "lethectl status req_lifted"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"lift", "--api", srv.URL}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}
