package dataset

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// Engine erases, exports and counts a subject's rows in one database
// through a [Map].
type Engine struct {
	db      *sql.DB
	m       *Map
	key     []byte
	dialect Dialect
	now     func() time.Time
	log     *slog.Logger
	// durability is the sync mode of the file OpenSQLite opens.
	durability durability.Mode
	// addColumns are the columns OpenSQLite adds to an older file.
	addColumns [][3]string
	// targets lists, per table, the columns other tables join to: the keys
	// resolved before anything is erased.
	targets map[string][]string
	// scrub empties a SQLite file's WAL after an erasure, one checkpoint
	// for the erasures committed meanwhile.
	scrub *sqlitedb.Scrubber
}

// Option tunes an [Engine].
type Option func(*Engine)

// WithDialect overrides the map's dialect (a map shared by a SQLite demo
// and a PostgreSQL production database, say).
func WithDialect(d Dialect) Option { return func(e *Engine) { e.dialect = d } }

// WithNow sets the clock that decides whether a retention period is over.
func WithNow(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithDurability sets how [OpenSQLite] syncs the file it opens (see
// sqlitedb.WithDurability; by default durability.Strict, an fsync per
// commit). An engine over a database opened elsewhere ([New]) ignores it.
func WithDurability(m durability.Mode) Option { return func(e *Engine) { e.durability = m } }

// WithLogger sets the logger of the engine's warnings; nil keeps the
// default, slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(e *Engine) {
		if l != nil {
			e.log = l
		}
	}
}

// New returns an engine over db. hashKey keys the [Hash] strategy; it may be
// nil for a map that hashes nothing.
func New(db *sql.DB, m *Map, hashKey []byte, opts ...Option) *Engine {
	e := &Engine{db: db, m: m, key: hashKey, dialect: m.Dialect, now: time.Now, log: slog.Default(), targets: map[string][]string{}, scrub: sqlitedb.NewScrubber(db)}
	for _, o := range opts {
		o(e)
	}
	for _, t := range m.Tables {
		if t.Join != nil && !contains(e.targets[t.Join.table], t.Join.column) {
			e.targets[t.Join.table] = append(e.targets[t.Join.table], t.Join.column)
		}
	}
	return e
}

// ErrConfig is returned for an engine that cannot work (an unknown dialect,
// a hash strategy without a key); errors.Is finds it through wrapping.
var ErrConfig = errors.New("dataset: bad engine configuration")

func (e *Engine) config() error {
	if _, ok := dialects[e.dialect]; !ok {
		return fmt.Errorf("%w: unknown dialect %q", ErrConfig, e.dialect)
	}
	for _, t := range e.m.Tables {
		// Load refuses such a map; this catches one built another way, which
		// would otherwise match rows of every tenant.
		if t.Tenant == "" {
			return fmt.Errorf("%w: table %q names no tenant column", ErrConfig, t.Name)
		}
	}
	if len(e.key) == 0 {
		for _, t := range e.m.Tables {
			for c, s := range t.Columns {
				if s == Hash {
					return fmt.Errorf("%w: table %q column %q is hashed but there is no hash key", ErrConfig, t.Name, c)
				}
			}
		}
	}
	return nil
}

// Check verifies that every table and column the map names exists, by
// selecting them from no rows. Call it when opening a system so that a map
// that does not fit the database fails at once, not at the first task.
func (e *Engine) Check(ctx context.Context) error {
	if err := e.config(); err != nil {
		return err
	}
	for i := range e.m.Tables {
		t := &e.m.Tables[i]
		names := append([]string{t.Tenant, t.Subject.Email, t.Subject.UserID, t.joinColumn()}, sortedColumns(t.Columns, "")...)
		if t.Retain != nil {
			names = append(names, t.Retain.From)
		}
		for _, u := range e.m.Tables {
			for name := range u.Clocks {
				// A clock of this table's own, or of a table whose join
				// comes here.
				if table, c := u.clockRef(name); (u.Name == t.Name && table == "") || (table == t.Name && u.Join != nil && u.Join.table == t.Name) {
					names = append(names, c)
				}
			}
		}
		cols := []string{}
		for _, c := range append(names, e.targets[t.Name]...) {
			if c != "" {
				cols = append(cols, t.col(c))
			}
		}
		rows, err := e.db.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+quote(t.Name)+" WHERE 1 = 0")
		if err != nil {
			return fmt.Errorf("dataset: table %q does not fit the map: %w", t.Name, err)
		}
		rows.Close()
	}
	return nil
}

