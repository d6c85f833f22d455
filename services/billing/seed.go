package billing

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/pkg/dataset"
)

var (
	names   = []string{"Alice Martin", "Bruno Dubois", "Chloé Rossi", "Dmitri Novak", "Elena Garcia", "Farid Schmidt", "Grace Leroy"}
	streets = []string{"Example Street", "Sample Avenue", "Demo Road", "Placeholder Lane"}
	brands  = []string{"visa", "mastercard", "amex"}
	// First invoice date of the demo data: fixed, so the data (and the
	// retain-until dates receipts show) are the same on every run.
	seedEpoch = time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
)

// Seed fills the system with sample people 1..n of tenant "demo".
// person-0001..0010 have invoices (and a billing profile, some a card);
// above that, by i mod 4: 0 invoices and a profile, 1 a card only (an
// erasure answers erased), 2 nothing (not_found), 3 everything. Seeding
// again adds only people not seeded before.
func (s *System) Seed(ctx context.Context, n int) error {
	return dataset.SeedDemo(ctx, s.db, n, seedPerson)
}

func seedPerson(ctx context.Context, tx *sql.Tx, i int) error {
	invoices, card, profile := 0, false, false
	switch {
	case i <= 10:
		invoices, card, profile = 1+i%3, i%2 == 1, true
	case i%4 == 0:
		invoices, profile = 1+i%3, true
	case i%4 == 1:
		card = true
	case i%4 == 3:
		invoices, card, profile = 1+i%3, true, true
	}
	t, uid, email := dataset.DemoTenant, dataset.DemoUserID(i), dataset.DemoEmail(i)
	name := names[i%len(names)]
	address := fmt.Sprintf("%d %s, %05d Example City", 1+i%90, streets[i%len(streets)], 10000+i*7%89999)
	since := seedEpoch.AddDate(0, 0, i)
	if profile {
		if _, err := tx.ExecContext(ctx, `INSERT INTO billing_profiles (tenant, user_id, email, billing_name, address, vat_id, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			t, uid, email, name, address, fmt.Sprintf("EU%09d", i*7919%1000000000), since.Format(time.RFC3339)); err != nil {
			return err
		}
	}
	if card {
		if _, err := tx.ExecContext(ctx, `INSERT INTO payment_methods (id, tenant, user_id, email, card_token, brand, last4, exp_month, exp_year, added_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("pm-%04d", i), t, uid, email, fmt.Sprintf("tok_demo_%04d", i), brands[i%len(brands)],
			fmt.Sprintf("%04d", i*37%10000), 1+i%12, 2027+i%4, since.Format(time.RFC3339)); err != nil {
			return err
		}
	}
	for j := 0; j < invoices; j++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO invoices (id, tenant, user_id, email, billing_name, address, amount_cents, currency, issued_at, checkout_ip)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("INV-%04d-%02d", i, j+1), t, uid, email, name, address, 4900+100*(i%5), "EUR",
			since.AddDate(0, j, 0).Format(time.DateOnly), fmt.Sprintf("203.0.113.%d", (i+j)%254+1)); err != nil {
			return err
		}
	}
	return nil
}
