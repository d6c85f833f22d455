package dataset

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// DemoTenant is the tenant of the demo systems' sample people.
const DemoTenant = "demo"

// DemoEmail is the email of sample person i (from 1): person-0001@example.com.
func DemoEmail(i int) string { return fmt.Sprintf("person-%04d@example.com", i) }

// DemoUserID is the user id of sample person i (from 1): user-0001.
func DemoUserID(i int) string { return fmt.Sprintf("user-%04d", i) }

// SeedDemo fills a demo SQLite store with sample people up to n, calling add
// for each person not seeded before, in one transaction. It remembers how far
// the store was seeded, so seeding again adds only the people above that and
// never brings back a person erased since.
func SeedDemo(ctx context.Context, db *sql.DB, n int, add func(ctx context.Context, tx *sql.Tx, i int) error) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS lethe_demo_seed (people INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("dataset: seed marker: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("dataset: seed: %w", err)
	}
	defer tx.Rollback()
	var done int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(people), 0) FROM lethe_demo_seed`).Scan(&done); err != nil {
		return fmt.Errorf("dataset: seed marker: %w", err)
	}
	if n <= done {
		return nil
	}
	for i := done + 1; i <= n; i++ {
		if err := add(ctx, tx, i); err != nil {
			return fmt.Errorf("dataset: seed person %d: %w", i, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM lethe_demo_seed`); err != nil {
		return fmt.Errorf("dataset: seed marker: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO lethe_demo_seed (people) VALUES (?)`, n); err != nil {
		return fmt.Errorf("dataset: seed marker: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("dataset: seed: %w", err)
	}
	return analyze(ctx, db)
}

// analyze gives the query planner statistics: without them it may take
// an index by tenant (one value) over the subject's, for a lookup by
// email or user id. ANALYZE keeps, besides counts (sqlite_stat1),
// samples of the indexed values (sqlite_stat4): people's emails and
// ids, which an erasure would leave there. The samples go; the counts
// are enough for the planner to choose.
func analyze(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("dataset: analyze: %w", err)
	}
	var stat4 int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'sqlite_stat4'`).Scan(&stat4); err != nil {
		return fmt.Errorf("dataset: analyze: %w", err)
	}
	if stat4 > 0 {
		if _, err := db.ExecContext(ctx, `DELETE FROM sqlite_stat4`); err != nil {
			return fmt.Errorf("dataset: analyze: %w", err)
		}
	}
	// The planner reads the statistics again, without the samples.
	if _, err := db.ExecContext(ctx, `ANALYZE sqlite_schema`); err != nil {
		return fmt.Errorf("dataset: analyze: %w", err)
	}
	return nil
}

// WithAddedColumn makes [OpenSQLite] add column (its definition, "ended_at
// TEXT") to table when the file, made by an older version of the schema,
// lacks it: CREATE TABLE IF NOT EXISTS leaves an existing table as it is.
func WithAddedColumn(table, column, definition string) Option {
	return func(e *Engine) {
		e.addColumns = append(e.addColumns, [3]string{table, column, definition})
	}
}

// addColumn adds c (table, column, definition) unless the table has it.
func addColumn(ctx context.Context, db *sql.DB, c [3]string) error {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, c[0])
	if err != nil {
		return err
	}
	have := false
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		have = have || name == c[1]
	}
	rows.Close()
	if err := rows.Err(); err != nil || have {
		return err
	}
	if _, err := db.ExecContext(ctx, "ALTER TABLE "+quote(c[0])+" ADD COLUMN "+quote(c[1])+" "+c[2]); err != nil {
		return fmt.Errorf("add column %s.%s: %w", c[0], c[1], err)
	}
	return nil
}

// OpenSQLite opens a SQLite-backed system the way the demo connectors do:
// the database dataDir/file with schema applied, the map loaded, keyed by
// [pseudonym.LoadKey](dataDir), and checked against the database, synced as
// [WithDurability] says (by default an fsync per commit). The caller closes
// the returned database.
func OpenSQLite(ctx context.Context, dataDir, file, schema string, mapYAML []byte, opts ...Option) (*sql.DB, *Engine, error) {
	m, err := Load(mapYAML)
	if err != nil {
		return nil, nil, err
	}
	key, err := pseudonym.LoadKey(dataDir)
	if err != nil {
		return nil, nil, err
	}
	var o Engine // the options' settings, for the file's durability
	for _, opt := range opts {
		opt(&o)
	}
	db, err := sqlitedb.Open(filepath.Join(dataDir, file), sqlitedb.WithDurability(o.durability))
	if err != nil {
		return nil, nil, err
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("dataset: schema of %s: %w", file, err)
	}
	for _, c := range o.addColumns {
		if err := addColumn(ctx, db, c); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("dataset: schema of %s: %w", file, err)
		}
	}
	for _, q := range m.Indexes() {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("dataset: index of %s: %w", file, err)
		}
	}
	e := New(db, m, key, append(opts, WithDialect(SQLite))...)
	if err := e.Check(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, e, nil
}
