package connector_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

func applied(t *testing.T, path string) map[string]int64 {
	t.Helper()
	s, err := connector.OpenReceipts(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Applied(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Each stored receipt counts one applied effect, durably; storing a receipt
// again for the same task counts a second one.
func TestAppliedCount(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "receipts.db")
	s, err := connector.OpenReceipts(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"req_1.sys", "req_2.sys", "req_1.sys"} {
		if err := s.Put(ctx, &lethev1.Receipt{TaskId: id, Outcome: lethev1.Outcome_OUTCOME_ERASED}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := applied(t, path) // reopened: the counts are durable
	if len(got) != 2 || got["req_1.sys"] != 2 || got["req_2.sys"] != 1 {
		t.Fatalf("applied counts %v, want req_1.sys 2 and req_2.sys 1", got)
	}
}

// A second delivery of a task is answered from the stored receipt: the
// count stays 1.
func TestAppliedCountAfterRedelivery(t *testing.T) {
	dir := t.TempDir()
	sys := &scripted{results: []func() (connector.Result, error){erased}}
	r := runIn(t, dir, sys, nil)
	send(t, r.bus, "sys", 1)
	receive(t, r.receipts)
	send(t, r.bus, "sys", 2)
	for end := time.Now().Add(10 * time.Second); duplicates(t, r.reg) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the second delivery was not answered from the stored receipt")
		}
	}
	if got := applied(t, filepath.Join(dir, "receipts.db")); len(got) != 1 || got["req_1.sys"] != 1 {
		t.Fatalf("applied counts %v, want req_1.sys 1", got)
	}
}

// A store made before the count gets it, each receipt counted once.
func TestAppliedCountOlderStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "receipts.db")
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE receipts (task_id TEXT PRIMARY KEY, receipt BLOB NOT NULL,
		stored_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));
		INSERT INTO receipts (task_id, receipt) VALUES ('req_9.sys', x'00')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if got := applied(t, path); len(got) != 1 || got["req_9.sys"] != 1 {
		t.Fatalf("applied counts %v, want req_9.sys 1", got)
	}
}

// Start tells each delivery what the ones before left: nothing, work
// begun (a crash may have come after the effect), or the receipt.
func TestReceiptsStart(t *testing.T) {
	ctx := context.Background()
	s, err := connector.OpenReceipts(filepath.Join(t.TempDir(), "receipts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stored := &lethev1.Receipt{TaskId: "req_1.sys", Outcome: lethev1.Outcome_OUTCOME_ERASED}
	for i, tt := range []struct {
		before  func() error
		stored  bool
		resumed bool
	}{
		{nil, false, false},
		{nil, false, true},
		{func() error { return s.Put(ctx, stored) }, true, true},
	} {
		if tt.before != nil {
			if err := tt.before(); err != nil {
				t.Fatal(err)
			}
		}
		r, resumed, err := s.Start(ctx, "req_1.sys")
		if err != nil || (r != nil) != tt.stored || resumed != tt.resumed || (r != nil && r.GetOutcome() != stored.GetOutcome()) {
			t.Errorf("delivery %d: Start = %v, %v, %v; want stored %v, resumed %v", i+1, r, resumed, err, tt.stored, tt.resumed)
		}
	}
	if r, resumed, err := s.Start(ctx, "req_2.sys"); r != nil || resumed || err != nil {
		t.Errorf("another task: %v, %v, %v", r, resumed, err)
	}
}
