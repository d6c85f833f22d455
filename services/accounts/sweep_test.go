package accounts

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/piitest"
)

// seededAt is the clock the tests seed the demo data at.
var seededAt = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// count runs a COUNT(*) query whose every ? is the cut-off.
func (s *System) count(t *testing.T, query string, cutoff time.Time) (n int64) {
	t.Helper()
	c := stamp(cutoff)
	args := []any{}
	for range countPlaceholders(query) {
		args = append(args, c)
	}
	if err := s.db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func countPlaceholders(q string) int {
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
		}
	}
	return n
}

// The rows of accounts that ended before the cut-off (?), looked at
// directly: the stored times are all RFC 3339 UTC to the second, which
// compare as text.
const endedBefore = `SELECT id FROM users WHERE tenant = 'demo' AND ended_at < ?`

// TestSweepsOfTheSeededData: the demo data has rows on both sides of each
// retention period the accounts system applies, and a sweep at the seeding
// time erases exactly the rows past the period, as a direct look at the
// tables counts them, and keeps the others.
func TestSweepsOfTheSeededData(t *testing.T) {
	tests := []struct {
		name       string
		categories []string
		clock      string
		cutoff     time.Time
		// past are, per receipt category, queries counting the rows past
		// the cut-off; inside, queries counting rows that must stay. Both
		// count some rows before the sweep; past none after it, inside as
		// many.
		past, inside map[string]string
		// lacking counts the people with an open account that do not have
		// rows on both sides: none.
		lacking string
	}{
		{
			name:       "connection data, 13 months",
			categories: []string{"connection"},
			clock:      connector.ClockRecord,
			cutoff:     seededAt.AddDate(0, -13, 0),
			past:       map[string]string{"login_history": `SELECT COUNT(*) FROM logins WHERE tenant = 'demo' AND at < ?`},
			inside:     map[string]string{"login_history": `SELECT COUNT(*) FROM logins WHERE tenant = 'demo' AND at >= ?`},
			lacking: `SELECT COUNT(*) FROM users u WHERE u.ended_at IS NULL AND NOT (
				EXISTS (SELECT 1 FROM logins l WHERE l.user_id = u.id AND l.at < ?) AND EXISTS (SELECT 1 FROM logins l WHERE l.user_id = u.id AND l.at >= ?))`,
		},
		{
			name:       "technical data, 1 year",
			categories: []string{"technical"},
			clock:      connector.ClockRecord,
			cutoff:     seededAt.AddDate(-1, 0, 0),
			past:       map[string]string{"technical_logs": `SELECT COUNT(*) FROM technical_logs WHERE tenant = 'demo' AND at < ?`},
			inside:     map[string]string{"technical_logs": `SELECT COUNT(*) FROM technical_logs WHERE tenant = 'demo' AND at >= ?`},
			lacking: `SELECT COUNT(*) FROM users u WHERE u.ended_at IS NULL AND NOT (
				EXISTS (SELECT 1 FROM technical_logs l WHERE l.user_id = u.id AND l.at < ?) AND EXISTS (SELECT 1 FROM technical_logs l WHERE l.user_id = u.id AND l.at >= ?))`,
		},
		{
			name:       "accounts, 3 years after their end, with their logins, logs and questions",
			categories: []string{"account"},
			clock:      connector.ClockAccountEnd,
			cutoff:     seededAt.AddDate(-3, 0, 0),
			past: map[string]string{
				"profile":          `SELECT COUNT(*) FROM (` + endedBefore + `)`,
				"login_history":    `SELECT COUNT(*) FROM logins WHERE user_id IN (` + endedBefore + `)`,
				"technical_logs":   `SELECT COUNT(*) FROM technical_logs WHERE user_id IN (` + endedBefore + `)`,
				"webinar_comments": `SELECT COUNT(*) FROM comments WHERE author_id IN (` + endedBefore + `)`,
			},
			inside: map[string]string{
				"ended within 3 years": `SELECT COUNT(*) FROM users WHERE tenant = 'demo' AND ended_at >= ?`,
				"their logins":         `SELECT COUNT(*) FROM logins WHERE user_id IN (SELECT id FROM users WHERE ended_at >= ?)`,
				"open":                 `SELECT COUNT(*) FROM users WHERE tenant = 'demo' AND ended_at IS NULL AND ? <> ''`,
				"others' questions":    `SELECT COUNT(*) FROM comments WHERE author_name IS NOT NULL AND author_id NOT IN (` + endedBefore + `)`,
				"questions, kept":      `SELECT COUNT(*) FROM comments WHERE ? <> ''`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := openEnv(t, connector.Env{Now: func() time.Time { return seededAt }})
			ctx := context.Background()
			// The emails of the accounts the sweep deletes, if it does.
			var gone []string
			if tt.clock == connector.ClockAccountEnd {
				rows, err := s.db.Query(`SELECT email FROM users WHERE id IN (`+endedBefore+`)`, stamp(tt.cutoff))
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var e string
					rows.Scan(&e)
					gone = append(gone, e)
				}
				rows.Close()
			}
			if tt.lacking != "" {
				if n := s.count(t, tt.lacking, tt.cutoff); n != 0 {
					t.Errorf("%d people with an open account lack rows on one side of the period", n)
				}
			}
			want, inside := map[string]int64{}, map[string]int64{}
			var total int64
			for cat, q := range tt.past {
				if want[cat] = s.count(t, q, tt.cutoff); want[cat] == 0 {
					t.Errorf("%s: no row past the period", cat)
				}
				total += want[cat]
			}
			for what, q := range tt.inside {
				if inside[what] = s.count(t, q, tt.cutoff); inside[what] == 0 {
					t.Errorf("%s: no row inside the period", what)
				}
			}
			task := connector.SweepTask{RunID: "run", TaskID: "run.accounts", Tenant: dataset.DemoTenant, Policy: tt.name,
				Categories: tt.categories, Clock: tt.clock, Cutoff: tt.cutoff}
			res, err := s.Sweep(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != connector.Erased || fmt.Sprint(res.Counts) != fmt.Sprint(want) || res.Remaining != 0 {
				t.Fatalf("sweep = %+v, want erased %v (%d rows)", res, want, total)
			}
			for cat, q := range tt.past {
				if n := s.count(t, q, tt.cutoff); n != 0 {
					t.Errorf("%s: %d rows past the period left", cat, n)
				}
			}
			for what, q := range tt.inside {
				if n := s.count(t, q, tt.cutoff); n != inside[what] {
					t.Errorf("%s: %d rows, were %d", what, n, inside[what])
				}
			}
			if again, err := s.Sweep(ctx, task); err != nil || again.Outcome != connector.NotFound {
				t.Fatalf("second sweep = %+v, %v; want not_found", again, err)
			}
			// The deleted accounts are in no file, the WAL included.
			for _, email := range gone {
				if found := piitest.FilesHolding(t, dir, email); len(found) > 0 {
					t.Errorf("a swept account's email is still in %v", found)
				}
			}
			if tt.clock == connector.ClockAccountEnd && len(gone) == 0 {
				t.Error("test bug: no account swept")
			}
		})
	}
}