// subject is what rows are matched on: the normalized email, the user id,
// and the tenant.
type subject struct{ email, userID, tenant string }

func newSubject(s connector.Subject, tenant string) subject {
	return subject{email: pseudonym.Normalize(s.Email), userID: strings.TrimSpace(s.UserID), tenant: tenant}
}

func (s subject) empty() bool { return s.email == "" && s.userID == "" }

// keys holds, per "table.column" that other tables join to, the values of
// that column in the subject's rows.
type keys map[string][]any

// runner is a *sql.DB or a *sql.Tx.
type runner interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// where writes the condition that selects the subject's rows of t: any of
// its identifiers or joined keys, always within the tenant (a joined key may
// be unique only per tenant). It returns false, writing nothing, if nothing
// can match (the subject lacks the identifiers the table holds).
func (e *Engine) where(q *query, t *Table, s subject, k keys) bool {
	byEmail := t.Subject.Email != "" && s.email != ""
	byUser := t.Subject.UserID != "" && s.userID != ""
	var joined []any
	if t.Join != nil {
		joined = k[t.Join.To]
	}
	if !byEmail && !byUser && len(joined) == 0 {
		return false
	}
	q.w("(")
	sep := ""
	if byEmail {
		q.w("LOWER(TRIM(", t.col(t.Subject.Email), ")) = ").arg(s.email)
		sep = " OR "
	}
	if byUser {
		q.w(sep, t.col(t.Subject.UserID), " = ").arg(s.userID)
		sep = " OR "
	}
	if len(joined) > 0 {
		q.w(sep, t.col(t.Join.Column), " IN (")
		for i, v := range joined {
			if i > 0 {
				q.w(", ")
			}
			q.arg(v)
		}
		q.w(")")
	}
	q.w(") AND ", t.col(t.Tenant), " = ").arg(s.tenant)
	return true
}

// resolve finds the subject's keys in every table other tables join to, in
// map order, so that a table reached through a chain of joins is found, and
// found still after the rows it joins to are deleted.
func (e *Engine) resolve(ctx context.Context, r runner, s subject) (keys, error) {
	k := keys{}
	for i := range e.m.Tables {
		t := &e.m.Tables[i]
		for _, c := range e.targets[t.Name] {
			q := newQuery(e.dialect).w("SELECT DISTINCT ", t.col(c), " FROM ", quote(t.Name), " WHERE ")
			if !e.where(q, t, s, k) {
				continue
			}
			vals, err := column(ctx, r, q)
			if err != nil {
				return nil, dbErr("resolve keys of", t.Name, err)
			}
			for _, v := range vals {
				if v != nil {
					k[t.Name+"."+c] = append(k[t.Name+"."+c], v)
				}
			}
		}
	}
	return k, nil
}

// Count returns how many rows of the subject the map finds in tenant: the
// fresh look behind a [connector.Result]'s Remaining.
func (e *Engine) Count(ctx context.Context, subj connector.Subject, tenant string) (int64, error) {
	return e.count(ctx, subj, tenant, nil)
}

// count is Count over the tables of categories (every table for none).
func (e *Engine) count(ctx context.Context, subj connector.Subject, tenant string, categories []string) (int64, error) {
	by, err := e.countBy(ctx, subj, tenant, categories)
	var n int64
	for _, c := range by {
		n += c
	}
	return n, err
}

