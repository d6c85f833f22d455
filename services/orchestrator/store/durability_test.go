package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

// setting reads a setting on n connections of db held at once, so that
// each is a connection of its own, and fails unless every one says want.
func setting(t *testing.T, db *sql.DB, query, want string, n int) {
	t.Helper()
	ctx := context.Background()
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var got string
		if err := c.QueryRowContext(ctx, query).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s on connection %d = %q, want %q", query, len(conns), got, want)
		}
	}
}

// The SQLite store syncs each commit (PRAGMA synchronous 2, FULL) unless
// opened fast (1, NORMAL), by path or by URL.
func TestSQLiteDurability(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []store.Option
		want string
	}{
		{"default", nil, "2"},
		{"strict", []store.Option{store.WithDurability(durability.Strict)}, "2"},
		{"fast", []store.Option{store.WithDurability(durability.Fast)}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lethe.db"), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			db, _ := store.BenchDB(s)
			setting(t, db, `PRAGMA synchronous`, tc.want, 1)

			u, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "lethe.db"), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			db, _ = store.BenchDB(u)
			setting(t, db, `PRAGMA synchronous`, tc.want, 1)
		})
	}
}

// Every connection of the PostgreSQL store commits synchronously
// (synchronous_commit on) unless opened fast (off); a synchronous_commit
// the URL sets itself wins.
func TestPostgresDurability(t *testing.T) {
	dsn := storetest.PostgresDSN(t) // skips, saying why, without LETHE_TEST_POSTGRES_DSN
	for _, tc := range []struct {
		name string
		dsn  string
		opts []store.Option
		want string
	}{
		{"default", dsn, nil, "on"},
		{"strict", dsn, []store.Option{store.WithDurability(durability.Strict)}, "on"},
		{"fast", dsn, []store.Option{store.WithDurability(durability.Fast)}, "off"},
		{"set by the URL", withParam(dsn, "synchronous_commit", "remote_write"), []store.Option{store.WithDurability(durability.Fast)}, "remote_write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), tc.dsn, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			db, _ := store.BenchDB(s)
			setting(t, db, `SHOW synchronous_commit`, tc.want, 3)
		})
	}
}

func withParam(dsn, name, value string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + name + "=" + value
	}
	return dsn + " " + name + "=" + value
}
