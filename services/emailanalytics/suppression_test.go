package emailanalytics

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// A restriction of processing (Art. 18), through the SDK, keeps the
// person's data and refuses its processing: an import or an enrichment
// of them is refused until the restriction is lifted, and goes through
// again after.
func TestRestrictionRefusesProcessingUntilLifted(t *testing.T) {
	ctx := context.Background()
	r := openWithSDK(t)
	email, other := dataset.DemoEmail(6), dataset.DemoEmail(7)
	held := r.records(t, "demo", email)
	if held == 0 || r.rows(t, "interests", email) == 0 {
		t.Fatal("test bug: the seeded person has no records or no interests")
	}
	interest := Interest{Topic: "webinars on AI", Preference: "weekly", At: time.Now()}
	processed := func(who string) (imported, enriched bool) {
		t.Helper()
		imported, err := r.Import(ctx, "demo", who, Event{CampaignID: "campaign-r" + fmt.Sprint(r.sent), Type: "open", At: click.At})
		if err != nil {
			t.Fatal(err)
		}
		if enriched, err = r.Enrich(ctx, "demo", who, interest); err != nil {
			t.Fatal(err)
		}
		return imported, enriched
	}

	rc := r.do(t, &lethev1.Task{RequestId: "req_restrict", Action: lethev1.Action_ACTION_RESTRICT, Subject: &lethev1.Subject{Email: email}})
	if rc.GetOutcome() != lethev1.Outcome_OUTCOME_RESTRICTED || rc.GetRemaining() != held || len(rc.GetCounts()) == 0 {
		t.Fatalf("restriction receipt %v, want restricted with the %d records held", rc, held)
	}
	if n := r.records(t, "demo", email); n != held {
		t.Fatalf("the restriction changed the data: %d records, had %d", n, held)
	}
	if v := r.listed(t, email, "engagement"); !slices.Equal(v.Reasons, []string{connector.SuppressedRestricted}) {
		t.Fatalf("the SDK's list after the restriction: %+v, want restricted", v)
	}
	if imported, enriched := processed(" Person-0006@Example.com"); imported || enriched {
		t.Errorf("a restricted person: imported %v, enriched %v; want both refused", imported, enriched)
	}
	for _, category := range []string{"", "engagement", "prospecting", "cookies"} {
		if no, err := r.Suppressed(ctx, "demo", email, category); err != nil || !no {
			t.Errorf("a restricted person, %q: suppressed %v (%v), want suppressed", category, no, err)
		}
	}
	if n := r.records(t, "demo", email); n != held {
		t.Errorf("%d records after the refused processing, had %d", n, held)
	}
	if imported, enriched := processed(other); !imported || !enriched {
		t.Errorf("someone else during the restriction: imported %v, enriched %v; want both", imported, enriched)
	}

	rc = r.do(t, &lethev1.Task{RequestId: "req_lift", Action: lethev1.Action_ACTION_LIFT, RestrictionId: "req_restrict", Subject: &lethev1.Subject{Email: email}})
	if rc.GetOutcome() != lethev1.Outcome_OUTCOME_LIFTED {
		t.Fatalf("lift receipt: %v", rc)
	}
	if v := r.listed(t, email, ""); v.Suppressed {
		t.Fatalf("the SDK's list after the lift: %+v, want nothing", v)
	}
	if no, err := r.Suppressed(ctx, "demo", email, "engagement"); err != nil || no {
		t.Errorf("after the lift: suppressed %v (%v), want not", no, err)
	}
	if imported, enriched := processed(email); !imported || !enriched {
		t.Errorf("after the lift: imported %v, enriched %v; want both", imported, enriched)
	}
	r.logs.NoneOf(t, email)
}

