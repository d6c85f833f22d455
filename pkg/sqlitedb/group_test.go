package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lethe-dev/lethe/pkg/durability"
)

func openGroup(t *testing.T) (*sql.DB, *Group) {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	g := NewGroup(db)
	t.Cleanup(func() { g.Close(); db.Close() })
	return db, g
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Concurrent callers share transactions; each one's failure undoes its
// own rows only, and each success is committed when Tx returns.
func TestGroupCommitsEachCallerAlone(t *testing.T) {
	db, g := openGroup(t)
	ctx := context.Background()
	boom := errors.New("boom")
	const callers = 200
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.Tx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO t (k) VALUES (?)`, fmt.Sprintf("k%d", i)); err != nil {
					return err
				}
				if i%3 == 0 {
					return boom // its row must not stay
				}
				return nil
			})
		}()
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		switch {
		case i%3 == 0 && !errors.Is(err, boom):
			t.Errorf("caller %d: %v, want its own error", i, err)
		case i%3 != 0 && err != nil:
			t.Errorf("caller %d: %v", i, err)
		case i%3 != 0:
			want++
		}
	}
	if got := count(t, db); got != want {
		t.Fatalf("%d rows, want %d: a failure undid others' work or kept its own", got, want)
	}
	var failed int
	if err := db.QueryRow(`SELECT COUNT(*) FROM t WHERE CAST(substr(k, 2) AS INTEGER) % 3 = 0`).Scan(&failed); err != nil || failed != 0 {
		t.Fatalf("%d rows of failed callers (%v)", failed, err)
	}
	// Every caller ran in a group; groups shared among them are fewer.
	st := g.Stats()
	if st.Members != callers || st.Groups < 1 || st.Groups > callers || st.Busy <= 0 {
		t.Errorf("stats %+v after %d callers", st, callers)
	}
}

func TestGroupStatementErrorAndPanic(t *testing.T) {
	db, g := openGroup(t)
	ctx := context.Background()
	if err := g.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k) VALUES ('a')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err := g.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k) VALUES ('a')`) // a duplicate
		return err
	})
	if err == nil {
		t.Fatal("a duplicate key was taken")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the function's panic did not reach its caller")
			}
		}()
		_ = g.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (k) VALUES ('b')`); err != nil {
				return err
			}
			panic("in the function")
		})
	}()
	if got := count(t, db); got != 1 {
		t.Fatalf("%d rows, want 1", got)
	}
	g.Close()
	if err := g.Tx(ctx, func(*sql.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Tx after Close = %v, want ErrClosed", err)
	}
}

// A caller that gave up before its turn runs nothing.
func TestGroupCancelledCallerRunsNothing(t *testing.T) {
	db, g := openGroup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := g.Tx(ctx, func(tx *sql.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("= %v, ran %v", err, ran)
	}
	if got := count(t, db); got != 0 {
		t.Fatalf("%d rows", got)
	}
}

// BenchmarkGroup: concurrent callers of one insert each, as the
// connectors' receipts are written.
func BenchmarkGroup(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "g.db"), WithDurability(durability.Fast))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		b.Fatal(err)
	}
	g := NewGroup(db)
	defer g.Close()
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := n.Add(1)
			if err := g.Tx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, k, make([]byte, 200))
				return err
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
