package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Internals for the benchmark in package store_test.

// BenchDB returns the store's database and the function that rewrites a
// statement's ? placeholders for its engine.
func BenchDB(s Store) (*sql.DB, func(string) string) {
	switch s := s.(type) {
	case *SQLite:
		return s.db, s.d.q
	case *Postgres:
		return s.db, s.d.q
	}
	panic(fmt.Sprintf("unknown store %T", s))
}

// BenchSize returns the bytes the store's tables and indexes take: for
// PostgreSQL the total relation sizes (heap, TOAST, indexes) in the
// store's schema, for SQLite its pages.
func BenchSize(ctx context.Context, s Store) (int64, error) {
	var n int64
	switch s := s.(type) {
	case *SQLite:
		if err := s.db.QueryRowContext(ctx, `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`).Scan(&n); err != nil {
			return 0, err
		}
	case *Postgres:
		if err := s.db.QueryRowContext(ctx, `SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
			JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = current_schema() AND c.relkind = 'r'`).Scan(&n); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("unknown store %T", s)
	}
	return n, nil
}

// MarkTaskPublished is the statement that starts a published task's wait.
const MarkTaskPublished = markTaskPublished
