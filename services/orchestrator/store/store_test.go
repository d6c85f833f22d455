package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/pkg/sqlitedb"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

func openSQLite(t *testing.T, path string) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T, dsn string) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "lethe.db"))
	})
}

func TestPostgres(t *testing.T) {
	if os.Getenv(storetest.EnvPostgres) == "" {
		t.Skipf("PostgreSQL tests skipped: %s is not set", storetest.EnvPostgres)
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		return openPostgres(t, storetest.PostgresDSN(t))
	})
}

// TestSQLiteUpgrade: a database made by the release before versioned
// migrations (its schema, without log_head) is brought up to date with its
// log intact, and opening it again changes nothing.
func TestSQLiteUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lethe.db")
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE log_entries (idx INTEGER PRIMARY KEY, request_id TEXT NOT NULL, data BLOB NOT NULL)`,
		`CREATE TABLE log_hashes (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL)`,
		`INSERT INTO log_entries VALUES (0, 'req-1', x'01'), (1, 'req-1', x'02'), (2, 'req-2', x'03')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	for range 2 {
		s := openSQLite(t, path)
		if err := s.Tx(t.Context(), func(tx store.Tx) error {
			n, err := tx.LogSize(t.Context())
			if n != 3 {
				t.Errorf("log size %d after the upgrade, want 3", n)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestPostgresReplicasMigrateOnce: replicas starting at once on one empty
// schema all open; the schema is migrated once.
func TestPostgresReplicasMigrateOnce(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			s, err := store.OpenPostgres(context.Background(), dsn)
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied, versions int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&applied, &versions); err != nil {
		t.Fatal(err)
	}
	if applied != versions || versions < 2 {
		t.Errorf("%d migrations recorded for %d versions, want each of the (at least 2) versions once", applied, versions)
	}
}

func TestOpenPostgresBadDSN(t *testing.T) {
	for _, dsn := range []string{"postgres://host:notaport/db", "mysql://x"} {
		if _, err := store.OpenPostgres(t.Context(), dsn); err == nil {
			t.Errorf("OpenPostgres(%q) opened", dsn)
		}
	}
}
