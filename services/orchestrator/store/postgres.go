package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/lethe-dev/lethe/pkg/durability"
)

// Postgres is the [Store] several orchestrator replicas share. It runs the
// SQL that [SQLite] runs, through pgx's database/sql driver, at READ
// COMMITTED with row locks where a transaction reads what it changes (see
// [Tx]), and SKIP LOCKED where replicas take work (DueTasks, ClaimOutbox).
type Postgres struct{ sqlStore }

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database of dsn (a postgres:// URL or
// key=value pairs; search_path=NAME selects a schema) and brings its schema
// up to date. Replicas starting together migrate one at a time. Every
// connection runs with synchronous_commit on, or off if opts say
// [durability.Fast] (see [WithDurability]), unless dsn sets it.
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, set := cfg.RuntimeParams["synchronous_commit"]; !set {
		cfg.RuntimeParams["synchronous_commit"] = synchronousCommit(apply(opts).durability)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	locker, err := schemaLocker(ctx, db)
	if err == nil {
		err = migrate(ctx, db, goose.DialectPostgres, "postgres", locker)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres store schema: %w", err)
	}
	return &Postgres{sqlStore{db: db, d: dialect{dollar: true, lockRows: true, writableCTE: true}, hashes: newHashCache()}}, nil
}

// synchronousCommit is the synchronous_commit a mode runs PostgreSQL
// connections with: on for [durability.Strict], off for [durability.Fast].
func synchronousCommit(m durability.Mode) string {
	if m.IsFast() {
		return "off"
	}
	return "on"
}

// schemaLocker returns a migration lock (an advisory lock) for the schema
// the store lives in: replicas of one store share it, stores in other
// schemas of the same database do not wait for each other.
func schemaLocker(ctx context.Context, db *sql.DB) (lock.SessionLocker, error) {
	var schema sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, err
	}
	if !schema.Valid {
		return nil, errors.New("no schema: search_path names none that exists")
	}
	h := fnv.New64a()
	h.Write([]byte("lethe/store:" + schema.String))
	return lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64())), lock.WithLockTimeout(1, 300))
}
