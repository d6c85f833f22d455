package dataset

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/pkg/connector"
)

var _ connector.Sweeper = (*Engine)(nil)

// Sweep applies a retention policy ([connector.Sweeper]): in one
// transaction, it erases the rows of the task's tenant whose clock is before
// the cut-off, in every table whose data_category (or category) the task
// names, and in every table whose clock of the same kind runs through its
// join to one of those (the logins and comments of an account whose end is
// past the period go with it, not left behind unreachable by the policy).
// A table whose strategy is delete loses the rows; one that keeps its rows
// has its columns erased as [Engine.Erase] erases them (set_null, hash), and
// is not found again by the next sweep. Tables go in reverse map order, as
// in Erase: rows that join to others first, so that joins still resolve.
//
// A task naming a retained table's category (the law keeps it), a category
// of a table without a clock of the task's clock, or a category no table
// holds is a configuration error, returned with ErrConfig, not retryable,
// naming the table, category and clock, and nothing is erased. A dry run
// erases the same rows and rolls back: its counts are what the sweep would
// erase, and nothing changes.
//
// The result is Erased with the rows erased per table category, or NotFound
// when nothing is past the cut-off; Remaining is what a fresh look still
// finds past it (0, or in a dry run the rows counted). Database failures
// are retryable, as Erase's.
func (e *Engine) Sweep(ctx context.Context, task connector.SweepTask) (connector.Result, error) {
	if err := e.config(); err != nil {
		return connector.Result{}, err
	}
	tables, err := e.sweepTables(task)
	if err != nil {
		return connector.Result{}, err
	}
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return connector.Result{}, connector.Retryable(fmt.Errorf("dataset: begin sweep: %w", err))
	}
	defer tx.Rollback()
	res := connector.Result{Counts: map[string]int64{}}
	for i := len(tables) - 1; i >= 0; i-- {
		t := tables[i]
		cond := func(q *query) { e.swept(q, t, task) }
		var n int64
		if t.Strategy == Delete {
			q := newQuery(e.dialect).w("DELETE FROM ", quote(t.Name), " WHERE ")
			cond(q)
			n, err = exec(ctx, tx, q)
		} else {
			n, err = e.eraseColumns(ctx, tx, t, cond)
		}
		if err != nil {
			return connector.Result{}, dbErr("sweep", t.Name, err)
		}
		if n > 0 {
			res.Counts[t.Category] += n
		}
	}
	if len(res.Counts) == 0 {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	if task.DryRun {
		if err := tx.Rollback(); err != nil {
			return connector.Result{}, connector.Retryable(fmt.Errorf("dataset: roll back dry-run sweep: %w", err))
		}
	} else {
		if err := tx.Commit(); err != nil {
			return connector.Result{}, connector.Retryable(fmt.Errorf("dataset: commit sweep: %w", err))
		}
		if e.dialect == SQLite {
			// As after an erasure: the WAL holds the old pages until a
			// checkpoint.
			if err := e.scrub.Checkpoint(ctx); err != nil {
				e.log.WarnContext(ctx, "dataset: WAL checkpoint after a retention sweep failed", "err", err)
			}
		}
	}
	res.Outcome = connector.Erased
	for _, t := range tables {
		q := newQuery(e.dialect).w("SELECT COUNT(*) FROM ", quote(t.Name), " WHERE ")
		e.swept(q, t, task)
		var n int64
		if err := e.db.QueryRowContext(ctx, q.String(), q.args...).Scan(&n); err != nil {
			return connector.Result{}, dbErr("count swept rows of", t.Name, err)
		}
		res.Remaining += n
	}
	return res, nil
}

