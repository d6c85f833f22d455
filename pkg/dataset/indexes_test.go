package dataset

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// Every lookup of a person, by email, user id or join, uses an index
// (Map.Indexes, made by OpenSQLite) rather than reading the table: an
// erasure must not cost what the system holds. The tables' own indexes
// lead with the tenant, which the planner, without statistics, prefers.
func TestLookupsUseIndexes(t *testing.T) {
	t.Setenv(pseudonym.KeyEnv, "")
	ctx := context.Background()
	const schema = `
CREATE TABLE people (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, email TEXT NOT NULL);
CREATE INDEX people_tenant_email ON people (tenant, email);
CREATE TABLE visits (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, person_id TEXT NOT NULL, email TEXT);
CREATE INDEX visits_tenant_person ON visits (tenant, person_id);
CREATE TABLE events (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, email TEXT NOT NULL);
CREATE INDEX events_tenant_email ON events (tenant, email);
`
	const m = `
tables:
  - name: people
    category: profile
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
  - name: visits
    category: visits
    tenant: tenant
    subject: {email: email}
    join: {column: person_id, to: people.id}
    strategy: delete
  - name: events
    category: events
    tenant: tenant
    subject: {email: email}
    strategy: delete
`
	db, e, err := OpenSQLite(ctx, t.TempDir(), "people.db", schema, []byte(m))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = SeedDemo(ctx, db, 300, func(ctx context.Context, tx *sql.Tx, i int) error {
		for _, q := range []string{`INSERT INTO people VALUES (?1, 'demo', ?2)`, `INSERT INTO visits (tenant, person_id, email) VALUES ('demo', ?1, ?2)`,
			`INSERT INTO events (tenant, email) VALUES ('demo', ?2)`} {
			if _, err := tx.ExecContext(ctx, q, DemoUserID(i), DemoEmail(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The statistics keep counts, not samples of people's emails and ids
	// (which an erasure would leave behind).
	var samples int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_stat4`).Scan(&samples); err != nil || samples != 0 {
		t.Errorf("sqlite_stat4 holds %d samples (%v), want none", samples, err)
	}
	s := newSubject(connector.Subject{Email: DemoEmail(7), UserID: DemoUserID(7)}, "demo")
	k, err := e.resolve(ctx, db, s)
	if err != nil {
		t.Fatal(err)
	}
	for i := range e.m.Tables {
		tb := &e.m.Tables[i]
		q := newQuery(e.dialect).w("SELECT COUNT(*) FROM ", quote(tb.Name), " WHERE ")
		if !e.where(q, tb, s, k) {
			t.Fatalf("%s: no lookup", tb.Name)
		}
		rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q.String(), q.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if strings.Contains(got, "SCAN") || !strings.Contains(got, "lethe_"+tb.Name) {
			t.Errorf("%s: the lookup's plan is %q, want it by the lethe_%s indexes", tb.Name, got, tb.Name)
		}
	}
}
