package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrations holds each engine's schema as versioned SQL files
// (NNNNN_name.sql, goose format). A released file is never edited: a
// change is a new file.
//
//go:embed migrations
var migrations embed.FS

// migrate applies the engine's migrations that the database lacks,
// recording them in goose_db_version. locker, if not nil, keeps replicas
// that start together from migrating at once.
func migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, engine string, locker lock.SessionLocker) error {
	fsys, err := fs.Sub(migrations, "migrations/"+engine)
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if locker != nil {
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	// Not p.Close: it would close db.
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
