package accounts

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/pkg/dataset"
)

var (
	firstNames = []string{"Alice", "Bruno", "Chloé", "Dmitri", "Elena", "Farid", "Grace", "Hugo", "Inès", "Jonas", "Keiko", "Luca"}
	lastNames  = []string{"Martin", "Dubois", "Rossi", "Novak", "Garcia", "Schmidt", "Leroy", "Costa", "Moreau", "Weber"}
	countries  = []string{"FR", "DE", "ES", "IT", "BE", "NL", "PT", "IE"}
	questions  = []string{
		"Will the recording be available after the session?",
		"Can you share the slides?",
		"How does this compare with last year's release?",
		"Is there a free trial for teams?",
		"Could you repeat the part about pricing?",
	}
	seedEpoch = time.Date(2023, 1, 2, 9, 0, 0, 0, time.UTC)
)

// Seed fills the system with sample people 1..n of tenant "demo"
// (person-0001@example.com, user-0001, ...). Every ninth person above 10 has
// no account, so some tasks answer not_found; person-0001..0010 have a
// profile, logins and at least one webinar question. Seeding again adds only
// people not seeded before.
func (s *System) Seed(ctx context.Context, n int) error {
	return dataset.SeedDemo(ctx, s.db, n, seedPerson)
}

// HasDemoAccount reports whether demo person i has an account: every
// ninth person above 10 has none.
func HasDemoAccount(i int) bool { return i <= 10 || i%9 != 0 }

func seedPerson(ctx context.Context, tx *sql.Tx, i int) error {
	if !HasDemoAccount(i) {
		return nil
	}
	uid, t := dataset.DemoUserID(i), dataset.DemoTenant
	created := seedEpoch.Add(time.Duration(i) * 7 * time.Hour)
	name := firstNames[i%len(firstNames)] + " " + lastNames[(i/len(firstNames))%len(lastNames)]
	if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, tenant, email, name, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		uid, t, dataset.DemoEmail(i), name, created.Format(time.RFC3339)); err != nil {
		return err
	}
	for j := 1; j <= 1+i%3; j++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO logins (id, tenant, user_id, ip, country, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("login-%04d-%d", i, j), t, uid,
			fmt.Sprintf("198.51.100.%d", (i*7+j)%254+1), // documentation range (RFC 5737)
			countries[(i+j)%len(countries)], created.Add(time.Duration(j)*36*time.Hour).Format(time.RFC3339)); err != nil {
			return err
		}
	}
	comments := i % 3
	if i <= 10 {
		comments = 1 + i%2
	}
	for j := 1; j <= comments; j++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO comments (id, tenant, webinar_id, author_id, author_name, body, at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("comment-%04d-%d", i, j), t, fmt.Sprintf("webinar-%03d", (i+j)%12+1), uid, name,
			questions[(i+j)%len(questions)], created.Add(time.Duration(j)*50*time.Hour).Format(time.RFC3339)); err != nil {
			return err
		}
	}
	return nil
}
