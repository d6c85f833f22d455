package store

import (
	"context"
	"fmt"

	"github.com/pressly/goose/v3"

	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// SQLite is the embedded [Store], for one orchestrator.
type SQLite struct{ sqlStore }

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (or creates) the store at path and brings its schema up
// to date.
func OpenSQLite(path string) (*SQLite, error) {
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, err
	}
	if err := migrate(context.Background(), db, goose.DialectSQLite3, "sqlite", nil); err != nil {
		db.Close()
		return nil, fmt.Errorf("store schema: %w", err)
	}
	return &SQLite{sqlStore{db: db}}, nil
}
