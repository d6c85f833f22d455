package hostoutbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lethe-dev/lethe/pkg/hostoutbox"
)

// TestPostgres runs the outbox on PostgreSQL, in a schema of its own that
// it drops afterwards: the same statements, the table in its dialect.
func TestPostgres(t *testing.T) {
	dsn := os.Getenv("LETHE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("LETHE_TEST_POSTGRES_DSN is not set: skipping the PostgreSQL run")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the schema is dropped
	ns := fmt.Sprintf("lethe_hostoutbox_test_%d", time.Now().UnixNano())
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
	if _, err := db.Exec(`CREATE TABLE users (id TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := hostoutbox.Ensure(context.Background(), db, hostoutbox.Postgres); err != nil {
			t.Fatal(err)
		}
	}

	_, b := startNATS(t, t.TempDir(), -1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := collect(t, ctx, b)
	change(t, db, "user-1", message(1), false) // rolled back
	change(t, db, "user-2", message(2), true)
	change(t, db, "user-3", message(3), true)
	change(t, db, "user-3", message(3), true) // enqueued again: one row
	if n := pending(t, db); n != 2 {
		t.Fatalf("%d messages pending, want 2", n)
	}
	relay := &hostoutbox.Relay{DB: db, Bus: b, Interval: time.Hour}
	run(t, relay)
	relay.Wake()
	expect(t, got, 2, 3)
	waitPending(t, db, 0)
}