// countBy counts the subject's rows of categories (every table for none)
// per table category, the categories of a receipt's counts; a category
// with no rows is left out.
func (e *Engine) countBy(ctx context.Context, subj connector.Subject, tenant string, categories []string) (map[string]int64, error) {
	if err := e.config(); err != nil {
		return nil, err
	}
	s := newSubject(subj, tenant)
	if s.empty() {
		return nil, nil
	}
	k, err := e.resolve(ctx, e.db, s)
	if err != nil {
		return nil, err
	}
	n := map[string]int64{}
	for i := range e.m.Tables {
		t := &e.m.Tables[i]
		q := newQuery(e.dialect).w("SELECT COUNT(*) FROM ", quote(t.Name), " WHERE ")
		if !t.in(categories) || !e.where(q, t, s, k) {
			continue
		}
		var c int64
		if err := e.db.QueryRowContext(ctx, q.String(), q.args...).Scan(&c); err != nil {
			return nil, dbErr("count", t.Name, err)
		}
		if c > 0 {
			n[t.Category] += c
		}
	}
	return n, nil
}

// Restrict counts what a restriction of processing (Art. 18) covers: the
// subject's rows per category, which stay as they are (the connector
// SDK marks the person on its suppression list). The engine is thus a
// connector.Restricter.
func (e *Engine) Restrict(ctx context.Context, task connector.Task) (connector.Result, error) {
	by, err := e.countBy(ctx, task.Subject, task.Tenant, nil)
	if err != nil || len(by) == 0 {
		return connector.Result{Outcome: connector.NotFound}, err
	}
	var n int64
	for _, c := range by {
		n += c
	}
	return connector.Result{Outcome: connector.Restricted, Counts: by, Remaining: n}, nil
}

// ErasesByCategory marks the engine a connector.CategoryEraser: Erase
// honours Task.Categories.
func (e *Engine) ErasesByCategory() {}

// in reports whether the table is in an erasure limited to categories
// (every table when none are given).
func (t *Table) in(categories []string) bool {
	return len(categories) == 0 || slices.Contains(categories, t.DataCategory) || slices.Contains(categories, t.Category)
}