// sweepTables returns, in map order, the tables a sweep erases rows of, or
// the configuration error that stops it.
func (e *Engine) sweepTables(task connector.SweepTask) ([]*Table, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: retention policy %q: %s", ErrConfig, task.Policy, fmt.Sprintf(format, args...))
	}
	switch {
	case strings.TrimSpace(task.Tenant) == "":
		return nil, bad("the sweep names no tenant")
	case task.Cutoff.IsZero():
		return nil, bad("the sweep has no cut-off")
	case !slices.Contains(connector.Clocks(), task.Clock):
		return nil, bad("unknown clock %q (want %s)", task.Clock, strings.Join(connector.Clocks(), ", "))
	case len(task.Categories) == 0:
		return nil, bad("the sweep names no data category")
	}
	selected := map[string]bool{}
	for _, c := range task.Categories {
		found := false
		for i := range e.m.Tables {
			t := &e.m.Tables[i]
			if t.Category != c && t.DataCategory != c {
				continue
			}
			found = true
			if t.Strategy == Retain {
				return nil, bad("table %q (category %q) is retained by law (%s): no retention policy sweeps it", t.Name, c, t.Retain.LegalBasis)
			}
			if _, col := t.clockRef(task.Clock); col == "" {
				return nil, bad("table %q (category %q) has no %s clock: the dataset map names no column for it", t.Name, c, task.Clock)
			}
			selected[t.Name] = true
		}
		if !found {
			return nil, bad("no table of this system holds data category %q", c)
		}
	}
	var out []*Table
	for i := range e.m.Tables {
		t := &e.m.Tables[i]
		if !selected[t.Name] && t.Strategy != Retain && t.Join != nil {
			// Rows whose clock is that of the row they join to go with it.
			if table, _ := t.clockRef(task.Clock); table != "" && table == t.Join.table && selected[table] {
				selected[t.Name] = true
			}
		}
		if !selected[t.Name] {
			continue
		}
		// Load refuses a map where these fail; this catches one built
		// another way, whose SQL would not hold.
		table, _ := t.clockRef(task.Clock)
		switch {
		case table != "" && (t.Join == nil || t.Join.table != table || t.Join.column == ""):
			return nil, bad("table %q: its %s clock is in table %q, which its join does not go to", t.Name, task.Clock, table)
		case table == "" && t.Strategy == "" && (len(sortedColumns(t.Columns, SetNull)) == 0 || len(sortedColumns(t.Columns, Hash)) > 0):
			return nil, bad("table %q keeps its rows: a sweep by its own %s clock needs columns erased by set_null only", t.Name, task.Clock)
		}
		out = append(out, t)
	}
	return out, nil
}

// swept writes the condition that selects the rows of t a sweep erases:
// in the task's tenant, whose clock is before the cut-off, not yet
// anonymised. For a clock in the table t joins to, that is the rows joining
// to a row of the tenant whose time is before the cut-off (an anonymised
// row, whose join column is erased, joins to none); a kept row found by its
// own column is anonymised while one of its nulled columns holds a value.
func (e *Engine) swept(q *query, t *Table, task connector.SweepTask) {
	q.w(t.col(t.Tenant), " = ").arg(task.Tenant).w(" AND ")
	table, column := t.clockRef(task.Clock)
	if table == "" {
		q.before(t.col(column), task.Cutoff)
		if t.Strategy == "" {
			q.w(" AND (")
			for i, c := range sortedColumns(t.Columns, SetNull) {
				if i > 0 {
					q.w(" OR ")
				}
				q.w(t.col(c), " IS NOT NULL")
			}
			q.w(")")
		}
		return
	}
	p := e.table(table)
	q.w(t.col(t.Join.Column), " IN (SELECT ", p.col(t.Join.column), " FROM ", quote(p.Name), " WHERE ",
		p.col(p.Tenant), " = ").arg(task.Tenant).w(" AND ")
	q.before(p.col(column), task.Cutoff)
	q.w(")")
}

// table returns the map's table named name, which validation made sure
// exists.
func (e *Engine) table(name string) *Table {
	for i := range e.m.Tables {
		if e.m.Tables[i].Name == name {
			return &e.m.Tables[i]
		}
	}
	panic("dataset: the map has no table " + name)
}
