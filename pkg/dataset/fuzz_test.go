package dataset

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/period"
)

// FuzzLoad: any YAML as a dataset map. Load never panics; a map it
// accepts keeps the promises the engine builds SQL on (checked here
// without Load's own code: names, joins to earlier tables, strategies,
// retention rules, subject columns erased from kept rows), the SQL written
// from it quotes only the map's names and has one placeholder per
// argument, and it survives encoding: Load(yaml.Marshal(m)) is m.
func FuzzLoad(f *testing.F) {
	for _, s := range mapSeeds {
		f.Add([]byte(s))
	}
	// The maps the demo systems run by, when the services are beside pkg.
	for _, p := range []string{"accounts/accounts.yaml", "billing/billing.yaml", "emailanalytics/emailanalytics.yaml"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "services", p)); err == nil {
			f.Add(b)
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(data)
		if err != nil {
			if m != nil {
				t.Fatal("Load returned a map with its error")
			}
			return
		}
		if err := promises(m); err != "" {
			t.Fatalf("accepted a map that %s:\n%s", err, data)
		}
		checkSQL(t, m)

		out, err := yaml.Marshal(m)
		if err != nil {
			t.Fatalf("an accepted map does not encode: %v", err)
		}
		again, err := Load(out)
		if err != nil {
			t.Fatalf("the encoding of an accepted map is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normal(m), normal(again)) {
			t.Fatalf("Load -> yaml.Marshal -> Load changed the map:\n%#v\n%#v", m, again)
		}
	})
}

// normal is m with no empty column or clock map (one that decodes from
// "{}" rather than from nothing: the same map).
func normal(m *Map) *Map {
	c := *m
	c.Tables = slices.Clone(m.Tables)
	for i := range c.Tables {
		if len(c.Tables[i].Columns) == 0 {
			c.Tables[i].Columns = nil
		}
		if len(c.Tables[i].Clocks) == 0 {
			c.Tables[i].Clocks = nil
		}
	}
	return &c
}

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	snakeRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	quotedRE   = regexp.MustCompile(`"([^"]*)"`)
	numberedRE = regexp.MustCompile(`\$[0-9]+`)
	fuzzFrom   = time.Date(2024, 2, 29, 23, 30, 0, 0, time.UTC)
	fuzzTenant = "demo"
)

