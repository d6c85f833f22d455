package dataset_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/pgtest"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// cutoff is the sweeps' cut-off. The rows around it are one second before
// it (past the period: they go) or one second after (inside: they stay), in
// several of the formats a database holds times in.
var cutoff = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sweepSchema holds a table per clock kind: logins by their own time
// (record; %[1]s is its column type: text in SQLite, timestamptz in
// PostgreSQL), interests by the last contact, users by the account's end,
// which their logins and comments follow through their join; visits keep
// their rows and lose who made them. notes have no clock, invoices are
// retained by law. Tenant "other" has old rows of everything.
const sweepSchema = `
CREATE TABLE users (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, email TEXT, ended_at TEXT);
CREATE TABLE logins (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users (id), at %[1]s NOT NULL);
CREATE TABLE comments (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, author_id TEXT, author_name TEXT, body TEXT NOT NULL);
CREATE TABLE interests (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, email TEXT NOT NULL, topic TEXT NOT NULL, last_contact_at TEXT);
CREATE TABLE visits (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, email TEXT, ip TEXT, url TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE notes (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, user_id TEXT NOT NULL, body TEXT);
CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, user_id TEXT, issued_at TEXT NOT NULL);
INSERT INTO users VALUES ('u1', 'demo', 'ann@example.com', '2026-03-01T11:59:59Z'), ('u2', 'demo', 'bob@example.com', '2026-03-01T12:00:01Z'),
  ('u3', 'demo', 'cy@example.com', NULL), ('u9', 'other', 'zoe@example.com', '2020-01-01T00:00:00Z');
INSERT INTO logins VALUES (1, 'demo', 'u1', '2026-03-01T11:59:59Z'), (2, 'demo', 'u2', '2026-03-01T14:00:01+02:00'),
  (3, 'demo', 'u3', '2026-03-01T13:59:59+02:00'), (4, 'other', 'u9', '2020-01-01T00:00:00Z');
INSERT INTO comments VALUES (1, 'demo', 'u1', 'Ann', 'first question'), (2, 'demo', 'u2', 'Bob', 'second question'),
  (3, 'other', 'u9', 'Zoe', 'elsewhere');
INSERT INTO interests VALUES (1, 'demo', 'ann@example.com', 'cycling', '2026-03-01 11:59:59'), (2, 'demo', 'bob@example.com', 'hiking', '2026-03-01T12:00:01.000Z'),
  (3, 'demo', 'cy@example.com', 'chess', NULL), (4, 'other', 'ann@example.com', 'cycling', '2019-05-05T00:00:00Z');
INSERT INTO visits VALUES (1, 'demo', 'ann@example.com', '192.0.2.1', '/pricing', '2026-03-01T11:59:59Z'),
  (2, 'demo', 'bob@example.com', '192.0.2.2', '/docs', '2026-03-01T12:00:01Z'), (3, 'other', 'ann@example.com', '192.0.2.3', '/', '2019-01-01T00:00:00Z');
INSERT INTO notes VALUES (1, 'demo', 'u1', 'note');
INSERT INTO invoices VALUES (1, 'demo', 'u1', '2016-01-01');
`

const sweepMap = `
dialect: %s
tables:
  - name: users
    category: profile
    data_category: account
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
    clocks: {account_end: ended_at}
  - name: logins
    category: login_history
    data_category: connection
    tenant: tenant
    join: {column: user_id, to: users.id}
    strategy: delete
    clocks: {record: at, account_end: users.ended_at}
  - name: comments
    category: comments
    data_category: contributions
    tenant: tenant
    join: {column: author_id, to: users.id}
    columns: {author_id: hash, author_name: set_null}
    clocks: {account_end: users.ended_at}
  - name: interests
    category: interests
    data_category: prospecting
    tenant: tenant
    subject: {email: email}
    strategy: delete
    clocks: {last_contact: last_contact_at}
  - name: visits
    category: visits
    data_category: navigation
    tenant: tenant
    subject: {email: email}
    columns: {email: set_null, ip: set_null}
    clocks: {record: at}
  - name: notes
    category: notes
    tenant: tenant
    join: {column: user_id, to: users.id}
    strategy: delete
  - name: invoices
    category: invoices
    data_category: billing
    tenant: tenant
    subject: {user_id: user_id}
    retain: {legal_basis: "Accounting law", period: 10y, from: issued_at}
`

