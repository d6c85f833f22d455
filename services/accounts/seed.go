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
	agents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
		"LetheDemoApp/3.2 (iOS 17.5; iPhone15,2)",
	}
	requests = []struct{ method, url string }{
		{"GET", "/api/v1/me"},
		{"GET", "/api/v1/webinars?upcoming=true"},
		{"POST", "/api/v1/webinars/42/register"},
		{"GET", "/api/v1/recordings/17"},
		{"PUT", "/api/v1/me/preferences"},
	}
)

// Seed fills the system with sample people 1..n of tenant "demo"
// (person-0001@example.com, user-0001, ...), their times set around the
// seeding time (the system's clock: connector.Env's Now, or time.Now), on
// both sides of each retention period:
//
//   - every ninth person above 10 has no account, so some tasks answer
//     not_found; person-0001..0010 have a profile, logins, technical logs
//     and at least one webinar question;
//   - accounts end (users.ended_at) for people above 10 with i%7 == 3, 3
//     years and 2 to 6 days before the seeding (past the account's 3-year
//     retention), and with i%7 == 5, 3 years less 2 to 6 days before (not
//     yet); the others are open (NULL);
//   - a person with an open account has 2 to 4 logins, the odd ones 13
//     months and 2 to 21 days old (past the 13 months of connection data),
//     the even ones at most 381 days old; and 2 or 3 technical log lines,
//     the odd ones a year and 2 to 26 days old (past the year of technical
//     data), the even ones at most 341 days old;
//   - the logins and technical logs of an ended account come before its
//     end (so all past 13 months and a year).
//
// Seeding again adds only people not seeded before, around the new time:
// a person's data is the same but for that base.
func (s *System) Seed(ctx context.Context, n int) error {
	now := s.now().UTC().Truncate(time.Second)
	return dataset.SeedDemo(ctx, s.db, n, func(ctx context.Context, tx *sql.Tx, i int) error {
		return seedPerson(ctx, tx, i, now)
	})
}

// HasDemoAccount reports whether demo person i has an account: every
// ninth person above 10 has none.
func HasDemoAccount(i int) bool { return i <= 10 || i%9 != 0 }

// demoAccountEnd is when demo person i's account ended, relative to the
// seeding time now: past the 3 years the account is kept (i%7 == 3), within
// them (i%7 == 5), or not (false: the account is open).
func demoAccountEnd(i int, now time.Time) (time.Time, bool) {
	switch {
	case i <= 10:
		return time.Time{}, false
	case i%7 == 3:
		return now.AddDate(-3, 0, -(2 + i%5)), true
	case i%7 == 5:
		return now.AddDate(-3, 0, 2+i%5), true
	}
	return time.Time{}, false
}

func seedPerson(ctx context.Context, tx *sql.Tx, i int, now time.Time) error {
	if !HasDemoAccount(i) {
		return nil
	}
	uid, t := dataset.DemoUserID(i), dataset.DemoTenant
	// Four years ago, plus up to 291 days: before any account's end.
	created := now.AddDate(-4, 0, 0).Add(time.Duration(i%1000) * 7 * time.Hour)
	ended, hasEnded := demoAccountEnd(i, now)
	var endedAt any // NULL: open
	if hasEnded {
		endedAt = stamp(ended)
	}
	name := firstNames[i%len(firstNames)] + " " + lastNames[(i/len(firstNames))%len(lastNames)]
	if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, tenant, email, name, created_at, ended_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		uid, t, dataset.DemoEmail(i), name, stamp(created), endedAt); err != nil {
		return err
	}
	hour := time.Duration(i%12) * time.Hour
	for j := 1; j <= 2+i%3; j++ {
		var at time.Time
		switch {
		case hasEnded:
			at = ended.AddDate(0, 0, -(1 + (i+j)*5%60))
		case j%2 == 1:
			at = now.AddDate(0, -13, -(2 + (i+j)%20))
		default:
			at = now.AddDate(0, 0, -(1 + (i*3+j)%380))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO logins (id, tenant, user_id, ip, country, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("login-%04d-%d", i, j), t, uid,
			fmt.Sprintf("198.51.100.%d", (i*7+j)%254+1), // documentation range (RFC 5737)
			countries[(i+j)%len(countries)], stamp(at.Add(-hour))); err != nil {
			return err
		}
	}
	for j := 1; j <= 2+i%2; j++ {
		var at time.Time
		switch {
		case hasEnded:
			at = ended.AddDate(0, 0, -(1 + (i+j)*3%60))
		case j%2 == 1:
			at = now.AddDate(-1, 0, -(2 + (i+j)%25))
		default:
			at = now.AddDate(0, 0, -(1 + (i*5+j)%340))
		}
		r := requests[(i+j)%len(requests)]
		if _, err := tx.ExecContext(ctx, `INSERT INTO technical_logs (id, tenant, user_id, ip, user_agent, method, url, status, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			fmt.Sprintf("tlog-%04d-%d", i, j), t, uid,
			fmt.Sprintf("203.0.113.%d", (i*11+j)%254+1), // documentation range (RFC 5737)
			agents[(i+j)%len(agents)], r.method, r.url, 200, stamp(at.Add(-hour-time.Duration(j)*time.Minute))); err != nil {
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
			questions[(i+j)%len(questions)], stamp(created.Add(time.Duration(j)*50*time.Hour))); err != nil {
			return err
		}
	}
	return nil
}

// stamp is how the system stores a time: RFC 3339, UTC, to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
