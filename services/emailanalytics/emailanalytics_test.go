package emailanalytics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/piitest"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectortest"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

func open(t *testing.T) (*System, string) {
	t.Helper()
	t.Setenv(pseudonym.KeyEnv, "")
	dir := t.TempDir()
	s, err := Open(context.Background(), connector.Env{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Seed(context.Background(), 20); err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// events counts the events of address email in tenant, looking at the table
// directly.
func (s *System) events(t *testing.T, tenant, email string) (n int64) {
	t.Helper()
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM email_events WHERE tenant = ? AND LOWER(email) = LOWER(?)`, tenant, email).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func task(email string) connector.Task {
	return connector.Task{RequestID: "r", TaskID: "r.emailanalytics", Tenant: "demo", Subject: connector.Subject{Email: email}}
}

var click = Event{CampaignID: "campaign-09", Type: "click", At: time.Date(2025, 9, 1, 10, 0, 0, 0, time.UTC), UserAgent: "test"}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Fixture {
		s, _ := open(t)
		return connectortest.Fixture{
			System:  s,
			Present: connector.Subject{Email: dataset.DemoEmail(1)},
			Absent:  connector.Subject{Email: dataset.DemoEmail(15)}, // every fifth above 10 has no events
			Remaining: func(_ context.Context, subj connector.Subject) (int64, error) {
				return s.records(t, "demo", subj.Email), nil
			},
		}
	})
}

func TestSeededPeople(t *testing.T) {
	s, _ := open(t)
	for i := 1; i <= 10; i++ {
		if s.events(t, "demo", dataset.DemoEmail(i)) == 0 {
			t.Errorf("person %d has no events", i)
		}
	}
	if err := s.Seed(context.Background(), 20); err != nil {
		t.Fatal(err)
	}
	if n := s.events(t, "demo", dataset.DemoEmail(1)); n != 3 {
		t.Fatalf("person 1 has %d events after seeding twice, want 3", n)
	}
}

func TestEraseSuppressesReimport(t *testing.T) {
	s, dir := open(t)
	ctx := context.Background()
	email := dataset.DemoEmail(2)
	before := s.events(t, "demo", email)

	res, err := s.Erase(ctx, task(" Person-0002@Example.com"))
	if err != nil || res.Outcome != connector.Erased || res.Counts["email_events"] != before || res.Remaining != 0 {
		t.Fatalf("erase = %+v, %v; want %d events erased", res, err, before)
	}
	for _, addr := range []string{email, "PERSON-0002@example.com "} {
		ok, err := s.Import(ctx, "demo", addr, click)
		if err != nil || ok {
			t.Fatalf("import of an erased address %q = %v, %v; want refused", addr, ok, err)
		}
	}
	if n := s.events(t, "demo", email); n != 0 {
		t.Fatalf("%d events after the refused import", n)
	}
	// Suppression is per tenant, like the erasure.
	if ok, err := s.Import(ctx, "acme", email, click); err != nil || !ok {
		t.Fatalf("import in another tenant = %v, %v; want imported", ok, err)
	}
	// Other people still import, once per event.
	for range 2 {
		if ok, err := s.Import(ctx, "demo", dataset.DemoEmail(3), click); err != nil || !ok {
			t.Fatalf("import of another person = %v, %v", ok, err)
		}
	}
	if n := s.events(t, "demo", dataset.DemoEmail(3)); n != 2+3%3+1 {
		t.Fatalf("person 3 has %d events, want the seeded ones and one import", n)
	}

	// The suppression list holds the keyed hash, never the address.
	key, err := pseudonym.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.Query(`SELECT tenant, email_hash, suppressed_at FROM suppressions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var hashes []string
	for rows.Next() {
		var tenant, h, at string
		rows.Scan(&tenant, &h, &at)
		if strings.Contains(tenant+h+at, "@") || strings.Contains(tenant+h+at, "person-") {
			t.Fatalf("suppression row holds an address: %q %q %q", tenant, h, at)
		}
		hashes = append(hashes, h)
	}
	if len(hashes) != 1 || hashes[0] != pseudonym.Hash(key, email) {
		t.Fatalf("suppression list = %v, want the one keyed hash of the address", hashes)
	}
}

func TestImportRejectsBadEvents(t *testing.T) {
	s, _ := open(t)
	tests := map[string]struct {
		tenant, email string
		ev            Event
	}{
		"no tenant":     {"", "a@example.com", click},
		"no address":    {"demo", "nobody", click},
		"unknown type":  {"demo", "a@example.com", Event{CampaignID: "c", Type: "bounce", At: click.At}},
		"no campaign":   {"demo", "a@example.com", Event{Type: "open", At: click.At}},
		"no event time": {"demo", "a@example.com", Event{CampaignID: "c", Type: "open"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ok, err := s.Import(context.Background(), tt.tenant, tt.email, tt.ev)
			if ok || !errors.Is(err, ErrBadEvent) {
				t.Fatalf("Import = %v, %v; want ErrBadEvent", ok, err)
			}
		})
	}
}

// TestEraseLeavesNoCopyInTheFiles: after an erasure, the address is in no
// file of the data directory, the SQLite WAL and shared-memory files
// included (the suppression list holds its keyed hash only).
func TestEraseLeavesNoCopyInTheFiles(t *testing.T) {
	s, dir := open(t)
	email := dataset.DemoEmail(3)
	if len(piitest.FilesHolding(t, dir, email)) == 0 {
		t.Fatal("test bug: the seeded address is in no file")
	}
	res, err := s.Erase(context.Background(), task(email))
	if err != nil || res.Outcome != connector.Erased {
		t.Fatalf("erase = %+v, %v", res, err)
	}
	if found := piitest.FilesHolding(t, dir, email); len(found) > 0 {
		t.Fatalf("the erased address is still in %v", found)
	}
	if len(piitest.FilesHolding(t, dir, dataset.DemoEmail(4))) == 0 {
		t.Fatal("another person's address is gone too")
	}
}
