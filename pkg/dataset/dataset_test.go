package dataset_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/pgtest"
	"github.com/lethe-dev/lethe/pkg/piitest"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// The schema and map exercise every strategy: users and logins are deleted,
// sessions are reached through logins (a chain of joins), comments keep
// their rows but lose their author, invoices are retained with a column
// erased. Ann has an account in two tenants.
const schema = `
CREATE TABLE users (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, email TEXT, name TEXT);
CREATE TABLE logins (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id), ip TEXT);
CREATE TABLE sessions (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, login_id INTEGER NOT NULL REFERENCES logins(id), agent TEXT);
CREATE TABLE comments (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, author_id TEXT, author_email TEXT, body TEXT NOT NULL);
CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, user_id TEXT, email TEXT, name TEXT, checkout_ip TEXT, issued_at TEXT NOT NULL);
INSERT INTO users VALUES ('u1', 'demo', ' Ann@Example.com', 'Ann'), ('u2', 'demo', 'bob@example.com', 'Bob'), ('u9', 'other', 'ann@example.com', 'Ann');
INSERT INTO logins VALUES (1, 'demo', 'u1', '192.0.2.1'), (2, 'demo', 'u1', '192.0.2.2'), (3, 'demo', 'u2', '192.0.2.3'), (4, 'other', 'u9', '192.0.2.4');
INSERT INTO sessions VALUES (10, 'demo', 1, 'firefox'), (11, 'demo', 2, 'curl'), (12, 'demo', 3, 'firefox'), (13, 'other', 4, 'firefox');
INSERT INTO comments VALUES (1, 'demo', 'u1', 'ann@example.com', 'first question'), (2, 'demo', 'u1', NULL, 'second question'),
  (3, 'demo', 'u2', 'bob@example.com', 'bob asks'), (4, 'other', 'u9', 'ann@example.com', 'ann elsewhere');
INSERT INTO invoices VALUES (1, 'demo', 'u1', 'ann@example.com', 'Ann', '192.0.2.1', '2020-03-01'),
  (2, 'demo', 'u1', 'ann@example.com', 'Ann', '192.0.2.2', '2024-02-29'),
  (3, 'demo', 'u2', 'bob@example.com', 'Bob', NULL, '2023-05-05'),
  (4, 'other', 'u9', 'ann@example.com', 'Ann', NULL, '2021-01-01');
`

const mapYAML = `
dialect: %s
tables:
  - name: users
    category: profile
    data_category: account
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
  - name: logins
    category: login_history
    tenant: tenant
    join: {column: user_id, to: users.id}
    strategy: delete
  - name: sessions
    category: login_history
    tenant: tenant
    join: {column: login_id, to: logins.id}
    strategy: delete
  - name: comments
    category: comments
    tenant: tenant
    subject: {email: author_email}
    join: {column: author_id, to: users.id}
    columns: {author_id: hash, author_email: set_null}
  - name: invoices
    category: invoices
    data_category: billing
    tenant: tenant
    subject: {email: email, user_id: user_id}
    retain: {legal_basis: "Accounting law", period: 10y, from: issued_at}
    columns: {checkout_ip: set_null}
`

var (
	hashKey = []byte("test-key-0123456789abcdef")
	ann     = connector.Subject{Email: "ANN@example.com "}
	annID   = connector.Subject{UserID: "u1"}
	bob     = connector.Subject{Email: "bob@example.com"}
	nobody  = connector.Subject{Email: "nobody@example.com"}
)

func task(s connector.Subject, tenant string) connector.Task {
	return connector.Task{RequestID: "r", TaskID: "r.sys", Tenant: tenant, Subject: s, Attempt: 1}
}

func loadMap(t *testing.T, d dataset.Dialect) *dataset.Map {
	t.Helper()
	m, err := dataset.Load([]byte(fmt.Sprintf(mapYAML, d)))
	if err != nil {
		t.Fatalf("load map: %v", err)
	}
	return m
}

func sqliteDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	return db
}

