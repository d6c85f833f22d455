package recordings

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/datadir"
)

// DemoTenant is the tenant of the seeded demo data.
const DemoTenant = "demo"

var (
	titles = []string{"Quarterly product update", "Onboarding walkthrough", "Security Q&A",
		"Pricing deep dive", "Customer panel", "Integrations tour"}
	bodies = []string{"Thanks, very helpful!", "Could you share the slides?", "Is there a recording of part one?",
		"Great demo.", "How does this work with SSO?", "Can we export this to CSV?"}
	epoch = time.Date(2024, 1, 8, 9, 0, 0, 0, time.UTC)
)

func email(i int) string  { return fmt.Sprintf("person-%04d@example.com", i) }
func userID(i int) string { return fmt.Sprintf("user-%04d", i) }

// recordingCount is how many recordings person i gave. People 1..10 all have
// some (tests and docs rely on them); of the rest, every fourth has no data
// here at all and some others only chat.
func recordingCount(i int) int {
	switch {
	case i <= 10:
		return 1 + i%2
	case i%4 == 0:
		return 0
	default:
		return i % 3
	}
}

// chatPlan is where person i's k-th chat message goes: the owner of the
// recording and which of the owner's recordings. It depends on i and k only,
// never on how many people are seeded, so seeding 20 then 30 people gives the
// same data as seeding 30 at once. People 1..10 write in their own first
// recording and in two others'; the rest write in recordings of people 1..10.
func chatPlan(i int) []struct{ owner, rec int } {
	var out []struct{ owner, rec int }
	switch {
	case i <= 10:
		out = append(out, struct{ owner, rec int }{i, 0})
		for k := range 2 {
			o := (i+k*3)%10 + 1
			if o == i {
				o = o%10 + 1
			}
			out = append(out, struct{ owner, rec int }{o, k % recordingCount(o)})
		}
	case i%4 == 0:
	default:
		for k := range 1 + i%2 {
			o := (i*7+k*3)%10 + 1
			out = append(out, struct{ owner, rec int }{o, k % recordingCount(o)})
		}
	}
	return out
}

func recordingID(i, k int) string { return fmt.Sprintf("rec-%04d-%02d", i, k) }

// videoBytes is the deterministic placeholder content of a recording's file:
// a few KB that hash alike on every machine.
func videoBytes(id string, i, k int) []byte {
	size := 2048 + ((i+k)%4)*1024
	b := make([]byte, 0, size+sha256.Size)
	b = append(b, "LETHE DEMO RECORDING "+id+"\n"...)
	var ctr [8]byte
	for n := uint64(0); len(b) < size; n++ {
		binary.BigEndian.PutUint64(ctr[:], n)
		sum := sha256.Sum256(append([]byte(id), ctr[:]...))
		b = append(b, sum[:]...)
	}
	return b[:size]
}

// Seed fills the system with demo people 1..n of tenant "demo". It is
// deterministic and idempotent, and it never re-creates data: it remembers
// how many people it has seeded and only adds people beyond that, so a
// connector restarted with --seed does not bring back people erased since.
func (s *System) Seed(ctx context.Context, n int) error {
	var done int
	err := s.db.QueryRowContext(ctx, `SELECT people FROM seed_state WHERE id = 1`).Scan(&done)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("recordings: seed state: %w", err)
	}
	if n <= done {
		return nil
	}

	// Files are written before the rows are committed: a crash in between
	// leaves files without rows, which the next Seed writes again (same
	// bytes) before committing the rows that point at them.
	type row struct {
		id, webinar, user, email, title, file, created string
	}
	var recs []row
	for i := done + 1; i <= n; i++ {
		for k := range recordingCount(i) {
			id := recordingID(i, k)
			file := id + ".mp4"
			if err := datadir.WriteFile(s.path(file), videoBytes(id, i, k)); err != nil {
				return fmt.Errorf("recordings: seed file: %w", err)
			}
			addr := email(i)
			if i%7 == 0 { // some systems keep addresses as typed
				addr = "Person-" + strings.TrimPrefix(addr, "person-")
				addr = strings.Replace(addr, "example.com", "Example.COM", 1)
			}
			recs = append(recs, row{
				id: id, webinar: fmt.Sprintf("webinar-%03d", (i*3+k)%97), user: userID(i), email: addr,
				title: titles[(i+k)%len(titles)], file: file,
				created: epoch.Add(time.Duration(i)*24*time.Hour + time.Duration(k)*time.Hour).Format(time.RFC3339),
			})
		}
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recordings: seed: %w", err)
	}
	defer tx.Rollback()
	for _, r := range recs {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO recordings
			(id, tenant, webinar_id, speaker_user_id, speaker_email, title, file_name, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.id, DemoTenant, r.webinar, r.user, r.email, r.title, r.file, r.created); err != nil {
			return fmt.Errorf("recordings: seed recording: %w", err)
		}
	}
	// A message is new in this run if its author or its recording's owner is.
	for i := 1; i <= n; i++ {
		for k, p := range chatPlan(i) {
			if max(i, p.owner) <= done || p.owner > n {
				continue
			}
			at := epoch.Add(time.Duration(p.owner)*24*time.Hour + time.Duration(p.rec)*time.Hour + time.Duration(i*60+k)*time.Second)
			// Not into a recording erased since it was seeded.
			rec := recordingID(p.owner, p.rec)
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO chat_messages
				(id, tenant, recording_id, author_email, author_user_id, body, at)
				SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM recordings WHERE id = ?)`,
				fmt.Sprintf("chat-%04d-%02d", i, k), DemoTenant, rec, email(i), userID(i),
				bodies[(i+k)%len(bodies)], at.Format(time.RFC3339), rec); err != nil {
				return fmt.Errorf("recordings: seed chat message: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO seed_state (id, people) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET people = excluded.people`, n); err != nil {
		return fmt.Errorf("recordings: seed state: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("recordings: seed: %w", err)
	}
	return nil
}
