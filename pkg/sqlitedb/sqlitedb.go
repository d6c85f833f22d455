// Package sqlitedb opens SQLite files (modernc.org/sqlite, pure Go) the way
// every Lethe store wants them: WAL journal, a busy timeout, foreign keys, and
// a single connection so that writers never meet SQLITE_BUSY, and
// secure_delete, so that erased rows are overwritten rather than left in
// free pages of the file.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating it and its directory if needed) the database at path.
func Open(path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=secure_delete(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and a single connection
	// turns lock contention into queueing inside database/sql.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return db, nil
}

// Checkpoint copies the WAL into the database file and truncates the WAL to
// zero bytes. Until a checkpoint, the -wal file keeps old page images, rows
// deleted since among them: an erasure calls it once committed, outside its
// transaction, so erased data does not linger there. It fails if another
// connection kept it from completing.
func Checkpoint(ctx context.Context, db *sql.DB) error {
	var busy, frames, done int
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &done); err != nil {
		return fmt.Errorf("sqlite checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("sqlite checkpoint: blocked by another connection")
	}
	return nil
}
