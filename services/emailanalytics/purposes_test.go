package emailanalytics

import (
	"context"
	"testing"
	"time"
)

func (s *System) rows(t *testing.T, table, email string) (n int64) {
	t.Helper()
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE tenant = 'demo' AND email = ?`, email).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A consent withdrawal from prospecting erases the person's prospecting
// data only and refuses a later enrichment, while their email events stay
// and imports of them go on; a full erasure suppresses everything.
func TestErasureByPurpose(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	const email = "person-0004@example.com"
	if s.rows(t, "interests", email) == 0 || s.events(t, "demo", email) == 0 {
		t.Fatal("the seeded person has no interests or events: the test proves nothing")
	}
	events := s.events(t, "demo", email)
	withdrawal := task(email)
	withdrawal.Categories = []string{"prospecting"}
	res, err := s.Erase(ctx, withdrawal)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts["interests"] == 0 || len(res.Counts) != 1 {
		t.Errorf("the withdrawal erased %v, want the interests only", res.Counts)
	}
	if s.rows(t, "interests", email) != 0 || s.events(t, "demo", email) != events {
		t.Errorf("after the withdrawal: %d interests, %d events (had %d)", s.rows(t, "interests", email), s.events(t, "demo", email), events)
	}
	interest := Interest{Topic: "webinars on AI", Preference: "weekly", At: time.Now()}
	if stored, err := s.Enrich(ctx, "demo", " Person-0004@Example.com", interest); err != nil || stored {
		t.Errorf("an enrichment after the withdrawal: stored %v (%v), want refused", stored, err)
	}
	if stored, err := s.Enrich(ctx, "demo", "person-0005@example.com", interest); err != nil || !stored {
		t.Errorf("an enrichment of someone else: stored %v (%v), want stored", stored, err)
	}
	if imported, err := s.Import(ctx, "demo", email, click); err != nil || !imported {
		t.Errorf("an email event after a withdrawal from prospecting only: imported %v (%v), want imported", imported, err)
	}
	if _, err := s.Erase(ctx, task(email)); err != nil {
		t.Fatal(err)
	}
	for _, category := range []string{"engagement", "prospecting", "cookies"} {
		if no, err := s.Suppressed(ctx, "demo", email, category); err != nil || !no {
			t.Errorf("after a full erasure, %s: suppressed %v (%v)", category, no, err)
		}
	}
}
