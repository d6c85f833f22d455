package dataset

import (
	"strconv"
	"strings"
	"time"
)

// Dialect is the SQL dialect of a database. The engine writes portable SQL
// (LOWER, TRIM, IN, double-quoted identifiers); dialects differ in their
// placeholders and in how they compare times ([query.before]).
type Dialect string

// Dialects the engine knows.
const (
	SQLite   Dialect = "sqlite"   // placeholders ?
	Postgres Dialect = "postgres" // placeholders $1, $2, ...
)

var dialects = map[Dialect]func(n int) string{
	SQLite:   func(int) string { return "?" },
	Postgres: func(n int) string { return "$" + strconv.Itoa(n) },
}

// quote quotes an identifier, each part of a schema-qualified one apart.
func quote(ident string) string {
	parts := strings.Split(ident, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// col is a column of t, qualified with the table's name: SQLite reads an
// unknown double-quoted name as a string literal, an unknown qualified one
// is an error everywhere, so a map naming a column that does not exist
// fails instead of silently matching nothing.
func (t *Table) col(c string) string { return quote(t.Name) + "." + quote(c) }

// query builds one statement, numbering its placeholders in the order its
// arguments are added.
type query struct {
	d    Dialect
	ph   func(int) string
	sql  strings.Builder
	args []any
}

func newQuery(d Dialect) *query { return &query{d: d, ph: dialects[d]} }

// w writes SQL text.
func (q *query) w(s ...string) *query {
	for _, x := range s {
		q.sql.WriteString(x)
	}
	return q
}

// arg adds an argument and writes its placeholder.
func (q *query) arg(v any) *query {
	q.args = append(q.args, v)
	q.sql.WriteString(q.ph(len(q.args)))
	return q
}

func (q *query) String() string { return q.sql.String() }

// before writes the condition "the time in expr is before t", comparing
// times, not their text: SQLite's julianday() reads its date formats (RFC
// 3339 with Z or an offset, "2006-01-02 15:04:05", a bare date, to the
// millisecond); PostgreSQL casts the value to timestamptz, so a timestamptz,
// a timestamp or date (in the session's time zone) and text in its input
// formats all compare. A NULL, or in SQLite text that is no date, is not
// before anything.
func (q *query) before(expr string, t time.Time) *query {
	t = t.UTC()
	if q.d == Postgres {
		return q.w("CAST(", expr, " AS timestamptz) < ").arg(t)
	}
	q.w("julianday(", expr, ") < julianday(")
	return q.arg(t.Format(time.RFC3339Nano)).w(")")
}
