package emailanalytics

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// seededAt is the clock the tests seed the demo data at.
var seededAt = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// openAt opens the system with its clock at now, seeded with 20 people.
func openAt(t *testing.T, now time.Time) *System {
	t.Helper()
	t.Setenv(pseudonym.KeyEnv, "")
	s, err := Open(context.Background(), connector.Env{DataDir: t.TempDir(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Seed(context.Background(), 20); err != nil {
		t.Fatal(err)
	}
	return s
}

// personal are the tables holding a person's records.
var personal = []string{"email_events", "cookie_consents", "page_views", "interests"}

// records counts the records of address email in tenant in every table,
// looking at them directly.
func (s *System) records(t *testing.T, tenant, email string) (n int64) {
	t.Helper()
	for _, table := range personal {
		var c int64
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE tenant = ? AND LOWER(email) = LOWER(?)`, tenant, email).Scan(&c); err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

// count runs a COUNT(*) query whose one ? is the cut-off; the stored times
// are RFC 3339 UTC to the second, which compare as text.
func (s *System) count(t *testing.T, query string, cutoff time.Time) (n int64) {
	t.Helper()
	if err := s.db.QueryRow(query, stamp(cutoff)).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestSweepsOfTheSeededData: the demo data has rows on both sides of each
// retention period the system applies, and a sweep at the seeding time
// erases exactly the rows past the period, as a direct look at the table
// counts them, and keeps the others.
func TestSweepsOfTheSeededData(t *testing.T) {
	tests := []struct {
		name     string
		category string // the data category the policy names
		clock    string
		cutoff   time.Time
		table    string // the table's receipt category is its name
		column   string
	}{
		{"cookies for chat, analytics, customisation: 6 months", "cookies", connector.ClockRecord, seededAt.AddDate(0, -6, 0), "cookie_consents", "set_at"},
		{"navigation data: 50 months", "navigation", connector.ClockRecord, seededAt.AddDate(0, -50, 0), "page_views", "at"},
		{"prospecting: 3 years from the last contact", "prospecting", connector.ClockLastContact, seededAt.AddDate(-3, 0, 0), "interests", "last_contact_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openAt(t, seededAt)
			ctx := context.Background()
			pastQ := `SELECT COUNT(*) FROM ` + tt.table + ` WHERE tenant = 'demo' AND ` + tt.column + ` < ?`
			insideQ := `SELECT COUNT(*) FROM ` + tt.table + ` WHERE tenant = 'demo' AND ` + tt.column + ` >= ?`
			past, inside := s.count(t, pastQ, tt.cutoff), s.count(t, insideQ, tt.cutoff)
			if past == 0 || inside == 0 {
				t.Fatalf("%d rows past the period, %d inside; want some of each", past, inside)
			}
			others := map[string]int64{}
			for _, table := range personal {
				if table != tt.table {
					others[table] = s.count(t, `SELECT COUNT(*) FROM `+table+` WHERE ? <> ''`, tt.cutoff)
				}
			}
			task := connector.SweepTask{RunID: "run", TaskID: "run.emailanalytics", Tenant: dataset.DemoTenant, Policy: tt.name,
				Categories: []string{tt.category}, Clock: tt.clock, Cutoff: tt.cutoff}

			task.DryRun = true
			dry, err := s.Sweep(ctx, task)
			if err != nil || dry.Outcome != connector.Erased || dry.Counts[tt.table] != past || len(dry.Counts) != 1 || dry.Remaining != past {
				t.Fatalf("dry run = %+v, %v; want %d %s counted", dry, err, past, tt.table)
			}
			if n := s.count(t, pastQ, tt.cutoff); n != past {
				t.Fatalf("the dry run erased rows: %d left of %d", n, past)
			}

			task.DryRun = false
			res, err := s.Sweep(ctx, task)
			if err != nil || res.Outcome != connector.Erased || fmt.Sprint(res.Counts) != fmt.Sprint(map[string]int64{tt.table: past}) || res.Remaining != 0 {
				t.Fatalf("sweep = %+v, %v; want %d %s erased", res, err, past, tt.table)
			}
			if n := s.count(t, pastQ, tt.cutoff); n != 0 {
				t.Errorf("%d rows past the period left", n)
			}
			if n := s.count(t, insideQ, tt.cutoff); n != inside {
				t.Errorf("%d rows inside the period, were %d", n, inside)
			}
			for table, n := range others {
				if m := s.count(t, `SELECT COUNT(*) FROM `+table+` WHERE ? <> ''`, tt.cutoff); m != n {
					t.Errorf("%s: %d rows, were %d", table, m, n)
				}
			}
			if again, err := s.Sweep(ctx, task); err != nil || again.Outcome != connector.NotFound {
				t.Fatalf("second sweep = %+v, %v; want not_found", again, err)
			}
		})
	}
}

// TestSweepRefusesEngagement: campaign events have no clock, so a policy
// naming them is refused, not applied to nothing.
func TestSweepRefusesEngagement(t *testing.T) {
	s := openAt(t, seededAt)
	_, err := s.Sweep(context.Background(), connector.SweepTask{Tenant: "demo", Categories: []string{"engagement"},
		Clock: connector.ClockRecord, Cutoff: seededAt})
	if err == nil || connector.IsRetryable(err) {
		t.Fatalf("sweep of campaign events = %v, want a configuration error", err)
	}
}

// TestEraseAndExportCoverEveryTable: a person's export holds their cookie
// choices, page views and interests, each under its data category, and
// their erasure deletes them.
func TestEraseAndExportCoverEveryTable(t *testing.T) {
	s := openAt(t, seededAt)
	ctx := context.Background()
	email := dataset.DemoEmail(7)
	want := map[string]int64{}
	for _, table := range personal {
		var n int64
		s.db.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE email = ?`, email).Scan(&n)
		if n == 0 {
			t.Fatalf("test bug: person 7 has no %s", table)
		}
		want[table] = n
	}
	exp, err := s.Export(ctx, task(email))
	if err != nil || exp.Outcome != connector.Exported || fmt.Sprint(exp.Counts) != fmt.Sprint(want) {
		t.Fatalf("export = %+v, %v; want counts %v", exp.Counts, err, want)
	}
	var doc connector.Records
	if err := json.Unmarshal(exp.Export, &doc); err != nil {
		t.Fatal(err)
	}
	for category, table := range map[string]string{"engagement": "email_events", "cookies": "cookie_consents", "navigation": "page_views", "prospecting": "interests"} {
		if rows := doc[category][table]; int64(len(rows)) != want[table] {
			t.Errorf("export %s/%s = %v, want %d rows", category, table, rows, want[table])
		}
	}
	if v := doc["prospecting"]["interests"][0]; v["topic"] == nil || v["preference"] == nil || v["last_contact_at"] == nil {
		t.Errorf("an interest exported without its fields: %v", v)
	}

	res, err := s.Erase(ctx, task(email))
	if err != nil || res.Outcome != connector.Erased || fmt.Sprint(res.Counts) != fmt.Sprint(want) || res.Remaining != 0 {
		t.Fatalf("erase = %+v, %v; want counts %v", res, err, want)
	}
	if n := s.records(t, "demo", email); n != 0 {
		t.Fatalf("%d records left after the erasure", n)
	}
	if s.records(t, "demo", dataset.DemoEmail(8)) == 0 {
		t.Fatal("another person's records are gone too")
	}
}
