package sqlitedb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Each caller's deleted row is out of the WAL (and, secure_delete on, of
// the database file) once its Checkpoint returns, however many erase at
// the same time and share the checkpoints.
func TestScrubberEmptiesWhatEachCallerCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE people (email TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	const callers = 40
	for i := range callers {
		if _, err := db.Exec(`INSERT INTO people VALUES (?)`, fmt.Sprintf("person-%04d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	s := NewScrubber(db)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := fmt.Sprintf("person-%04d@example.com", i)
			if _, err := db.Exec(`DELETE FROM people WHERE email = ?`, email); err != nil {
				errs <- err
				return
			}
			if err := s.Checkpoint(ctx); err != nil {
				errs <- err
				return
			}
			for _, f := range []string{path + "-wal", path} {
				b, err := os.ReadFile(f)
				if err != nil && !os.IsNotExist(err) {
					errs <- err
					return
				}
				if bytes.Contains(b, []byte(email)) {
					errs <- fmt.Errorf("%s still holds %s after its checkpoint", filepath.Base(f), email)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A caller that gives up returns at once; the checkpoint it joined
	// still runs for the others.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Checkpoint(cancelled); err == nil {
		// The round may have ended before the select looked at ctx.
		t.Log("the checkpoint ended before the cancelled wait returned")
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
}