func count(t *testing.T, e *dataset.Engine, s connector.Subject, tenant string) int64 {
	t.Helper()
	n, err := e.Count(context.Background(), s, tenant)
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

func TestEraseSQLite(t *testing.T) {
	db := sqliteDB(t)
	testErase(t, db, dataset.New(db, loadMap(t, dataset.SQLite), hashKey))
}

// TestErasePostgres runs the same erasure against PostgreSQL, in a schema
// of its own that it drops afterwards.
func TestErasePostgres(t *testing.T) {
	db := pgtest.Schema(t, "lethe_dataset_test")
	if _, err := db.Exec(schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	testErase(t, db, dataset.New(db, loadMap(t, dataset.Postgres), hashKey))
}

func testErase(t *testing.T, db *sql.DB, e *dataset.Engine) {
	ctx := context.Background()
	if err := e.Check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}
	if n := count(t, e, ann, "demo"); n != 9 {
		t.Fatalf("ann has %d rows before erasure, want 9", n)
	}
	bobBefore, otherBefore := count(t, e, bob, "demo"), count(t, e, ann, "other")
	exp, err := e.Export(ctx, task(ann, "demo"))
	if err != nil || exp.Outcome != connector.Exported || exp.Counts["login_history"] != 4 || !json.Valid(exp.Export) {
		t.Fatalf("export = %q %v, %v", exp.Outcome, exp.Counts, err)
	}

	res, err := e.Erase(ctx, task(ann, "demo"))
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	want := map[string]int64{"profile": 1, "login_history": 4, "comments": 2, "invoices": 2}
	if fmt.Sprint(res.Counts) != fmt.Sprint(want) {
		t.Errorf("counts = %v, want %v", res.Counts, want)
	}
	if res.Outcome != connector.Retained || res.LegalBasis != "Accounting law" {
		t.Errorf("outcome %q basis %q, want retained under Accounting law", res.Outcome, res.LegalBasis)
	}
	// The latest invoice is of 29 Feb 2024: ten years on is 28 Feb 2034.
	if wantUntil := time.Date(2034, 2, 28, 0, 0, 0, 0, time.UTC); !res.RetainUntil.Equal(wantUntil) {
		t.Errorf("retain until %v, want %v", res.RetainUntil, wantUntil)
	}
	if res.Remaining != 2 || count(t, e, ann, "demo") != 2 {
		t.Errorf("remaining %d (fresh count %d), want the 2 invoices", res.Remaining, count(t, e, ann, "demo"))
	}

	rowCount := func(q string) (n int) {
		t.Helper()
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	checks := []struct {
		query string
		want  int
	}{
		{`SELECT COUNT(*) FROM users WHERE id = 'u1'`, 0},
		{`SELECT COUNT(*) FROM logins WHERE user_id = 'u1'`, 0},
		{`SELECT COUNT(*) FROM sessions WHERE id IN (10, 11)`, 0},
		{`SELECT COUNT(*) FROM comments WHERE id IN (1, 2) AND author_id = '` + pseudonym.Hash(hashKey, "u1") + `' AND author_email IS NULL`, 2},
		{`SELECT COUNT(*) FROM comments WHERE body = 'first question'`, 1},
		{`SELECT COUNT(*) FROM invoices WHERE user_id = 'u1' AND checkout_ip IS NULL AND name = 'Ann'`, 2},
		{`SELECT COUNT(*) FROM sessions WHERE id IN (12, 13)`, 2},
	}
	for _, c := range checks {
		if got := rowCount(c.query); got != c.want {
			t.Errorf("%s = %d, want %d", c.query, got, c.want)
		}
	}
	if n := count(t, e, bob, "demo"); n != bobBefore {
		t.Errorf("bob's rows went from %d to %d", bobBefore, n)
	}
	if n := count(t, e, ann, "other"); n != otherBefore || n == 0 {
		t.Errorf("ann's rows in the other tenant went from %d to %d", otherBefore, n)
	}

	again, err := e.Erase(ctx, task(ann, "demo"))
	if err != nil {
		t.Fatalf("second erase: %v", err)
	}
	if again.Outcome != connector.Retained || again.Remaining != 2 || fmt.Sprint(again.Counts) != "map[invoices:2]" {
		t.Errorf("second erase = %+v, want the same 2 invoices retained", again)
	}
}

func TestEraseByUserIDOnly(t *testing.T) {
	db := sqliteDB(t)
	e := dataset.New(db, loadMap(t, dataset.SQLite), hashKey)
	res, err := e.Erase(context.Background(), task(annID, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	// Comments hold no user id column: the join through users finds them.
	if res.Counts["comments"] != 2 || res.Counts["login_history"] != 4 || res.Remaining != 2 {
		t.Fatalf("erase by user id = %+v", res)
	}
	if n := count(t, e, ann, "demo"); n != 2 {
		t.Fatalf("%d of ann's rows left, want the 2 invoices", n)
	}
}

func TestRetentionOver(t *testing.T) {
	db := sqliteDB(t)
	later := func() time.Time { return time.Date(2034, 2, 28, 0, 0, 0, 0, time.UTC) }
	e := dataset.New(db, loadMap(t, dataset.SQLite), hashKey, dataset.WithNow(later))
	res, err := e.Erase(context.Background(), task(ann, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != connector.Erased || res.Remaining != 0 || res.Counts["invoices"] != 2 || !res.RetainUntil.IsZero() {
		t.Fatalf("erase after the retention period = %+v, want the invoices deleted", res)
	}
	var n int
	db.QueryRow(`SELECT COUNT(*) FROM invoices WHERE user_id = 'u1'`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d invoices left", n)
	}
}

func TestNotFound(t *testing.T) {
	db := sqliteDB(t)
	e := dataset.New(db, loadMap(t, dataset.SQLite), hashKey)
	for name, tk := range map[string]connector.Task{
		"unknown email":         task(nobody, "demo"),
		"empty subject":         task(connector.Subject{}, "demo"),
		"blank email":           task(connector.Subject{Email: "  "}, "demo"),
		"bob in another tenant": task(bob, "other"),
	} {
		t.Run(name, func(t *testing.T) {
			for _, op := range []func(context.Context, connector.Task) (connector.Result, error){e.Erase, e.Export} {
				res, err := op(context.Background(), tk)
				if err != nil || res.Outcome != connector.NotFound {
					t.Fatalf("= %+v, %v; want not_found", res, err)
				}
			}
		})
	}
	var n int
	db.QueryRow(`SELECT COUNT(*) FROM users`).Scan(&n)
	if n != 3 {
		t.Fatalf("not_found erasures changed users: %d rows", n)
	}
}

func TestExport(t *testing.T) {
	db := sqliteDB(t)
	e := dataset.New(db, loadMap(t, dataset.SQLite), hashKey)
	res, err := e.Export(context.Background(), task(ann, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"profile": 1, "login_history": 4, "comments": 2, "invoices": 2}
	if res.Outcome != connector.Exported || fmt.Sprint(res.Counts) != fmt.Sprint(want) {
		t.Fatalf("export = %q %v, want exported %v", res.Outcome, res.Counts, want)
	}
	// Grouped by data category (the table's category where it names
	// none), then by table.
	var doc connector.Records
	if err := json.Unmarshal(res.Export, &doc); err != nil {
		t.Fatalf("export is not grouped by data category, then table: %v", err)
	}
	if p := doc["account"]["profile"]; len(p) != 1 || p[0]["name"] != "Ann" || p[0]["id"] != "u1" {
		t.Errorf("account/profile = %v", p)
	}
	if inv := doc["billing"]["invoices"]; len(inv) != 2 || inv[0]["checkout_ip"] == nil {
		t.Errorf("billing/invoices = %v, want both with every column", inv)
	}
	if len(doc["login_history"]["login_history"]) != 4 {
		t.Errorf("login_history = %v, want its 4 rows under its own category", doc["login_history"])
	}
	if strings.Contains(string(res.Export), "ann elsewhere") || strings.Contains(string(res.Export), "Bob") {
		t.Errorf("export holds rows of another tenant or person: %s", res.Export)
	}
	if n := count(t, e, ann, "demo"); n != 9 {
		t.Errorf("export changed the data: %d rows", n)
	}
}

func TestHashNeedsKey(t *testing.T) {
	db := sqliteDB(t)
	e := dataset.New(db, loadMap(t, dataset.SQLite), nil)
	if _, err := e.Erase(context.Background(), task(ann, "demo")); !errors.Is(err, dataset.ErrConfig) {
		t.Fatalf("erase with a hash strategy and no key: %v, want ErrConfig", err)
	}
}

func TestCheckCatchesAMapThatDoesNotFit(t *testing.T) {
	db := sqliteDB(t)
	m, err := dataset.Load([]byte(`
tables:
  - name: users
    category: profile
    tenant: tenant
    subject: {email: mail}
    strategy: delete
`))
	if err != nil {
		t.Fatal(err)
	}
	err = dataset.New(db, m, nil).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), `"users"`) {
		t.Fatalf("check of a missing column = %v, want an error naming the table", err)
	}
}

func TestLoadRejectsBadMaps(t *testing.T) {
	const users = `
  - name: users
    category: profile
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
`
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", ``, "parse map"},
		{"no tables", `dialect: sqlite`, "no tables"},
		{"unknown dialect", "dialect: oracle\ntables:" + users, `unknown dialect "oracle"`},
		{"unknown field", "tables:" + users + "    colour: red\n", "colour"},
		{"unknown strategy", "tables:" + strings.Replace(users, "delete", "shred", 1), `table "users": unknown strategy "shred"`},
		{"unknown column strategy", "tables:" + users + `
  - name: notes
    category: notes
    tenant: tenant
    subject: {email: email}
    columns: {email: scramble}
`, `table "notes": column "email": unknown strategy "scramble"`},
		{"table strategy on a column", "tables:" + users + `
  - name: notes
    category: notes
    tenant: tenant
    subject: {email: email}
    columns: {email: delete}
`, `column "email": "delete" is a table strategy`},
		{"missing category", "tables:" + strings.Replace(users, "category: profile", "", 1), `table "users": no category`},
		{"bad category", "tables:" + strings.Replace(users, "category: profile", "category: Profile Data", 1), `category "Profile Data"`},
		{"bad data category", "tables:" + strings.Replace(users, "category: profile", "category: profile\n    data_category: Account Data", 1), `data_category "Account Data"`},
		{"join to unknown table", "tables:" + users + `
  - name: logins
    category: login_history
    join: {column: user_id, to: accounts.id}
    strategy: delete
`, `table "logins": join to unknown table "accounts"`},
		{"join to a later table", `tables:
  - name: logins
    category: login_history
    join: {column: user_id, to: users.id}
    strategy: delete
` + users, `table "logins": join to unknown table "users"`},
		{"join without column", "tables:" + users + `
  - name: logins
    category: login_history
    join: {column: user_id, to: users}
    strategy: delete
`, `table "logins": join to "users": want table.column`},
		{"no way to the subject", "tables:" + users + `
  - name: logins
    category: login_history
    strategy: delete
`, `table "logins": no subject columns and no join`},
		{"no tenant", "tables:" + strings.Replace(users, "tenant: tenant", "", 1), `table "users": names no tenant column`},
		{"joined table without tenant", "tables:" + users + `
  - name: logins
    category: login_history
    join: {column: user_id, to: users.id}
    strategy: delete
`, `table "logins": names no tenant column`},
		{"duplicate table", "tables:" + users + users, `table "users" is listed twice`},
		{"bad table name", "tables:" + strings.Replace(users, "name: users", "name: users; drop", 1), `bad table name`},
		{"bad column name", "tables:" + strings.Replace(users, "email: email", `email: "e-mail"`, 1), `"e-mail" is not a column name`},
		{"retain without rule", "tables:" + strings.Replace(users, "delete", "retain", 1), `table "users": strategy retain needs a retain rule`},
		{"bad period", "tables:" + strings.Replace(users, "strategy: delete", `retain: {legal_basis: "law", period: 10 decades, from: created_at}`, 1), `table "users": retain: bad period "10 decades"`},
		{"zero period", "tables:" + strings.Replace(users, "strategy: delete", `retain: {legal_basis: "law", period: 0y, from: created_at}`, 1), `table "users": retain: bad period "0y"`},
		{"retain without basis", "tables:" + strings.Replace(users, "strategy: delete", `retain: {period: 1y, from: created_at}`, 1), `table "users": retain: no legal_basis`},
		{"retain without from", "tables:" + strings.Replace(users, "strategy: delete", `retain: {legal_basis: "law", period: 1y}`, 1), `table "users": retain: from "" is not a column name`},
		{"retain rule on a deleted table", "tables:" + strings.Replace(users, "strategy: delete", "strategy: delete\n    retain: {legal_basis: \"law\", period: 1y, from: created_at}", 1), `a retain rule with strategy "delete"`},
		{"retained rows lose every identifier", "tables:" + strings.Replace(users, "strategy: delete", "retain: {legal_basis: \"law\", period: 1y, from: created_at}\n    columns: {email: hash, id: set_null}", 1), `retained rows must keep a subject column`},
		{"columns on a deleted table", "tables:" + strings.Replace(users, "strategy: delete", "strategy: delete\n    columns: {name: set_null}", 1), `columns to erase make no sense`},
		{"nothing to do", "tables:" + strings.Replace(users, "strategy: delete", "", 1), `no strategy and no columns`},
		{"kept rows keep the subject", "tables:" + strings.Replace(users, "strategy: delete", "columns: {name: set_null}", 1), `subject column "email" must be set_null or hash`},
		{"tenant erased", "tables:" + strings.Replace(users, "strategy: delete", "columns: {email: hash, id: hash, tenant: set_null}", 1), `the tenant column cannot be erased`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dataset.Load([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := dataset.Load([]byte("tables:" + users)); err != nil {
		t.Fatalf("the valid base map fails: %v", err)
	}
}

func TestSeedDemo(t *testing.T) {
	ctx := context.Background()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "seed.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE people (email TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	add := func(ctx context.Context, tx *sql.Tx, i int) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO people VALUES (?)`, dataset.DemoEmail(i))
		return err
	}
	people := func() (n int) {
		db.QueryRow(`SELECT COUNT(*) FROM people`).Scan(&n)
		return n
	}
	for _, step := range []struct{ seed, want int }{{5, 5}, {5, 5}, {3, 5}, {8, 8}} {
		if err := dataset.SeedDemo(ctx, db, step.seed, add); err != nil {
			t.Fatalf("seed %d: %v", step.seed, err)
		}
		if n := people(); n != step.want {
			t.Fatalf("after seed %d: %d people, want %d", step.seed, n, step.want)
		}
	}
	// An erased person is not brought back by seeding again.
	db.Exec(`DELETE FROM people WHERE email = ?`, dataset.DemoEmail(1))
	if err := dataset.SeedDemo(ctx, db, 8, add); err != nil || people() != 7 {
		t.Fatalf("reseeding brought back an erased person: %d people, %v", people(), err)
	}
	if dataset.DemoEmail(7) != "person-0007@example.com" || dataset.DemoUserID(12) != "user-0012" {
		t.Fatal("demo identities are not person-0007@example.com / user-0012")
	}
}

// TestJoinedTablesStayInTenant: where a key is unique only within a tenant
// (accounts keyed by (tenant, user_id)), a table reached through a join must
// be filtered by tenant as well as by key, or one tenant's erasure deletes
// another tenant's rows that share the key. The engine therefore refuses a
// map whose joined table names no tenant column.
func TestJoinedTablesStayInTenant(t *testing.T) {
	const schema = `
CREATE TABLE accts (tenant TEXT NOT NULL, user_id TEXT NOT NULL, email TEXT NOT NULL, PRIMARY KEY (tenant, user_id));
CREATE TABLE cards (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, user_id TEXT NOT NULL, token TEXT NOT NULL);
CREATE TABLE charges (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, card_id INTEGER NOT NULL, amount INTEGER NOT NULL);
INSERT INTO accts VALUES ('a', 'u1', 'ann@example.com'), ('b', 'u1', 'zoe@example.com');
INSERT INTO cards VALUES (1, 'a', 'u1', 'tok-a'), (2, 'b', 'u1', 'tok-b');
INSERT INTO charges VALUES (10, 'a', 1, 100), (11, 'b', 2, 200);
`
	const withTenant = `
tables:
  - name: accts
    category: profile
    tenant: tenant
    subject: {email: email, user_id: user_id}
    strategy: delete
  - name: cards
    category: payment_methods
    tenant: tenant
    join: {column: user_id, to: accts.user_id}
    strategy: delete
  - name: charges
    category: charges
    tenant: tenant
    join: {column: card_id, to: cards.id}
    strategy: delete
`
	// The same map, with the joined table naming no tenant: it would match
	// tenant b's cards of user u1 by key alone.
	noTenant := strings.Replace(withTenant, "    tenant: tenant\n    join: {column: user_id", "    join: {column: user_id", 1)
	if noTenant == withTenant {
		t.Fatal("test bug: the tenant line was not removed")
	}
	if _, err := dataset.Load([]byte(noTenant)); err == nil || !strings.Contains(err.Error(), `table "cards": names no tenant column`) {
		t.Fatalf("Load of a joined table without tenant = %v, want it refused", err)
	}

	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "tenants.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	m, err := dataset.Load([]byte(withTenant))
	if err != nil {
		t.Fatal(err)
	}
	e := dataset.New(db, m, nil)
	ctx := context.Background()
	for _, s := range []connector.Subject{{Email: "ann@example.com"}, {UserID: "u1"}} {
		res, err := e.Erase(ctx, task(s, "a"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Remaining != 0 {
			t.Fatalf("erase in tenant a = %+v", res)
		}
	}
	rows := func(table, tenant string) (n int) {
		t.Helper()
		if err := db.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE tenant = ?`, tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, table := range []string{"accts", "cards", "charges"} {
		if n := rows(table, "a"); n != 0 {
			t.Errorf("%s: %d rows of tenant a left", table, n)
		}
		if n := rows(table, "b"); n != 1 {
			t.Errorf("%s: %d rows of tenant b, want its 1 row untouched", table, n)
		}
	}
	if n := count(t, e, connector.Subject{UserID: "u1"}, "b"); n != 3 {
		t.Errorf("tenant b's u1 has %d rows, want 3", n)
	}

	// A map built without Load is refused by the engine itself.
	raw := &dataset.Map{Dialect: dataset.SQLite, Tables: []dataset.Table{
		{Name: "accts", Category: "profile", Subject: dataset.SubjectColumns{UserID: "user_id"}, Strategy: dataset.Delete},
	}}
	if _, err := dataset.New(db, raw, nil).Erase(ctx, task(connector.Subject{UserID: "u1"}, "b")); !errors.Is(err, dataset.ErrConfig) {
		t.Fatalf("erase through a map without tenant columns = %v, want ErrConfig", err)
	}
	if n := rows("accts", "b"); n != 1 {
		t.Fatalf("tenant b's account is gone")
	}
}

// TestEraseLeavesNoCopyInTheFiles: once an erasure returns, the subject's
// email is in no file of the database (main file, -wal, -shm): the WAL,
// which holds old page images until a checkpoint, is checkpointed and
// truncated after the erasure.
func TestEraseLeavesNoCopyInTheFiles(t *testing.T) {
	t.Setenv(pseudonym.KeyEnv, "")
	ctx := context.Background()
	dir := t.TempDir()
	const schema = `
CREATE TABLE IF NOT EXISTS people (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, email TEXT NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS people_email ON people (tenant, email);
CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, person_id TEXT NOT NULL, email TEXT NOT NULL);
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
`
	db, e, err := dataset.OpenSQLite(ctx, dir, "people.db", schema, []byte(m))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = dataset.SeedDemo(ctx, db, 50, func(ctx context.Context, tx *sql.Tx, i int) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO people VALUES (?, 'demo', ?, ?)`, dataset.DemoUserID(i), dataset.DemoEmail(i), fmt.Sprintf("Person %d", i)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO visits (tenant, person_id, email) VALUES ('demo', ?, ?)`, dataset.DemoUserID(i), dataset.DemoEmail(i))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	email := dataset.DemoEmail(7)
	if found := piitest.FilesHolding(t, dir, email); len(found) == 0 {
		t.Fatal("test bug: the seeded email is in no file")
	}
	res, err := e.Erase(ctx, task(connector.Subject{Email: email}, "demo"))
	if err != nil || res.Outcome != connector.Erased {
		t.Fatalf("erase = %+v, %v", res, err)
	}
	if found := piitest.FilesHolding(t, dir, email); len(found) > 0 {
		t.Fatalf("the erased email is still in %v", found)
	}
	if found := piitest.FilesHolding(t, dir, dataset.DemoEmail(8)); len(found) == 0 {
		t.Fatal("another person's email is gone too")
	}
}

// An erasure limited to categories (a consent withdrawal) erases those
// tables only, by data category or category.
func TestEraseCategories(t *testing.T) {
	for _, tt := range []struct {
		name       string
		categories []string
		want       map[string]int64
	}{
		{"data category", []string{"billing"}, map[string]int64{"invoices": 2}}, // retained by law: kept, columns erased
		{"category", []string{"login_history"}, map[string]int64{"login_history": 4}},
		{"none held", []string{"navigation"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := sqliteDB(t)
			e := dataset.New(db, loadMap(t, dataset.SQLite), hashKey)
			task := task(ann, "demo")
			task.Categories = tt.categories
			res, err := e.Erase(context.Background(), task)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(res.Counts) != fmt.Sprint(tt.want) && !(tt.want == nil && res.Outcome == connector.NotFound) {
				t.Fatalf("erased %v (%s), want %v", res.Counts, res.Outcome, tt.want)
			}
			left := int64(9)
			if tt.name == "category" {
				left -= tt.want["login_history"]
			}
			if n := count(t, e, ann, "demo"); int64(n) != left {
				t.Errorf("%d of Ann's 9 rows left, want %d", n, left)
			}
		})
	}
	var _ connector.CategoryEraser = (*dataset.Engine)(nil)
}

// After a restore, a re-application erases again exactly the people named
// by the keyed hashes of their identifiers, found by hashing the rows'
// own: Ann by her email (however the system spells it), no one else.
func TestReapply(t *testing.T) {
	db := sqliteDB(t)
	e := dataset.New(db, loadMap(t, dataset.SQLite), hashKey)
	key := []byte("the-orchestrator-subject-key")
	hashes := map[string]bool{
		pseudonym.Hash(key, "email:ann@example.com"):    true,
		pseudonym.Hash(key, "email:nobody@example.com"): true, // erased, not in this system
	}
	bobBefore := count(t, e, bob, "demo")
	res, err := e.Reapply(context.Background(), connector.ReapplyTask{RequestID: "req_r", TaskID: "req_r.sys", Tenant: "demo", Hashes: hashes, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != connector.Erased || res.Counts["profile"] != 1 {
		t.Fatalf("reapply = %s %v", res.Outcome, res.Counts)
	}
	if n := count(t, e, ann, "demo"); n != 2 { // her invoices, kept by law
		t.Errorf("Ann has %d rows after the re-application, want her 2 retained invoices", n)
	}
	if n := count(t, e, bob, "demo"); n != bobBefore {
		t.Errorf("Bob has %d rows after the re-application, had %d: someone else was touched", n, bobBefore)
	}
	if n := count(t, e, ann, "other"); n == 0 {
		t.Error("Ann's rows of another tenant went too")
	}
	again, err := e.Reapply(context.Background(), connector.ReapplyTask{RequestID: "req_r", TaskID: "req_r.sys", Tenant: "demo", Hashes: hashes, Key: key})
	if err != nil || again.Counts["profile"] != 0 {
		t.Errorf("a second re-application = %v %v, want nothing more", again.Counts, err)
	}
	var _ connector.Reapplier = e
}
