package emailanalytics

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
)

func (s *System) rows(t *testing.T, table, email string) (n int64) {
	t.Helper()
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE tenant = 'demo' AND email = ?`, email).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A consent withdrawal from prospecting, through the SDK, erases the
// person's prospecting data only and refuses a later enrichment, while
// their email events stay and imports of them go on; a full erasure
// suppresses everything.
func TestErasureByPurpose(t *testing.T) {
	ctx := context.Background()
	r := openWithSDK(t)
	const email = "person-0004@example.com"
	if r.rows(t, "interests", email) == 0 || r.events(t, "demo", email) == 0 {
		t.Fatal("the seeded person has no interests or events: the test proves nothing")
	}
	events := r.events(t, "demo", email)
	rc := r.erase(t, email, "prospecting")
	if counts := rc.GetCounts(); len(counts) != 1 || counts[0].GetCategory() != "interests" || counts[0].GetCount() == 0 {
		t.Errorf("the withdrawal erased %v, want the interests only", counts)
	}
	if r.rows(t, "interests", email) != 0 || r.events(t, "demo", email) != events {
		t.Errorf("after the withdrawal: %d interests, %d events (had %d)", r.rows(t, "interests", email), r.events(t, "demo", email), events)
	}
	if v := r.listed(t, email, "prospecting"); !slices.Equal(v.Reasons, []string{connector.SuppressedPurpose}) {
		t.Errorf("the SDK's list for prospecting: %+v, want purpose", v)
	}
	interest := Interest{Topic: "webinars on AI", Preference: "weekly", At: time.Now()}
	if stored, err := r.Enrich(ctx, "demo", " Person-0004@Example.com", interest); err != nil || stored {
		t.Errorf("an enrichment after the withdrawal: stored %v (%v), want refused", stored, err)
	}
	if stored, err := r.Enrich(ctx, "demo", "person-0005@example.com", interest); err != nil || !stored {
		t.Errorf("an enrichment of someone else: stored %v (%v), want stored", stored, err)
	}
	if imported, err := r.Import(ctx, "demo", email, click); err != nil || !imported {
		t.Errorf("an email event after a withdrawal from prospecting only: imported %v (%v), want imported", imported, err)
	}
	if no, err := r.Suppressed(ctx, "demo", email, ""); err != nil || no {
		t.Errorf("after a withdrawal from prospecting only, any processing: suppressed %v (%v), want not", no, err)
	}
	r.erase(t, email)
	for _, category := range []string{"engagement", "prospecting", "cookies", ""} {
		if no, err := r.Suppressed(ctx, "demo", email, category); err != nil || !no {
			t.Errorf("after a full erasure, %q: suppressed %v (%v)", category, no, err)
		}
	}
}