// promises checks what an accepted map promises, and says what it breaks
// ("" for nothing).
func promises(m *Map) string {
	if _, ok := dialects[m.Dialect]; !ok {
		return "has dialect " + string(m.Dialect)
	}
	if len(m.Tables) == 0 {
		return "has no tables"
	}
	seen := map[string]bool{}
	for _, t := range m.Tables {
		parts := strings.Split(t.Name, ".")
		if len(parts) > 2 || slices.ContainsFunc(parts, func(p string) bool { return !nameRE.MatchString(p) }) {
			return "names table " + t.Name
		}
		if seen[t.Name] {
			return "lists " + t.Name + " twice"
		}
		if !snakeRE.MatchString(t.Category) {
			return t.Name + ": has category " + t.Category
		}
		if !nameRE.MatchString(t.Tenant) {
			return t.Name + ": has tenant column " + t.Tenant
		}
		for _, c := range []string{t.Subject.Email, t.Subject.UserID} {
			if c != "" && !nameRE.MatchString(c) {
				return t.Name + ": has subject column " + c
			}
		}
		if t.Join != nil {
			if !nameRE.MatchString(t.Join.Column) || !seen[t.Join.table] || t.Join.To != t.Join.table+"."+t.Join.column ||
				!nameRE.MatchString(t.Join.column) {
				return t.Name + ": joins " + t.Join.Column + " to " + t.Join.To
			}
		} else if t.Subject.Email == "" && t.Subject.UserID == "" {
			return t.Name + ": cannot be matched to a subject"
		}
		for c, s := range t.Columns {
			if !nameRE.MatchString(c) || (s != SetNull && s != Hash) || c == t.Tenant {
				return t.Name + ": erases column " + c + " by " + string(s)
			}
		}
		for name, ref := range t.Clocks {
			// The column is after the last dot (a table may be
			// schema-qualified).
			dot := strings.LastIndex(ref, ".")
			joined, table, column := dot >= 0, ref[:max(dot, 0)], ref[dot+1:]
			switch {
			case !slices.Contains([]string{"record", "last_contact", "account_end"}, name) || !nameRE.MatchString(column):
				return t.Name + ": has clock " + name + " at " + ref
			case t.Strategy == Retain:
				return t.Name + ": retains rows a sweep erases by its clock " + name
			case joined && (t.Join == nil || table != t.Join.table):
				return t.Name + ": has clock " + name + " in a table it does not join to: " + ref
			case !joined && t.Columns[column] != "":
				return t.Name + ": erases its clock column " + column
			case !joined && t.Strategy == "" && slices.Contains(slices.Collect(maps.Values(t.Columns)), Hash):
				return t.Name + ": keeps hashed rows a sweep by their own time finds again"
			}
		}
		switch t.Strategy {
		case Delete:
			if len(t.Columns) > 0 || t.Retain != nil {
				return t.Name + ": deletes rows and erases columns or retains"
			}
		case Retain:
			r := t.Retain
			if r == nil || strings.TrimSpace(r.LegalBasis) == "" || r.period == (period.Period{}) || !nameRE.MatchString(r.From) || t.Columns[r.From] != "" {
				return t.Name + ": retains without a rule"
			}
			if kept := func(c string) bool { return c != "" && t.Columns[c] == "" }; !kept(t.Subject.Email) && !kept(t.Subject.UserID) {
				return t.Name + ": retains rows without a subject column to find them by"
			}
			if end := r.period.After(fuzzFrom); !end.After(fuzzFrom) {
				return t.Name + ": retains for a period that ends at its start: " + end.String()
			}
		case "":
			if len(t.Columns) == 0 || t.Retain != nil {
				return t.Name + ": does nothing"
			}
			for _, c := range []string{t.Subject.Email, t.Subject.UserID, t.joinColumn()} {
				if c != "" && t.Columns[c] == "" {
					return t.Name + ": keeps rows with subject column " + c
				}
			}
		default:
			return t.Name + ": has strategy " + string(t.Strategy)
		}
		seen[t.Name] = true
	}
	return ""
}

// checkSQL writes, in both dialects, each table's statements for a subject
// with every identifier and joined keys: each one matches (every table
// can be reached), quotes only the map's names, and has as many
// placeholders as arguments.
func checkSQL(t *testing.T, m *Map) {
	t.Helper()
	names := map[string]bool{}
	for _, tb := range m.Tables {
		for _, p := range strings.Split(tb.Name, ".") {
			names[p] = true
		}
		for _, c := range []string{tb.Tenant, tb.Subject.Email, tb.Subject.UserID, tb.joinColumn()} {
			names[c] = true
		}
		for c := range tb.Columns {
			names[c] = true
		}
		for name := range tb.Clocks {
			_, c := tb.clockRef(name)
			names[c] = true
		}
	}
	s := subject{email: "ann@example.com", userID: "u1", tenant: fuzzTenant}
	k := keys{}
	for _, tb := range m.Tables {
		if tb.Join != nil {
			k[tb.Join.To] = []any{"k1", "k2"}
		}
	}
	for _, d := range []Dialect{SQLite, Postgres} {
		e := New(nil, m, []byte("key"), WithDialect(d))
		for i := range m.Tables {
			tb := &m.Tables[i]
			del := newQuery(d).w("DELETE FROM ", quote(tb.Name), " WHERE ")
			if !e.where(del, tb, s, k) {
				t.Fatalf("%s: a subject with every identifier matches nothing", tb.Name)
			}
			nulls, hashed := sortedColumns(tb.Columns, SetNull), sortedColumns(tb.Columns, Hash)
			var vals []any
			for range hashed {
				vals = append(vals, "hash")
			}
			upd := e.update(tb, nulls, hashed, vals)
			e.where(upd, tb, s, k)
			sweeps := []*query{}
			for name := range tb.Clocks {
				q := newQuery(d).w("DELETE FROM ", quote(tb.Name), " WHERE ")
				e.swept(q, tb, connector.SweepTask{Tenant: fuzzTenant, Clock: name, Cutoff: fuzzFrom})
				sweeps = append(sweeps, q)
			}
			for _, q := range append([]*query{del, upd}, sweeps...) {
				sql := q.String()
				for _, g := range quotedRE.FindAllStringSubmatch(sql, -1) {
					if !names[g[1]] {
						t.Fatalf("%s: SQL quotes %q, which the map does not name: %s", d, g[1], sql)
					}
				}
				n := strings.Count(sql, "?")
				if d == Postgres {
					n = len(numberedRE.FindAllString(sql, -1))
				}
				if n != len(q.args) {
					t.Fatalf("%s: %d placeholders, %d arguments: %s", d, n, len(q.args), sql)
				}
			}
		}
	}
}