// TestSeedAroundTheClock: the seeded times follow the seeding time, so the
// data keeps its shape whenever it is seeded.
func TestSeedAroundTheClock(t *testing.T) {
	later := seededAt.AddDate(2, 5, 0)
	a, _ := openEnv(t, connector.Env{Now: func() time.Time { return seededAt }})
	b, _ := openEnv(t, connector.Env{Now: func() time.Time { return later }})
	shape := func(s *System, now time.Time) string {
		return fmt.Sprint(
			s.count(t, `SELECT COUNT(*) FROM logins WHERE at < ?`, now.AddDate(0, -13, 0)),
			s.count(t, `SELECT COUNT(*) FROM technical_logs WHERE at < ?`, now.AddDate(-1, 0, 0)),
			s.count(t, `SELECT COUNT(*) FROM users WHERE ended_at < ?`, now.AddDate(-3, 0, 0)),
			s.count(t, `SELECT COUNT(*) FROM users WHERE ended_at >= ?`, now.AddDate(-3, 0, 0)))
	}
	if x, y := shape(a, seededAt), shape(b, later); x != y {
		t.Fatalf("seeded at %v: %s; at %v: %s", seededAt, x, later, y)
	}
}

// TestExportIncludesTechnicalLogs: a person's export holds their technical
// log lines, under the technical data category.
func TestExportIncludesTechnicalLogs(t *testing.T) {
	s, _ := open(t, nil)
	n := s.technicalLogs(t, 5)
	res, err := s.Export(context.Background(), connector.Task{Tenant: "demo", Subject: connector.Subject{Email: dataset.DemoEmail(5)}})
	if err != nil || res.Outcome != connector.Exported {
		t.Fatalf("export = %+v, %v", res, err)
	}
	var doc connector.Records
	if err := json.Unmarshal(res.Export, &doc); err != nil {
		t.Fatal(err)
	}
	logs := doc["technical"]["technical_logs"]
	if n == 0 || int64(len(logs)) != n || res.Counts["technical_logs"] != n {
		t.Fatalf("export holds %d technical log lines (counts %v), the table %d", len(logs), res.Counts, n)
	}
	if logs[0]["user_id"] != dataset.DemoUserID(5) || logs[0]["url"] == nil || logs[0]["ip"] == nil || logs[0]["user_agent"] == nil {
		t.Fatalf("technical log line = %v", logs[0])
	}
}
