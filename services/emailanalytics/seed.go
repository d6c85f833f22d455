package emailanalytics

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/pkg/dataset"
)

var (
	agents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Thunderbird/128.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15",
		"Microsoft Outlook 16.0",
	}
	seedEpoch = time.Date(2025, 3, 3, 8, 0, 0, 0, time.UTC)
)

// Seed fills the system with the campaign events of sample people 1..n of
// tenant "demo". person-0001..0010 have 2 to 4 events; above that every
// fifth person has none (not_found). Seeding again adds only people not
// seeded before.
func (s *System) Seed(ctx context.Context, n int) error {
	return dataset.SeedDemo(ctx, s.db, n, seedPerson)
}

func seedPerson(ctx context.Context, tx *sql.Tx, i int) error {
	events := 1 + i%4
	switch {
	case i <= 10:
		events = 2 + i%3
	case i%5 == 0:
		events = 0
	}
	for j := 0; j < events; j++ {
		typ := "open"
		if j%2 == 1 {
			typ = "click"
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO email_events (id, tenant, email, campaign_id, event_type, at, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("seed-%04d-%d", i, j), dataset.DemoTenant, dataset.DemoEmail(i), fmt.Sprintf("campaign-%02d", 1+(i+j/2)%6), typ,
			seedEpoch.Add(time.Duration(i*13+j*5)*time.Hour).Format(time.RFC3339), agents[(i+j)%len(agents)]); err != nil {
			return err
		}
	}
	return nil
}