// mapSeeds are maps as a company writes them, and broken ones.
var mapSeeds = []string{
	`
dialect: sqlite
tables:
  - name: users
    category: profile
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
  - name: logins
    category: login_history
    tenant: tenant
    join: {column: user_id, to: users.id}
    strategy: delete
  - name: invoices
    category: invoices
    tenant: tenant
    subject: {email: email, user_id: user_id}
    strategy: retain
    retain: {legal_basis: "Accounting law", period: 10y, from: issued_at}
    columns: {checkout_ip: set_null}
  - name: comments
    category: comments
    tenant: tenant
    subject: {user_id: author_id}
    columns: {author_id: hash, author_name: set_null}
`,
	`
tables:
  - name: users
    category: profile
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
    clocks: {account_end: ended_at}
  - name: logins
    category: login_history
    tenant: tenant
    join: {column: user_id, to: users.id}
    strategy: delete
    clocks: {record: at, account_end: users.ended_at}
  - name: comments
    category: comments
    tenant: tenant
    join: {column: author_id, to: users.id}
    columns: {author_id: hash, author_name: set_null}
    clocks: {account_end: users.ended_at}
  - name: visits
    category: visits
    tenant: tenant
    subject: {email: email}
    columns: {email: set_null}
    clocks: {record: at, last_contact: seen_at}
`,
	`tables: [{name: t, category: c, tenant: tn, subject: {email: e}, strategy: delete, clocks: {record: x.at, birthday: b}}]`,
	`tables: [{name: t, category: c, tenant: tn, subject: {email: e}, columns: {e: hash}, clocks: {record: at}}]`,
	`
dialect: postgres
tables:
  - name: app.users
    category: profile
    tenant: org
    subject: {email: email}
    strategy: delete
  - name: app.comments
    category: comments
    tenant: org
    subject: {email: author_email, user_id: author_id}
    join: {column: author_id, to: app.users.id}
    columns: {author_id: hash, author_email: set_null, ip: set_null}
`,
	`
tables:
  - {name: events, category: email_events, tenant: tenant, subject: {email: email}, strategy: delete}
  - name: kept
    category: kept
    tenant: tenant
    subject: {user_id: uid}
    retain: {legal_basis: law, period: 13mo, from: at}
`,
	`tables: [{name: t, category: c, tenant: tn, subject: {email: e}, retain: {legal_basis: " ", period: 0d, from: at}}]`,
	`tables: [{name: t, category: c, tenant: tn, join: {column: x, to: later.id}, strategy: delete}]`,
	`tables: [{name: "t; DROP TABLE users", category: c, tenant: tn, subject: {email: e}, strategy: delete}]`,
	`tables: [{name: t, category: c, tenant: tn, subject: {email: e}, columns: {tn: set_null}}]`,
	`tables: [{name: t, category: c, tenant: tn, subject: {email: e}, strategy: delete, unknown: 1}]`,
	`dialect: mysql`,
	`tables: []`,
	"tables:\n  - &a {name: t}\n  - *a\n",
	"",
	"\t",
	"[",
}
