// Package sqlitedb opens SQLite files (modernc.org/sqlite, pure Go) the way
// every Lethe store wants them: WAL journal, a busy timeout, foreign keys, and
// a single connection so that writers never meet SQLITE_BUSY, and
// secure_delete, so that erased rows are overwritten rather than left in
// free pages of the file. The files are private to the process's user
// (see [Open]). Commits are synced to the disk before they return
// (synchronous=FULL) unless [WithDurability] says [durability.Fast]
// (synchronous=NORMAL).
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/lethe-dev/lethe/pkg/datadir"
	"github.com/lethe-dev/lethe/pkg/durability"
)

// sidecars are the files SQLite keeps beside a database file.
var sidecars = []string{"-wal", "-shm", "-journal"}

// Option changes how [Open] opens a database.
type Option func(*options)

type options struct{ durability durability.Mode }

// WithDurability sets how far a commit goes before it returns:
// [durability.Strict] (the default) runs the database with
// synchronous=FULL, an fsync of the write-ahead log per commit, so that a
// committed transaction survives a power loss; [durability.Fast] with
// synchronous=NORMAL, which syncs the log only at checkpoints: a
// process crash loses nothing, a power loss may lose the last commits.
func WithDurability(m durability.Mode) Option {
	return func(o *options) { o.durability = m }
}

// synchronous is the value of PRAGMA synchronous a mode runs SQLite with:
// FULL for [durability.Strict], NORMAL for [durability.Fast].
func synchronous(m durability.Mode) string {
	if m.IsFast() {
		return "NORMAL"
	}
	return "FULL"
}

// Open opens (creating it and its directory if needed) the database at path,
// durable as opts say (by default [durability.Strict]: see [WithDurability]).
//
// The directory is made (or tightened to) 0700 and the database file 0600
// before SQLite opens it. SQLite would create the file 0644, and it gives
// the -wal, -shm and -journal files it makes later the mode of the database
// file: created 0600 here (an empty file is an empty database), they are
// all private. Sidecars an older version left 0644 are tightened too.
func Open(path string, opts ...Option) (*sql.DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := datadir.Ensure(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	if err := datadir.Create(path); err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	for _, suffix := range sidecars {
		if err := datadir.Tighten(path + suffix); err != nil {
			return nil, fmt.Errorf("sqlite %s: %w", path, err)
		}
	}
	// One connection: SQLite has one writer anyway, and a single connection
	// turns lock contention into queueing inside database/sql.
	return openPool(path, 1, "_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous("+synchronous(o.durability)+")&_pragma=secure_delete(1)&_txlock=immediate")
}

// OpenReader opens a pool of conns read-only connections to the database
// at path, which [Open] opened (and so created) first. In WAL mode a
// reader works from the last commit without waiting for the writer, and
// the writer does not wait for it: reads that ran on Open's one
// connection (a token's look-up on every API call, a status poll, a
// metrics scrape) queued the writer behind them. Close it before the
// writer's database, which then checkpoints the WAL last.
func OpenReader(path string, conns int) (*sql.DB, error) {
	return openPool(path, conns, "_pragma=query_only(1)")
}

// openPool opens conns connections to the database at path, kept open,
// each with the settings every connection wants (a busy timeout,
// temporary tables in memory) and pragmas (query parameters).
func openPool(path string, conns int, pragmas string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=temp_store(2)&"+pragmas)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return db, nil
}

// Checkpoint copies the WAL into the database file and truncates the WAL to
// zero bytes. Until a checkpoint, the -wal file keeps old page images, rows
// deleted since among them: it runs once identifiers were dropped, outside
// the transaction that dropped them, so erased data does not linger there
// (erasures share one through a [Scrubber]). It fails if another
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
