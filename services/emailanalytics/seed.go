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
	seedEpoch   = time.Date(2025, 3, 3, 8, 0, 0, 0, time.UTC)
	purposes    = []string{"chat", "audience_measurement", "customisation"}
	pages       = []string{"/", "/pricing", "/webinars", "/blog/gdpr-by-design", "/docs/getting-started", "/careers"}
	referrers   = []string{"https://www.google.com/", "https://www.linkedin.com/", "https://news.ycombinator.com/", ""}
	topics      = []string{"webinars", "product_news", "security", "case_studies", "events"}
	preferences = []string{"weekly digest", "monthly digest", "no phone calls", "invitations only"}
)

// Seed fills the system with sample people 1..n of tenant "demo":
// person-0001..0010 have 2 to 4 campaign events; above that every fifth
// person has nothing at all (not_found), the others 1 to 4 events. The
// events have fixed times; the rest is set around the seeding time (the
// system's clock: connector.Env's Now, or time.Now), on both sides of each
// retention period:
//
//   - 2 cookie choices each, one 6 months and 2 to 21 days old (past the 6
//     months they are kept), one at most 170 days old;
//   - 2 to 4 page views, the odd ones 50 months and 2 to 31 days old (past
//     the 50 months of navigation data), the even ones at most 1400 days;
//   - 1 or 2 interests, all with the person's last contact: 3 years and 2
//     to 11 days ago for i%4 == 1 (past the 3 years), else at most 1000
//     days ago.
//
// Seeding again adds only people not seeded before, around the new time:
// a person's data is the same but for that base.
func (s *System) Seed(ctx context.Context, n int) error {
	now := s.now().UTC().Truncate(time.Second)
	return dataset.SeedDemo(ctx, s.db, n, func(ctx context.Context, tx *sql.Tx, i int) error {
		return seedPerson(ctx, tx, i, now)
	})
}

func seedPerson(ctx context.Context, tx *sql.Tx, i int, now time.Time) error {
	if i > 10 && i%5 == 0 {
		return nil
	}
	events := 1 + i%4
	if i <= 10 {
		events = 2 + i%3
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
	t, email, hour := dataset.DemoTenant, dataset.DemoEmail(i), time.Duration(i%12)*time.Hour
	for j := 0; j < 2; j++ {
		at := now.AddDate(0, -6, -(2 + i%20))
		if j == 1 {
			at = now.AddDate(0, 0, -(1 + i*7%170))
		}
		choice := "granted"
		if (i+j)%4 == 0 {
			choice = "denied"
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cookie_consents (id, tenant, email, purpose, choice, set_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("consent-%04d-%d", i, j), t, email, purposes[(i+j)%len(purposes)], choice, stamp(at.Add(-hour))); err != nil {
			return err
		}
	}
	for j := 1; j <= 2+i%3; j++ {
		at := now.AddDate(0, 0, -(1 + (i*11+j)%1400))
		if j%2 == 1 {
			at = now.AddDate(0, -50, -(2 + (i+j)%30))
		}
		var referrer any // NULL: typed in
		if r := referrers[(i+j)%len(referrers)]; r != "" {
			referrer = r
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO page_views (id, tenant, email, url, referrer, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("view-%04d-%d", i, j), t, email, pages[(i+j)%len(pages)], referrer, stamp(at.Add(-hour-time.Duration(j)*time.Minute))); err != nil {
			return err
		}
	}
	contact := now.AddDate(0, 0, -(1 + i*13%1000))
	if i%4 == 1 {
		contact = now.AddDate(-3, 0, -(2 + i%10))
	}
	for j := 0; j < 1+i%2; j++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO interests (id, tenant, email, topic, preference, last_contact_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("interest-%04d-%d", i, j), t, email, topics[(i+j)%len(topics)], preferences[(i+2*j)%len(preferences)], stamp(contact.Add(-hour))); err != nil {
			return err
		}
	}
	return nil
}

// stamp is how the system stores a time: RFC 3339, UTC, to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
