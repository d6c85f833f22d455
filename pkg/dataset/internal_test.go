package dataset

import (
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
)

// TestPlaceholders checks the SQL written for each dialect: PostgreSQL
// numbers its placeholders in argument order, SQLite uses ?, and every
// identifier is quoted.
func TestPlaceholders(t *testing.T) {
	m, err := Load([]byte(`
tables:
  - name: users
    category: profile
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
  - name: app.comments
    category: comments
    tenant: tenant
    subject: {email: author_email, user_id: author_id}
    join: {column: author_id, to: users.id}
    columns: {author_id: hash, author_email: set_null, ip: set_null}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := subject{email: "ann@example.com", userID: "u1", tenant: "demo"}
	k := keys{"users.id": {"u1", "u7"}}
	tests := []struct {
		dialect Dialect
		where   string
		update  string
	}{
		{Postgres,
			`DELETE FROM "app"."comments" WHERE (LOWER(TRIM("app"."comments"."author_email")) = $1 OR "app"."comments"."author_id" = $2 OR "app"."comments"."author_id" IN ($3, $4)) AND "app"."comments"."tenant" = $5`,
			`UPDATE "app"."comments" SET "author_email" = NULL, "ip" = NULL, "author_id" = $1 WHERE (LOWER(TRIM("app"."comments"."author_email")) = $2 OR "app"."comments"."author_id" = $3 OR "app"."comments"."author_id" IN ($4, $5)) AND "app"."comments"."tenant" = $6`},
		{SQLite,
			`DELETE FROM "app"."comments" WHERE (LOWER(TRIM("app"."comments"."author_email")) = ? OR "app"."comments"."author_id" = ? OR "app"."comments"."author_id" IN (?, ?)) AND "app"."comments"."tenant" = ?`,
			`UPDATE "app"."comments" SET "author_email" = NULL, "ip" = NULL, "author_id" = ? WHERE (LOWER(TRIM("app"."comments"."author_email")) = ? OR "app"."comments"."author_id" = ? OR "app"."comments"."author_id" IN (?, ?)) AND "app"."comments"."tenant" = ?`},
	}
	for _, tt := range tests {
		e := New(nil, m, []byte("key"), WithDialect(tt.dialect))
		c := &m.Tables[1]
		q := newQuery(e.dialect).w("DELETE FROM ", quote(c.Name), " WHERE ")
		if !e.where(q, c, s, k) {
			t.Fatal("where matched nothing")
		}
		if q.String() != tt.where {
			t.Errorf("%s delete:\n got %s\nwant %s", tt.dialect, q, tt.where)
		}
		if want := []any{"ann@example.com", "u1", "u1", "u7", "demo"}; len(q.args) != len(want) {
			t.Errorf("%s args = %v, want %v", tt.dialect, q.args, want)
		}
		u := e.update(c, []string{"author_email", "ip"}, []string{"author_id"}, []any{"u1"})
		e.where(u, c, s, k)
		if u.String() != tt.update {
			t.Errorf("%s update:\n got %s\nwant %s", tt.dialect, u, tt.update)
		}
		if len(u.args) != 6 || u.args[0] == "u1" {
			t.Errorf("%s update args = %v, want the hash first", tt.dialect, u.args)
		}
	}
}

// TestSweptSQL checks the condition a sweep writes for each kind of clock,
// in each dialect: times compared as times, a clock through the join read
// in the joined table within the tenant, kept rows anonymised while a
// nulled column holds a value.
func TestSweptSQL(t *testing.T) {
	m, err := Load([]byte(`
tables:
  - name: users
    category: profile
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
    clocks: {account_end: ended_at}
  - name: app.comments
    category: comments
    tenant: tenant
    join: {column: author_id, to: users.id}
    columns: {author_id: hash, author_name: set_null}
    clocks: {account_end: users.ended_at}
  - name: visits
    category: visits
    tenant: tenant
    subject: {email: email}
    columns: {email: set_null, ip: set_null}
    clocks: {record: at}
`))
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		dialect Dialect
		table   int
		clock   string
		want    string
	}{
		{SQLite, 0, "account_end", `"users"."tenant" = ? AND julianday("users"."ended_at") < julianday(?)`},
		{Postgres, 0, "account_end", `"users"."tenant" = $1 AND CAST("users"."ended_at" AS timestamptz) < $2`},
		{SQLite, 1, "account_end", `"app"."comments"."tenant" = ? AND "app"."comments"."author_id" IN (SELECT "users"."id" FROM "users" WHERE "users"."tenant" = ? AND julianday("users"."ended_at") < julianday(?))`},
		{Postgres, 1, "account_end", `"app"."comments"."tenant" = $1 AND "app"."comments"."author_id" IN (SELECT "users"."id" FROM "users" WHERE "users"."tenant" = $2 AND CAST("users"."ended_at" AS timestamptz) < $3)`},
		{Postgres, 2, "record", `"visits"."tenant" = $1 AND CAST("visits"."at" AS timestamptz) < $2 AND ("visits"."email" IS NOT NULL OR "visits"."ip" IS NOT NULL)`},
	}
	for _, tt := range tests {
		e := New(nil, m, []byte("key"), WithDialect(tt.dialect))
		q := newQuery(e.dialect)
		e.swept(q, &m.Tables[tt.table], connector.SweepTask{Tenant: "demo", Clock: tt.clock, Cutoff: cut})
		if q.String() != tt.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tt.dialect, m.Tables[tt.table].Name, q, tt.want)
		}
		// The cut-off goes as UTC: SQLite's julianday() reads the text, in
		// which "Z" and an offset both work, PostgreSQL the instant.
		last := q.args[len(q.args)-1]
		if tt.dialect == SQLite && last != "2026-03-01T11:00:00Z" {
			t.Errorf("SQLite cut-off argument %v", last)
		}
		if tt.dialect == Postgres && !last.(time.Time).Equal(cut) {
			t.Errorf("PostgreSQL cut-off argument %v", last)
		}
	}
}
