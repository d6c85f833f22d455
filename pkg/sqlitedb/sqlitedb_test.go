package sqlitedb_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// perm is the permission bits of path.
func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// write makes SQLite create the -wal and -shm files beside the database.
func write(t *testing.T, path string) func() {
	t.Helper()
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS people (email TEXT); INSERT INTO people VALUES ('ada@example.com')`); err != nil {
		db.Close()
		t.Fatal(err)
	}
	return func() { db.Close() }
}

func TestOpenKeepsFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "accounts")
	path := filepath.Join(dir, "accounts.db")
	done := write(t, path)
	defer done()
	if got := perm(t, dir); got != 0o700 {
		t.Errorf("data directory is %04o, want 0700", got)
	}
	if got := perm(t, filepath.Dir(dir)); got != 0o700 {
		t.Errorf("parent made for it is %04o, want 0700", got)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if got := perm(t, f); got != 0o600 {
			t.Errorf("%s is %04o, want 0600", filepath.Base(f), got)
		}
	}
}

// An older version made the folder 0755 and the files 0644: opening the
// database again tightens them, and the sidecar files a crash left.
func TestOpenTightensAnOlderVersionsFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "orchestrator")
	path := filepath.Join(dir, "lethe.db")
	write(t, path)() // SQLite removes the -wal and -shm files on close
	for _, f := range []string{path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loose := []string{path, path + "-wal", path + "-shm", path + "-journal"}
	for _, f := range loose {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := perm(t, dir); got != 0o700 {
		t.Errorf("data directory is %04o, want 0700", got)
	}
	for _, f := range loose {
		if got := perm(t, f); got != 0o600 {
			t.Errorf("%s is %04o, want 0600", filepath.Base(f), got)
		}
	}
}

// PRAGMA synchronous is 2 (FULL: an fsync per commit) by default and in
// strict mode, 1 (NORMAL: synced at checkpoints) in fast mode, on every
// connection the pool opens.
func TestDurability(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []sqlitedb.Option
		want int
	}{
		{"default", nil, 2},
		{"strict", []sqlitedb.Option{sqlitedb.WithDurability(durability.Strict)}, 2},
		{"fast", []sqlitedb.Option{sqlitedb.WithDurability(durability.Fast)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "x.db"), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for range 2 {
				var got int
				if err := db.QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("PRAGMA synchronous = %d, want %d", got, tc.want)
				}
				// A connection the pool opens later is set up the same way.
				db.SetMaxIdleConns(0)
			}
		})
	}
}

// TestOpenReader: a reader sees what the writer committed, refuses to
// write, and the checkpoint that scrubs the WAL still completes beside it.
func TestOpenReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE people (email TEXT); INSERT INTO people VALUES ('ada@example.com')`); err != nil {
		t.Fatal(err)
	}
	r, err := sqlitedb.OpenReader(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int
	if err := r.QueryRow(`SELECT count(*) FROM people`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("reader counts %d people (%v), want 1", n, err)
	}
	if _, err := r.Exec(`DELETE FROM people`); err == nil {
		t.Fatal("a reader deleted rows")
	}
	if err := r.QueryRow(`SELECT count(*) FROM people`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the refused delete, %d people (%v), want 1", n, err)
	}
	if _, err := db.Exec(`DELETE FROM people`); err != nil {
		t.Fatal(err)
	}
	if err := sqlitedb.Checkpoint(t.Context(), db); err != nil {
		t.Fatalf("checkpoint beside a reader: %v", err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Fatalf("WAL after the checkpoint: %v, %v; want it truncated", fi, err)
	}
	if err := r.QueryRow(`SELECT count(*) FROM people`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("reader counts %d people after the delete (%v), want 0", n, err)
	}
}