// Erase erases the subject of t in one transaction, table by table in
// reverse map order (rows that join to others go first, so foreign keys
// hold), after resolving the keys that joined tables are found by. A task
// with categories erases the tables of those (data) categories only.
//
// Retained rows whose period is over (the latest from-date plus the period
// is past) are deleted: that is the deferred erasure the retention
// scheduled.
func (e *Engine) Erase(ctx context.Context, task connector.Task) (connector.Result, error) {
	if err := e.config(); err != nil {
		return connector.Result{}, err
	}
	s := newSubject(task.Subject, task.Tenant)
	if s.empty() {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return connector.Result{}, connector.Retryable(fmt.Errorf("dataset: begin erase: %w", err))
	}
	defer tx.Rollback()
	k, err := e.resolve(ctx, tx, s)
	if err != nil {
		return connector.Result{}, err
	}
	res := connector.Result{Counts: map[string]int64{}}
	var bases []string
	for i := len(e.m.Tables) - 1; i >= 0; i-- {
		t := &e.m.Tables[i]
		if !t.in(task.Categories) {
			continue // a limited erasure (consent withdrawal, objection)
		}
		n, until, err := e.eraseTable(ctx, tx, t, s, k)
		if err != nil {
			return connector.Result{}, err
		}
		if n == 0 {
			continue
		}
		res.Counts[t.Category] += n
		if !until.IsZero() {
			if !contains(bases, t.Retain.LegalBasis) {
				bases = append([]string{t.Retain.LegalBasis}, bases...)
			}
			if until.After(res.RetainUntil) {
				res.RetainUntil = until
			}
		}
	}
	if len(res.Counts) == 0 {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	if err := tx.Commit(); err != nil {
		return connector.Result{}, connector.Retryable(fmt.Errorf("dataset: commit erase: %w", err))
	}
	if e.dialect == SQLite {
		// The committed erasure is in the WAL, and so are the old page
		// images that hold the erased rows, until a checkpoint: move the
		// pages into the database file (whose freed space secure_delete
		// zeroes) and empty the WAL. The erasure is done either way: a
		// failure only leaves the copies to the next checkpoint.
		if err := e.scrub.Checkpoint(ctx); err != nil {
			e.log.WarnContext(ctx, "dataset: WAL checkpoint after erasure failed", "err", err)
		}
	}
	res.Outcome = connector.Erased
	if len(bases) > 0 {
		res.Outcome = connector.Retained
		res.LegalBasis = strings.Join(bases, "; ")
	}
	if res.Remaining, err = e.count(ctx, task.Subject, task.Tenant, task.Categories); err != nil {
		return connector.Result{}, err
	}
	return res, nil
}

// eraseTable erases the subject's rows of t and returns how many rows it
// touched and, for rows retained, until when.
func (e *Engine) eraseTable(ctx context.Context, tx *sql.Tx, t *Table, s subject, k keys) (int64, time.Time, error) {
	if !e.where(newQuery(e.dialect), t, s, k) {
		return 0, time.Time{}, nil
	}
	strategy := t.Strategy
	var until time.Time
	if strategy == Retain {
		q := newQuery(e.dialect).w("SELECT ", t.col(t.Retain.From), " FROM ", quote(t.Name), " WHERE ")
		e.where(q, t, s, k)
		froms, err := column(ctx, tx, q)
		if err != nil {
			return 0, time.Time{}, dbErr("read retention dates of", t.Name, err)
		}
		if len(froms) == 0 {
			return 0, time.Time{}, nil
		}
		var latest time.Time
		for _, v := range froms {
			d, ok := parseTime(v)
			if !ok {
				// No value in the error: it is the subject's data.
				return 0, time.Time{}, fmt.Errorf("dataset: table %q: column %q of a retained row is not a date", t.Name, t.Retain.From)
			}
			if d.After(latest) {
				latest = d
			}
		}
		until = t.Retain.period.After(latest)
		if !e.now().Before(until) {
			strategy, until = Delete, time.Time{}
		} else if len(t.Columns) == 0 {
			return int64(len(froms)), until, nil
		}
	}
	if strategy == Delete {
		q := newQuery(e.dialect).w("DELETE FROM ", quote(t.Name), " WHERE ")
		e.where(q, t, s, k)
		n, err := exec(ctx, tx, q)
		if err != nil {
			return 0, time.Time{}, dbErr("delete from", t.Name, err)
		}
		return n, until, nil
	}
	n, err := e.eraseColumns(ctx, tx, t, func(q *query) { e.where(q, t, s, k) })
	if err != nil {
		return 0, time.Time{}, dbErr("erase columns of", t.Name, err)
	}
	return n, until, nil
}

// eraseColumns nulls and hashes t's columns in the rows cond selects (the
// subject's, or those a sweep finds past its cut-off). A hash is computed
// here, not in SQL, so the rows are updated once per distinct combination
// of the hashed columns' values, in one statement each: the rows are
// selected before any of their columns change.
func (e *Engine) eraseColumns(ctx context.Context, tx *sql.Tx, t *Table, cond func(q *query)) (int64, error) {
	nulls, hashed := sortedColumns(t.Columns, SetNull), sortedColumns(t.Columns, Hash)
	if len(hashed) == 0 {
		q := e.update(t, nulls, nil, nil)
		cond(q)
		return exec(ctx, tx, q)
	}
	q := newQuery(e.dialect).w("SELECT DISTINCT ")
	for i, c := range hashed {
		if i > 0 {
			q.w(", ")
		}
		q.w(t.col(c))
	}
	q.w(" FROM ", quote(t.Name), " WHERE ")
	cond(q)
	tuples, err := scanAll(ctx, tx, q)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, vals := range tuples {
		q := e.update(t, nulls, hashed, vals)
		q.w("(")
		cond(q)
		q.w(")")
		for i, c := range hashed {
			if vals[i] == nil {
				q.w(" AND ", t.col(c), " IS NULL")
			} else {
				q.w(" AND ", t.col(c), " = ").arg(vals[i])
			}
		}
		m, err := exec(ctx, tx, q)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

// update writes "UPDATE t SET ... WHERE " with nulls set to NULL and hashed
// set to the keyed hashes of vals.
func (e *Engine) update(t *Table, nulls, hashed []string, vals []any) *query {
	q := newQuery(e.dialect).w("UPDATE ", quote(t.Name), " SET ")
	sep := ""
	for _, c := range nulls {
		q.w(sep, quote(c), " = NULL")
		sep = ", "
	}
	for i, c := range hashed {
		q.w(sep, quote(c), " = ")
		if vals[i] == nil {
			q.w("NULL")
		} else {
			q.arg(pseudonym.Hash(e.key, fmt.Sprint(text(vals[i]))))
		}
		sep = ", "
	}
	return q.w(" WHERE ")
}

// Export returns the subject's rows of every table the map lists, as one
// JSON object: category -> list of rows, each row column -> value.
func (e *Engine) Export(ctx context.Context, task connector.Task) (connector.Result, error) {
	if err := e.config(); err != nil {
		return connector.Result{}, err
	}
	s := newSubject(task.Subject, task.Tenant)
	if s.empty() {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	// One transaction: the export is one consistent picture.
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return connector.Result{}, connector.Retryable(fmt.Errorf("dataset: begin export: %w", err))
	}
	defer tx.Rollback()
	k, err := e.resolve(ctx, tx, s)
	if err != nil {
		return connector.Result{}, err
	}
	doc := connector.Records{}
	counts := map[string]int64{}
	for i := range e.m.Tables {
		t := &e.m.Tables[i]
		q := newQuery(e.dialect).w("SELECT * FROM ", quote(t.Name), " WHERE ")
		if !e.where(q, t, s, k) {
			continue
		}
		rows, err := exportRows(ctx, tx, q)
		if err != nil {
			return connector.Result{}, dbErr("export", t.Name, err)
		}
		if len(rows) > 0 {
			if doc[t.DataCategory] == nil {
				doc[t.DataCategory] = map[string][]map[string]any{}
			}
			doc[t.DataCategory][t.Category] = append(doc[t.DataCategory][t.Category], rows...)
			counts[t.Category] += int64(len(rows))
		}
	}
	if len(doc) == 0 {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return connector.Result{}, fmt.Errorf("dataset: encode export: %w", err)
	}
	return connector.Result{Outcome: connector.Exported, Counts: counts, Export: b}, nil
}

func exportRows(ctx context.Context, r runner, q *query) ([]map[string]any, error) {
	rows, err := r.QueryContext(ctx, q.String(), q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			row[c] = text(vals[i])
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// column returns the first column of every row q selects.
func column(ctx context.Context, r runner, q *query) ([]any, error) {
	tuples, err := scanAll(ctx, r, q)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(tuples))
	for i, t := range tuples {
		out[i] = t[0]
	}
	return out, nil
}

func scanAll(ctx context.Context, r runner, q *query) ([][]any, error) {
	rows, err := r.QueryContext(ctx, q.String(), q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			// Drivers may reuse a []byte after Next: keep a copy, as text.
			vals[i] = text(v)
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

func exec(ctx context.Context, r runner, q *query) (int64, error) {
	res, err := r.ExecContext(ctx, q.String(), q.args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// text turns the bytes a driver returns for a text column into a string.
func text(v any) any {
	if b, ok := v.([]byte); ok && utf8.Valid(b) {
		return string(b)
	}
	return v
}

// dbErr wraps a database failure; it is retryable (a lock, a lost
// connection): a map that does not fit the database is caught by Check. A
// cancelled or expired context is not: the caller gave up, and it decides
// what happens to the task.
func dbErr(op, table string, err error) error {
	err = fmt.Errorf("dataset: %s %q: %w", op, table, err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return connector.Retryable(err)
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02",
}

// parseTime reads a date as drivers return it: a time.Time, or text in one
// of the usual layouts.
func parseTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x, true
	case string:
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, strings.TrimSpace(x)); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

func sortedColumns(cols map[string]Strategy, only Strategy) []string {
	var out []string
	for c, s := range cols {
		if only == "" || s == only {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
