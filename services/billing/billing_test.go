package billing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectortest"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

func open(t *testing.T) *System {
	t.Helper()
	t.Setenv(pseudonym.KeyEnv, "")
	s, err := Open(context.Background(), connector.Env{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Seed(context.Background(), 20); err != nil {
		t.Fatal(err)
	}
	return s
}

// rows counts person i's rows looking at the tables directly.
func (s *System) rows(t *testing.T, i int) (invoices, cards, profiles int64) {
	t.Helper()
	count := func(table string) (n int64) {
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE tenant = 'demo' AND (email = ? OR user_id = ?)`,
			dataset.DemoEmail(i), dataset.DemoUserID(i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return count("invoices"), count("payment_methods"), count("billing_profiles")
}

func task(i int) connector.Task {
	return connector.Task{RequestID: "r", TaskID: "r.billing", Tenant: "demo", Subject: connector.Subject{Email: dataset.DemoEmail(i)}}
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Fixture {
		s := open(t)
		// Person 1 in the demo data; the suite asks about no other subject.
		return connectortest.Fixture{
			System:  s,
			Present: connector.Subject{Email: dataset.DemoEmail(1)},
			Absent:  connector.Subject{Email: dataset.DemoEmail(14)}, // i mod 4 = 2: nothing in billing
			Remaining: func(context.Context, connector.Subject) (int64, error) {
				inv, cards, profiles := s.rows(t, 1)
				return inv + cards + profiles, nil
			},
			Retains: true,
		}
	})
}

func TestSeededPeopleHaveInvoices(t *testing.T) {
	s := open(t)
	for i := 1; i <= 10; i++ {
		if inv, _, _ := s.rows(t, i); inv == 0 {
			t.Errorf("person %d has no invoice", i)
		}
	}
	inv, cards, profiles := s.rows(t, 13)
	if inv != 0 || cards != 1 || profiles != 0 {
		t.Errorf("person 13 = %d invoices, %d cards, %d profiles; want a card only", inv, cards, profiles)
	}
}

func TestInvoicesAreRetained(t *testing.T) {
	s := open(t)
	invoices, cards, profiles := s.rows(t, 3) // 1 + 3%3 = 1 invoice, a card, a profile
	var latest string
	s.db.QueryRow(`SELECT MAX(issued_at) FROM invoices WHERE user_id = 'user-0003'`).Scan(&latest)
	issued, err := time.Parse(time.DateOnly, latest)
	if err != nil {
		t.Fatal(err)
	}

	res, err := s.Erase(context.Background(), task(3))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != connector.Retained || res.Remaining != invoices {
		t.Fatalf("erase = %q remaining %d; want retained with the %d invoices", res.Outcome, res.Remaining, invoices)
	}
	if !res.RetainUntil.Equal(issued.AddDate(10, 0, 0)) || !strings.Contains(res.LegalBasis, "10 years") {
		t.Fatalf("retained until %v under %q; want %v, ten years after the latest invoice", res.RetainUntil, res.LegalBasis, issued.AddDate(10, 0, 0))
	}
	want := map[string]int64{"invoices": invoices, "payment_methods": cards, "billing_profile": profiles}
	for c, n := range want {
		if res.Counts[c] != n {
			t.Errorf("count %s = %d, want %d", c, res.Counts[c], n)
		}
	}
	left, cardsLeft, profilesLeft := s.rows(t, 3)
	if left != invoices || cardsLeft != 0 || profilesLeft != 0 {
		t.Fatalf("after erasure: %d invoices, %d cards, %d profiles; want the invoices only", left, cardsLeft, profilesLeft)
	}
	var tokens, ips, kept int
	s.db.QueryRow(`SELECT COUNT(*) FROM payment_methods WHERE card_token = 'tok_demo_0003'`).Scan(&tokens)
	s.db.QueryRow(`SELECT COUNT(*) FROM invoices WHERE user_id = 'user-0003' AND checkout_ip IS NOT NULL`).Scan(&ips)
	s.db.QueryRow(`SELECT COUNT(*) FROM invoices WHERE user_id = 'user-0003' AND billing_name <> '' AND address <> ''`).Scan(&kept)
	if tokens != 0 || ips != 0 || kept != int(invoices) {
		t.Fatalf("card tokens %d, invoices with checkout IP %d, complete invoices %d", tokens, ips, kept)
	}
}

func TestCardOnlyIsErased(t *testing.T) {
	s := open(t)
	res, err := s.Erase(context.Background(), task(13))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != connector.Erased || res.Remaining != 0 || res.Counts["payment_methods"] != 1 || res.LegalBasis != "" {
		t.Fatalf("erase of a card-only customer = %+v, want erased", res)
	}
	if inv, cards, _ := s.rows(t, 13); inv+cards != 0 {
		t.Fatal("rows remain")
	}
}

func TestExportHasEveryCategory(t *testing.T) {
	s := open(t)
	res, err := s.Export(context.Background(), task(1)) // 1 + 1%3 = 2 invoices, a card, a profile
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != connector.Exported || res.Counts["invoices"] != 2 || res.Counts["payment_methods"] != 1 || res.Counts["billing_profile"] != 1 {
		t.Fatalf("export = %q %v", res.Outcome, res.Counts)
	}
	if !strings.Contains(string(res.Export), "INV-0001-02") || strings.Contains(string(res.Export), "user-0002") {
		t.Fatalf("export holds the wrong records: %s", res.Export)
	}
}
