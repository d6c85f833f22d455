package hostoutbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/hostoutbox"
	"github.com/lethe-dev/lethe/pkg/pgtest"
)

// TestPostgres runs the outbox on PostgreSQL, in a schema of its own that
// it drops afterwards: the same statements, the table in its dialect.
func TestPostgres(t *testing.T) {
	db := pgtest.Schema(t, "lethe_hostoutbox_test")
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