// The suppression tables an earlier version kept in emailanalytics.db
// (the keyed hash of the bare address under the system's own key) cannot
// be moved to the SDK's list: they are still read, and no longer written.
func TestLegacySuppressionTablesStillRead(t *testing.T) {
	ctx := context.Background()
	t.Setenv(pseudonym.KeyEnv, "")
	dir := t.TempDir()
	env := connector.Env{DataDir: dir, SubjectKey: subjectKey}
	s, err := Open(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if s.legacy.any() {
		t.Fatal("a new database has legacy suppression rows")
	}
	// What an earlier version made and wrote: person 2 erased, person 4
	// withdrawn from prospecting.
	key, err := pseudonym.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`CREATE TABLE category_suppressions (
		tenant TEXT NOT NULL, email_hash TEXT NOT NULL, category TEXT NOT NULL, suppressed_at TEXT NOT NULL,
		PRIMARY KEY (tenant, email_hash, category));
	CREATE TABLE suppressions (tenant TEXT NOT NULL, email_hash TEXT NOT NULL, suppressed_at TEXT NOT NULL, PRIMARY KEY (tenant, email_hash))`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`INSERT INTO suppressions VALUES ('demo', ?, '2025-01-01T00:00:00Z')`, pseudonym.Hash(key, dataset.DemoEmail(2))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`INSERT INTO category_suppressions VALUES ('demo', ?, 'prospecting', '2025-01-01T00:00:00Z')`, pseudonym.Hash(key, dataset.DemoEmail(4))); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, env); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.legacy.full || !s.legacy.category {
		t.Fatalf("legacy tables found: %+v, want both", s.legacy)
	}

	interest := Interest{Topic: "events", Preference: "weekly", At: time.Now()}
	if ok, err := s.Import(ctx, "demo", "Person-0002@example.com", click); err != nil || ok {
		t.Errorf("import of a person erased before the SDK's list = %v, %v; want refused", ok, err)
	}
	if no, err := s.Suppressed(ctx, "demo", dataset.DemoEmail(2), ""); err != nil || !no {
		t.Errorf("a person erased before the SDK's list: suppressed %v (%v)", no, err)
	}
	if ok, err := s.Enrich(ctx, "demo", dataset.DemoEmail(4), interest); err != nil || ok {
		t.Errorf("enrichment of a person withdrawn before the SDK's list = %v, %v; want refused", ok, err)
	}
	if ok, err := s.Import(ctx, "demo", dataset.DemoEmail(4), click); err != nil || !ok {
		t.Errorf("import of an event of a person withdrawn from prospecting only = %v, %v; want imported", ok, err)
	}
	if ok, err := s.Enrich(ctx, "acme", dataset.DemoEmail(4), interest); err != nil || !ok {
		t.Errorf("enrichment in another tenant = %v, %v; want stored", ok, err)
	}

	// An erasure writes no legacy row (the SDK lists the person).
	if _, err := s.Erase(ctx, task(dataset.DemoEmail(6))); err != nil {
		t.Fatal(err)
	}
	withdrawal := task(dataset.DemoEmail(7))
	withdrawal.Categories = []string{"prospecting"}
	if _, err := s.Erase(ctx, withdrawal); err != nil {
		t.Fatal(err)
	}
	var full, category int
	if err := s.db.QueryRow(`SELECT (SELECT COUNT(*) FROM suppressions), (SELECT COUNT(*) FROM category_suppressions)`).Scan(&full, &category); err != nil {
		t.Fatal(err)
	}
	if full != 1 || category != 1 {
		t.Errorf("legacy tables hold %d and %d rows after two erasures, want the 1 and 1 of before", full, category)
	}
}

// Imports of a person racing with their erasure through the SDK either
// land before it, and are erased with the rest, or are refused: none is
// left after, and none is imported once the receipt is out.
func TestNoImportSlipsPastAnErasure(t *testing.T) {
	ctx := context.Background()
	r := openWithSDK(t)
	email := dataset.DemoEmail(2)
	var imported atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ok, err := r.Import(ctx, "demo", email, Event{CampaignID: fmt.Sprintf("race-%d-%d", g, i), Type: "open", At: click.At})
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					imported.Add(1)
				}
			}
		})
	}
	for imported.Load() < 8 {
		time.Sleep(time.Millisecond)
	}
	rc := r.erase(t, email)
	time.Sleep(20 * time.Millisecond) // imports go on after the receipt: all refused
	close(stop)
	wg.Wait()
	if lifecycle.OutcomeOf(rc.GetOutcome()) != lifecycle.Erased {
		t.Fatalf("erase answered %v: %s", rc.GetOutcome(), rc.GetDetail())
	}
	if n := r.events(t, "demo", email); n != 0 {
		t.Fatalf("%d events of the person after their erasure (%d imported in all)", n, imported.Load())
	}
}