// sweepDB is a database with sweepSchema, and an engine over it.
type sweepDB struct {
	db *sql.DB
	e  *dataset.Engine
}

func sweepSQLite(t *testing.T) sweepDB {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "sweep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return sweepOver(t, db, dataset.SQLite, "TEXT")
}

func sweepPostgres(t *testing.T) sweepDB {
	t.Helper()
	return sweepOver(t, pgtest.Schema(t, "lethe_dataset_sweep"), dataset.Postgres, "TIMESTAMPTZ")
}

func sweepOver(t *testing.T, db *sql.DB, d dataset.Dialect, timeType string) sweepDB {
	t.Helper()
	if _, err := db.Exec(fmt.Sprintf(sweepSchema, timeType)); err != nil {
		t.Fatalf("schema: %v", err)
	}
	m, err := dataset.Load([]byte(fmt.Sprintf(sweepMap, d)))
	if err != nil {
		t.Fatal(err)
	}
	e := dataset.New(db, m, hashKey)
	if err := e.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return sweepDB{db, e}
}

// rows is every row of table, in id order, as text, UTC times compared as
// instants (PostgreSQL returns a timestamptz in the session's zone).
func (s sweepDB) rows(t *testing.T, table, where string) []string {
	t.Helper()
	if where == "" {
		where = "1 = 1"
	}
	rs, err := s.db.Query(`SELECT * FROM ` + table + ` WHERE ` + where + ` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			switch x := v.(type) {
			case []byte:
				vals[i] = string(x)
			case time.Time:
				vals[i] = x.UTC().Format(time.RFC3339)
			}
		}
		out = append(out, fmt.Sprint(vals))
	}
	return out
}

var sweepTables = []string{"users", "logins", "comments", "interests", "visits", "notes", "invoices"}

// snapshot is every row of every table (of tenant, if not "").
func (s sweepDB) snapshot(t *testing.T, tenant string) string {
	t.Helper()
	var b strings.Builder
	for _, table := range sweepTables {
		where := ""
		if tenant != "" {
			where = "tenant = '" + tenant + "'"
		}
		fmt.Fprintf(&b, "%s: %v\n", table, s.rows(t, table, where))
	}
	return b.String()
}

// ids lists the ids of table's rows (where holds).
func (s sweepDB) ids(t *testing.T, table, where string) string {
	t.Helper()
	rs, err := s.db.Query(`SELECT id FROM ` + table + ` WHERE ` + where + ` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var ids []string
	for rs.Next() {
		var id string
		rs.Scan(&id)
		ids = append(ids, id)
	}
	return strings.Join(ids, ",")
}

func sweep(categories []string, clock string, dry bool) connector.SweepTask {
	return connector.SweepTask{RunID: "run", TaskID: "run.sys", Tenant: "demo", Policy: "test-policy",
		Categories: categories, Clock: clock, Cutoff: cutoff, DryRun: dry}
}

func TestSweepSQLite(t *testing.T) { testSweep(t, sweepSQLite) }

// TestSweepPostgres runs the same sweeps against PostgreSQL, logins.at a
// timestamptz there, the other times text.
func TestSweepPostgres(t *testing.T) { testSweep(t, sweepPostgres) }

func testSweep(t *testing.T, open func(*testing.T) sweepDB) {
	tests := []struct {
		name       string
		categories []string
		clock      string
		want       map[string]int64
		// checks are ids of rows left ("where" -> ids) after the sweep.
		checks map[string]string
	}{
		{
			name:       "record: the row's own time",
			categories: []string{"connection", "navigation"},
			clock:      connector.ClockRecord,
			want:       map[string]int64{"login_history": 2, "visits": 1},
			checks: map[string]string{
				"logins WHERE 1 = 1": "2,4",
				"users WHERE 1 = 1":  "u1,u2,u3,u9",
				// Visit 1 is kept, anonymised; the others untouched.
				"visits WHERE email IS NULL AND ip IS NULL AND url = '/pricing'": "1",
				"visits WHERE email IS NOT NULL AND ip IS NOT NULL":              "2,3",
			},
		},
		{
			name:       "record, by the table's category",
			categories: []string{"login_history"},
			clock:      connector.ClockRecord,
			want:       map[string]int64{"login_history": 2},
			checks:     map[string]string{"logins WHERE 1 = 1": "2,4", "visits WHERE email IS NOT NULL": "1,2,3"},
		},
		{
			name:       "last_contact: the table's own column",
			categories: []string{"prospecting"},
			clock:      connector.ClockLastContact,
			want:       map[string]int64{"interests": 1},
			checks:     map[string]string{"interests WHERE 1 = 1": "2,3,4"},
		},
		{
			name:       "account_end: the account, its logins and comments through their join",
			categories: []string{"account"},
			clock:      connector.ClockAccountEnd,
			want:       map[string]int64{"profile": 1, "login_history": 1, "comments": 1},
			checks: map[string]string{
				"users WHERE 1 = 1":  "u2,u3,u9",
				"logins WHERE 1 = 1": "2,3,4",
				"comments WHERE author_id = '" + pseudonym.Hash(hashKey, "u1") + "' AND author_name IS NULL AND body = 'first question'": "1",
				"comments WHERE author_name IS NOT NULL": "2,3",
				// No clock: not swept, left to erasure by the user id.
				"notes WHERE 1 = 1": "1",
			},
		},
		{
			name:       "account_end: a joined table alone",
			categories: []string{"contributions"},
			clock:      connector.ClockAccountEnd,
			want:       map[string]int64{"comments": 1},
			checks: map[string]string{
				"users WHERE 1 = 1":                      "u1,u2,u3,u9",
				"logins WHERE 1 = 1":                     "1,2,3,4",
				"comments WHERE author_name IS NOT NULL": "2,3",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			var total int64
			for _, n := range tt.want {
				total += n
			}
			before, other := s.snapshot(t, ""), s.snapshot(t, "other")

			dry, err := s.e.Sweep(ctx, sweep(tt.categories, tt.clock, true))
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if dry.Outcome != connector.Erased || fmt.Sprint(dry.Counts) != fmt.Sprint(tt.want) || dry.Remaining != total {
				t.Fatalf("dry run = %+v, want erased %v, %d remaining", dry, tt.want, total)
			}
			if after := s.snapshot(t, ""); after != before {
				t.Fatalf("the dry run changed the data:\n%s\nwas\n%s", after, before)
			}

			res, err := s.e.Sweep(ctx, sweep(tt.categories, tt.clock, false))
			if err != nil {
				t.Fatalf("sweep: %v", err)
			}
			if res.Outcome != connector.Erased || fmt.Sprint(res.Counts) != fmt.Sprint(tt.want) || res.Remaining != 0 {
				t.Fatalf("sweep = %+v, want erased %v (as the dry run counted), 0 remaining", res, tt.want)
			}
			for q, want := range tt.checks {
				table, where, _ := strings.Cut(q, " WHERE ")
				if got := s.ids(t, table, where); got != want {
					t.Errorf("%s: ids %q, want %q", q, got, want)
				}
			}
			if got := s.snapshot(t, "other"); got != other {
				t.Errorf("another tenant's rows changed:\n%s\nwas\n%s", got, other)
			}

			swept := s.snapshot(t, "")
			again, err := s.e.Sweep(ctx, sweep(tt.categories, tt.clock, false))
			if err != nil || again.Outcome != connector.NotFound || len(again.Counts) != 0 || again.Remaining != 0 {
				t.Fatalf("second sweep = %+v, %v; want not_found", again, err)
			}
			if got := s.snapshot(t, ""); got != swept {
				t.Fatalf("the second sweep changed the data:\n%s\nwas\n%s", got, swept)
			}
		})
	}
}

func TestSweepRefusesWhatItCannotApply(t *testing.T) {
	s := sweepSQLite(t)
	before := s.snapshot(t, "")
	tests := []struct {
		name string
		task connector.SweepTask
		// want are what the error says: the table, category, clock.
		want []string
	}{
		{"a retained table", sweep([]string{"billing"}, connector.ClockRecord, false), []string{`table "invoices"`, `"billing"`, "retained by law"}},
		{"a retained table, in a dry run", sweep([]string{"billing"}, connector.ClockRecord, true), []string{`table "invoices"`, "retained by law"}},
		{"a table with no clock", sweep([]string{"notes"}, connector.ClockRecord, false), []string{`table "notes"`, "no record clock"}},
		{"a table with no clock of the policy's", sweep([]string{"account"}, connector.ClockRecord, false), []string{`table "users"`, `"account"`, "no record clock"}},
		{"one category of several", sweep([]string{"connection", "contributions"}, connector.ClockRecord, false), []string{`table "comments"`, "no record clock"}},
		{"a category no table holds", sweep([]string{"telemetry"}, connector.ClockRecord, false), []string{`"telemetry"`, "no table"}},
		{"an unknown clock", sweep([]string{"connection"}, "birthday", false), []string{`unknown clock "birthday"`}},
		{"no category", sweep(nil, connector.ClockRecord, false), []string{"no data category"}},
		{"no tenant", func() connector.SweepTask {
			s := sweep([]string{"connection"}, connector.ClockRecord, false)
			s.Tenant = ""
			return s
		}(), []string{"no tenant"}},
		{"no cut-off", func() connector.SweepTask {
			s := sweep([]string{"connection"}, connector.ClockRecord, false)
			s.Cutoff = time.Time{}
			return s
		}(), []string{"no cut-off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.e.Sweep(context.Background(), tt.task)
			if err == nil {
				t.Fatalf("sweep = %+v, want refused", res)
			}
			if !errors.Is(err, dataset.ErrConfig) || connector.IsRetryable(err) {
				t.Errorf("error %v: want ErrConfig, not retryable", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "@") {
				t.Errorf("error %q holds personal data", err)
			}
		})
	}
	if after := s.snapshot(t, ""); after != before {
		t.Fatalf("a refused sweep changed the data:\n%s\nwas\n%s", after, before)
	}
}

// TestSweepNothingPast: a cut-off before every row finds nothing.
func TestSweepNothingPast(t *testing.T) {
	s := sweepSQLite(t)
	task := sweep([]string{"connection", "navigation"}, connector.ClockRecord, false)
	task.Cutoff = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := s.e.Sweep(context.Background(), task)
	if err != nil || res.Outcome != connector.NotFound || res.Remaining != 0 {
		t.Fatalf("sweep = %+v, %v; want not_found", res, err)
	}
}

func TestLoadChecksClocks(t *testing.T) {
	const users = `
tables:
  - name: users
    category: profile
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
`
	table := func(lines string) string {
		return users + `  - name: logins
    category: login_history
    tenant: tenant
` + lines
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown clock", table("    subject: {user_id: user_id}\n    strategy: delete\n    clocks: {birthday: at}\n"),
			`table "logins": clocks: unknown clock "birthday" (want record, last_contact, account_end)`},
		{"not a column", table("    subject: {user_id: user_id}\n    strategy: delete\n    clocks: {record: \"a t\"}\n"), `clocks: record: "a t" is not a column name`},
		{"no table before the dot", table("    subject: {user_id: user_id}\n    strategy: delete\n    clocks: {record: .at}\n"), `clocks: record: ".at" is not a column name`},
		{"no column after the dot", table("    join: {column: user_id, to: users.id}\n    strategy: delete\n    clocks: {account_end: users.}\n"), `"users." is not a column name`},
		{"another table without a join", table("    subject: {user_id: user_id}\n    strategy: delete\n    clocks: {account_end: users.ended_at}\n"),
			`clocks: account_end: "users.ended_at" is a column of table "users", which the table has no join to`},
		{"another table than the join's", table("    join: {column: user_id, to: users.id}\n    strategy: delete\n    clocks: {account_end: accounts.ended_at}\n"),
			`goes through the table's join, which is to "users"`},
		{"a retained table", table("    subject: {user_id: user_id}\n    retain: {legal_basis: law, period: 1y, from: at}\n    clocks: {record: at}\n"),
			`clocks: record: the table is retained by law`},
		{"kept rows hashed, by their own time", table("    subject: {user_id: user_id}\n    columns: {user_id: hash}\n    clocks: {record: at}\n"),
			`could not tell the rows it already anonymised`},
		{"the clock erased", table("    subject: {user_id: user_id}\n    columns: {user_id: set_null, at: set_null}\n    clocks: {record: at}\n"),
			`clocks: record: column "at" is erased`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dataset.Load([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	for name, ok := range map[string]string{
		"own column":                table("    subject: {user_id: user_id}\n    strategy: delete\n    clocks: {record: at, last_contact: seen_at}\n"),
		"through the join":          table("    join: {column: user_id, to: users.id}\n    strategy: delete\n    clocks: {record: at, account_end: users.ended_at}\n"),
		"kept rows, through a join": table("    join: {column: user_id, to: users.id}\n    columns: {user_id: hash}\n    clocks: {account_end: users.ended_at}\n"),
		"kept rows, nulled":         table("    subject: {user_id: user_id}\n    columns: {user_id: set_null}\n    clocks: {record: at}\n"),
	} {
		if _, err := dataset.Load([]byte(ok)); err != nil {
			t.Errorf("%s: Load = %v", name, err)
		}
	}
}

// TestCheckFindsClockColumns: a clock column the database lacks, its own
// or in the table it joins to, fails Check.
func TestCheckFindsClockColumns(t *testing.T) {
	for name, change := range map[string][2]string{
		"own column":       {"clocks: {record: at, account_end: users.ended_at}", "clocks: {record: logged_at, account_end: users.ended_at}"},
		"through the join": {"clocks: {record: at, account_end: users.ended_at}", "clocks: {record: at, account_end: users.closed_at}"},
	} {
		t.Run(name, func(t *testing.T) {
			s := sweepSQLite(t)
			m, err := dataset.Load([]byte(strings.Replace(fmt.Sprintf(sweepMap, dataset.SQLite), change[0], change[1], 1)))
			if err != nil {
				t.Fatal(err)
			}
			if err := dataset.New(s.db, m, hashKey).Check(context.Background()); err == nil {
				t.Fatal("check passed a map naming a clock column that does not exist")
			}
		})
	}
}

// TestOpenSQLiteAddsColumns: a file made by an older schema gets the
// columns a newer map needs (a clock), once; its rows are kept.
func TestOpenSQLiteAddsColumns(t *testing.T) {
	t.Setenv(pseudonym.KeyEnv, "")
	ctx := context.Background()
	dir := t.TempDir()
	const older = `CREATE TABLE IF NOT EXISTS people (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, email TEXT NOT NULL);`
	const newer = `CREATE TABLE IF NOT EXISTS people (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, email TEXT NOT NULL, ended_at TEXT);`
	const m = `
tables:
  - name: people
    category: profile
    tenant: tenant
    subject: {email: email}
    strategy: delete
    clocks: {account_end: ended_at}
`
	db, _, err := dataset.OpenSQLite(ctx, dir, "people.db", older, []byte(strings.Replace(m, "    clocks: {account_end: ended_at}\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(`INSERT INTO people VALUES ('p1', 'demo', 'ann@example.com')`)
	db.Close()
	if _, _, err := dataset.OpenSQLite(ctx, dir, "people.db", newer, []byte(m)); err == nil {
		t.Fatal("the older file passed the check of a map naming a column it lacks")
	}
	for range 2 {
		db, e, err := dataset.OpenSQLite(ctx, dir, "people.db", newer, []byte(m), dataset.WithAddedColumn("people", "ended_at", "TEXT"))
		if err != nil {
			t.Fatal(err)
		}
		db.Exec(`UPDATE people SET ended_at = '2020-01-01T00:00:00Z'`)
		res, err := e.Sweep(ctx, connector.SweepTask{Tenant: "demo", Categories: []string{"profile"}, Clock: connector.ClockAccountEnd, Cutoff: cutoff, DryRun: true})
		db.Close()
		if err != nil || res.Counts["profile"] != 1 {
			t.Fatalf("dry-run sweep over the upgraded file = %+v, %v", res, err)
		}
	}
}
