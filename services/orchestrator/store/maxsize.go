package store

import (
	"context"
	"fmt"
)

// SetMaxSize caps the database's size at about bytes (SQLite's
// max_page_count; 0 lifts the cap): past it, a write fails with
// ErrUnavailable, as on a full disk, while reads go on. An operator keeps
// room on a shared disk with it; the tests make a real full database.
func (s *SQLite) SetMaxSize(ctx context.Context, bytes int64) error {
	var pageSize int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		return fmt.Errorf("max size: %w", err)
	}
	pages := int64(4294967294) // SQLite's own maximum
	if bytes > 0 {
		pages = max(1, bytes/pageSize)
	}
	// The store's one connection (sqlitedb.Open) keeps it.
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		return fmt.Errorf("max size: %w", err)
	}
	return nil
}
