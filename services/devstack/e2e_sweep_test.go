package devstack

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// TestSweepEndToEnd runs the demo tenant's retention policies over the
// seeded demo systems, on every engine pair: a dry run counts exactly the
// rows past each period (as a direct query counts them) and changes
// nothing; the real run deletes them and nothing inside the period; each
// run's certificate verifies.
func TestSweepEndToEnd(t *testing.T) { matrix(t, sweepEndToEnd) }

func sweepEndToEnd(t *testing.T, h *harness) {
	type table struct{ db, name, clock, category string }
	tables := map[string]table{
		"audience_measurement": {"accounts/accounts.db", "logins", "at", "login_history"},
		"authorities":          {"accounts/accounts.db", "technical_logs", "at", "technical_logs"},
		"service_accounts":     {"accounts/accounts.db", "users", "ended_at", "profile"},
		"site_cookies":         {"emailanalytics/emailanalytics.db", "cookie_consents", "set_at", "cookie_consents"},
		"navigation":           {"emailanalytics/emailanalytics.db", "page_views", "at", "page_views"},
		"prospecting":          {"emailanalytics/emailanalytics.db", "interests", "last_contact_at", "interests"},
	}
	count := func(tb table, cutoff time.Time, past bool) int {
		db, err := sqlitedb.Open(filepath.Join(h.dir, tb.db))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		op := ">="
		if past {
			op = "<"
		}
		var n int
		q := `SELECT count(*) FROM ` + tb.name + ` WHERE tenant = 'demo' AND ` + tb.clock + ` IS NOT NULL AND julianday(` + tb.clock + `) ` + op + ` julianday(?)`
		if err := db.QueryRow(q, cutoff.UTC().Format(time.RFC3339Nano)).Scan(&n); err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
		return n
	}
	run := func(body string) map[string]map[string]any {
		code, out := h.call("POST", h.s.API+"/v1/sweeps", body)
		if code != 202 {
			t.Fatalf("sweep %s = %d %v", body, code, out)
		}
		views := map[string]map[string]any{}
		for _, r := range out["runs"].([]any) {
			run := r.(map[string]any)
			views[run["policy"].(string)] = h.waitState(run["id"].(string), "fulfilled")
			h.verifyCertificate(run["id"].(string))
		}
		return views
	}
	counted := func(view map[string]any, category string) int {
		n := 0
		for _, task := range tasks(view) {
			if c, ok := task["counts"].(map[string]any)[category].(float64); ok {
				n += int(c)
			}
		}
		return n
	}
	cutoffOf := func(view map[string]any) time.Time {
		at, err := time.Parse(time.RFC3339Nano, view["sweep"].(map[string]any)["cutoff"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return at
	}

	dry := run(`{"tenant":"demo","all":true,"dry_run":true}`)
	if len(dry) != len(tables) {
		t.Fatalf("the dry run ran %d policies, want %d", len(dry), len(tables))
	}
	inside := map[string]int{}
	for policy, tb := range tables {
		cutoff := cutoffOf(dry[policy])
		past := count(tb, cutoff, true)
		inside[policy] = count(tb, cutoff, false)
		if got := counted(dry[policy], tb.category); got != past || past == 0 || inside[policy] == 0 {
			t.Errorf("%s: the dry run counted %d %s, the table holds %d past the cut-off and %d inside (want both sides)",
				policy, got, tb.category, past, inside[policy])
		}
	}
	// Real runs, one policy at a time.
	for policy, tb := range tables {
		view := run(`{"tenant":"demo","policy":"` + policy + `"}`)[policy]
		cutoff := cutoffOf(view)
		if left := count(tb, cutoff, true); left != 0 {
			t.Errorf("%s: %d rows past the cut-off left after the run", policy, left)
		}
		if kept := count(tb, cutoff, false); kept != inside[policy] {
			t.Errorf("%s: %d rows inside the period left, want %d", policy, kept, inside[policy])
		}
	}
	// Nothing is past any period now.
	again := run(`{"tenant":"demo","all":true,"dry_run":true}`)
	for policy, tb := range tables {
		if got := counted(again[policy], tb.category); got != 0 {
			t.Errorf("%s: a dry run after the sweep still counts %d", policy, got)
		}
	}
}
