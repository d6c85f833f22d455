package dataset

import (
	"strconv"
	"strings"
)

// Dialect is the SQL dialect of a database. The engine writes portable SQL
// (LOWER, TRIM, IN, double-quoted identifiers); dialects differ only in
// their placeholders.
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
	ph   func(int) string
	sql  strings.Builder
	args []any
}

func newQuery(d Dialect) *query { return &query{ph: dialects[d]} }

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
