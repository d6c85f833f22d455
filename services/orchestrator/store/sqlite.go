package store

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"

	"github.com/pressly/goose/v3"

	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// SQLite is the embedded [Store], for one orchestrator.
type SQLite struct{ sqlStore }

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (or creates) the store at path and brings its schema up
// to date; each commit is synced to the disk unless opts say
// [durability.Fast] (see [WithDurability]).
func OpenSQLite(path string, opts ...Option) (*SQLite, error) {
	db, err := sqlitedb.Open(path, sqlitedb.WithDurability(apply(opts).durability))
	if err != nil {
		return nil, err
	}
	if err := migrate(context.Background(), db, goose.DialectSQLite3, "sqlite", nil); err != nil {
		db.Close()
		return nil, fmt.Errorf("store schema: %w", err)
	}
	reads, err := sqlitedb.OpenReader(path, readers())
	if err != nil {
		db.Close()
		return nil, err
	}
	st := &SQLite{sqlStore{db: db, stmts: newStatements(db), reads: reads, readStmts: newStatements(reads), hashes: newHashCache()}}
	st.group = st.groupCommit()
	return st, nil
}

// readers is how many connections the store's reads share: reads are
// short and CPU-bound, so one per CPU, and at least two, so that a slow
// one (a dashboard's list) does not hold up a token's look-up.
func readers() int { return max(2, runtime.GOMAXPROCS(0)) }

// groupCommit commits the store's transactions in groups: SQLite runs one
// write transaction at a time on its one connection, and a commit costs
// the same whether it carries one change or a hundred (see
// [sqlitedb.Group]). What a transaction keeps beside SQL (its log entries,
// the hashes it wrote, statements to prepare) follows its savepoints.
func (s *SQLite) groupCommit() *sqlitedb.GroupOf[*sqlTx] {
	return sqlitedb.NewGroupOf(s.db, sqlitedb.Hooks[*sqlTx]{
		Begin: func(tx *sql.Tx) *sqlTx {
			t := s.newTx(tx)
			t.grouped = true
			return t
		},
		Mark:         (*sqlTx).mark,
		BeforeCommit: func(ctx context.Context, t *sqlTx) error { return t.flushLog(ctx) },
		AfterCommit:  s.committed,
		Err:          unavailable,
	})
}

// WriterStats says how busy the store's one writer has been: every write
// of the orchestrator runs on it, so a writer busy all the time is the
// pipeline's bound (a PostgreSQL store runs its writes side by side).
func (s *SQLite) WriterStats() sqlitedb.GroupStats { return s.group.Stats() }

// Checkpoint copies the write-ahead log into the database file and
// truncates it. Run after identifiers were dropped, it leaves no copy of
// them in the -wal file (secure_delete has overwritten them in the
// database file's pages).
func (s *SQLite) Checkpoint(ctx context.Context) error { return sqlitedb.Checkpoint(ctx, s.db) }
