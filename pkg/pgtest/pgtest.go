// Package pgtest gives a test a PostgreSQL database of its own: a schema
// on the server LETHE_TEST_POSTGRES_DSN names, dropped after the test, or
// a skip with the reason when the variable is not set.
package pgtest

import (
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// EnvDSN names the environment variable of the test server's URL.
const EnvDSN = "LETHE_TEST_POSTGRES_DSN"

// Schema opens a connection pool whose search_path is a new schema named
// after prefix, dropped (with everything in it) when the test ends.
func Schema(t testing.TB, prefix string) *sql.DB {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		t.Skip(EnvDSN + " is not set: skipping the PostgreSQL run")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the schema is dropped
	ns := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	if _, err := admin.Exec(`CREATE SCHEMA ` + ns); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + ns + ` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = ns
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { db.Close() })
	return db
}
