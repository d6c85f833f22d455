package emailanalytics

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectortest"
	"github.com/lethe-dev/lethe/pkg/dataset"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/piitest"
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

// An erasure through the SDK puts the address on the connector's list,
// which Import asks: the next import of the person is refused, however the
// address is written, while other tenants and other people import as
// before. The list is a file the SDK wrote, not this process's memory: a
// system opened afresh on the folder refuses the import too.
func TestEraseSuppressesReimport(t *testing.T) {
	r := openWithSDK(t)
	ctx := context.Background()
	email := dataset.DemoEmail(2)
	before := r.events(t, "demo", email)

	rc := r.erase(t, " Person-0002@Example.com")
	if rc.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED || rc.GetRemaining() != 0 || r.events(t, "demo", email) != 0 {
		t.Fatalf("erasure receipt %v, %d events left of %d", rc, r.events(t, "demo", email), before)
	}
	if v := r.listed(t, email, "engagement"); !v.Suppressed || !slices.Equal(v.Reasons, []string{connector.SuppressedErased}) {
		t.Fatalf("the SDK's list after the erasure: %+v, want erased", v)
	}
	fresh, err := Open(ctx, connector.Env{DataDir: r.dir, SubjectKey: subjectKey})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for _, s := range []*System{r.System, fresh} {
		for _, addr := range []string{email, "PERSON-0002@example.com "} {
			ok, err := s.Import(ctx, "demo", addr, click)
			if err != nil || ok {
				t.Fatalf("import of an erased address %q = %v, %v; want refused", addr, ok, err)
			}
		}
	}
	if n := r.events(t, "demo", email); n != 0 {
		t.Fatalf("%d events after the refused import", n)
	}
	// Suppression is per tenant, like the erasure.
	if ok, err := r.Import(ctx, "acme", email, click); err != nil || !ok {
		t.Fatalf("import in another tenant = %v, %v; want imported", ok, err)
	}
	// Other people still import, once per event.
	for range 2 {
		if ok, err := r.Import(ctx, "demo", dataset.DemoEmail(3), click); err != nil || !ok {
			t.Fatalf("import of another person = %v, %v", ok, err)
		}
	}
	if n := r.events(t, "demo", dataset.DemoEmail(3)); n != 2+3%3+1 {
		t.Fatalf("person 3 has %d events, want the seeded ones and one import", n)
	}
	// The system keeps no suppression table of its own any more.
	var tables int
	if err := r.db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name IN ('suppressions', 'category_suppressions')`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("%d suppression tables in emailanalytics.db (%v), want none", tables, err)
	}
	r.logs.NoneOf(t, email)
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

// TestEraseLeavesNoCopyInTheFiles: after an erasure through the SDK, the
// address is in no file of the data directory, the SQLite WAL and
// shared-memory files included, nor the suppression list and the receipts
// the SDK keeps there (the list holds keyed hashes only).
func TestEraseLeavesNoCopyInTheFiles(t *testing.T) {
	r := openWithSDK(t)
	email := dataset.DemoEmail(3)
	if len(piitest.FilesHolding(t, r.dir, email)) == 0 {
		t.Fatal("test bug: the seeded address is in no file")
	}
	if rc := r.erase(t, email); rc.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED {
		t.Fatalf("erasure receipt: %v", rc)
	}
	if !r.listed(t, email, "").Suppressed {
		t.Fatal("the erased address is not on the suppression list")
	}
	if found := piitest.FilesHolding(t, r.dir, email); len(found) > 0 {
		t.Fatalf("the erased address is still in %v", found)
	}
	if len(piitest.FilesHolding(t, r.dir, dataset.DemoEmail(4))) == 0 {
		t.Fatal("another person's address is gone too")
	}
}
