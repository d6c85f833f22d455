package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// EnvPostgres names the environment variable with the DSN of a PostgreSQL
// database that tests may create schemas in, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvPostgres = "LETHE_TEST_POSTGRES_DSN"

// PostgresDSN returns a DSN for a new, empty schema in the database of
// $LETHE_TEST_POSTGRES_DSN, dropped when the test ends; it skips the test
// when the variable is not set. Stores opened with it (several replicas
// may share it) live in that schema only.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvPostgres)
	if dsn == "" {
		t.Skipf("PostgreSQL tests skipped: %s is not set", EnvPostgres)
	}
	ctx := context.Background()
	schemaDSN, drop, err := NewSchema(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	return schemaDSN
}

// NewSchema creates a schema with a random name in the database of dsn and
// returns a DSN that selects it (search_path) and a function that drops it
// with everything in it.
func NewSchema(ctx context.Context, dsn string) (string, func(context.Context) error, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("test postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	name := "lethe_test_" + strings.ToLower(rand.Text()[:16])
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+name); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("test postgres: create schema: %w", err)
	}
	drop := func(ctx context.Context) error {
		defer db.Close()
		_, err := db.ExecContext(ctx, `DROP SCHEMA `+name+` CASCADE`)
		return err
	}
	return withSearchPath(dsn, name), drop, nil
}

// withSearchPath adds search_path to a URL or key=value DSN; pgx sends it
// to the server as a run-time parameter.
func withSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}
