package recordings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/piitest"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectortest"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

const seedPeople = 40

func open(t *testing.T, dir string) *System {
	t.Helper()
	s, err := Open(context.Background(), connector.Env{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func seeded(t *testing.T) *System {
	t.Helper()
	s := open(t, t.TempDir())
	if err := s.Seed(context.Background(), seedPeople); err != nil {
		t.Fatal(err)
	}
	return s
}

func subject(i int) connector.Subject { return connector.Subject{Email: email(i), UserID: userID(i)} }

func task(s connector.Subject, id string) connector.Task {
	return connector.Task{RequestID: id, TaskID: id + "." + Name, Tenant: DemoTenant, Subject: s, Attempt: 1}
}

// count looks at the tables and the files directory directly, not through
// the connector's own queries.
func count(t *testing.T, s *System, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// files maps every file in the files directory to its sha256.
func files(t *testing.T, s *System) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(s.files)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.files, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = hex.EncodeToString(sum[:])
	}
	return out
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Fixture {
		s := seeded(t)
		return connectortest.Fixture{
			System: s,
			// As a request may spell it: another case, stray spaces.
			Present: connector.Subject{Email: "  Person-0003@Example.com ", UserID: userID(3)},
			Absent:  subject(12), // seeded, but with no data here
			Remaining: func(ctx context.Context, subj connector.Subject) (int64, error) {
				e, u := email(3), userID(3)
				if subj.UserID != u {
					e, u = email(12), userID(12)
				}
				var n int64
				rows, err := s.db.QueryContext(ctx, `SELECT file_name FROM recordings
					WHERE tenant = 'demo' AND (lower(speaker_email) = ? OR speaker_user_id = ?)`, e, u)
				if err != nil {
					return 0, err
				}
				defer rows.Close()
				for rows.Next() {
					var f string
					if err := rows.Scan(&f); err != nil {
						return 0, err
					}
					n++ // the row
					if _, err := os.Stat(filepath.Join(s.files, f)); err == nil {
						n++ // its file
					}
				}
				var chat int64
				err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM chat_messages
					WHERE tenant = 'demo' AND (author_email = ? OR author_user_id = ?)`, e, u).Scan(&chat)
				return n + chat, err
			},
		}
	})
}

func TestEraseRemovesFilesAndLeavesOthers(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	const who = 1
	before := files(t, s)
	var mine []string
	rows, err := s.db.Query(`SELECT file_name FROM recordings WHERE speaker_user_id = ?`, userID(who))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var f string
		rows.Scan(&f)
		mine = append(mine, f)
	}
	rows.Close()
	if len(mine) == 0 {
		t.Fatal("fixture person has no recordings")
	}
	inOthers := count(t, s, `SELECT count(*) FROM chat_messages c JOIN recordings r ON r.id = c.recording_id
		WHERE c.author_user_id = ? AND r.speaker_user_id != ?`, userID(who), userID(who))
	if inOthers == 0 {
		t.Fatal("fixture person wrote no chat in others' recordings")
	}
	othersChat := count(t, s, `SELECT count(*) FROM chat_messages c JOIN recordings r ON r.id = c.recording_id
		WHERE c.author_user_id != ? AND r.speaker_user_id != ?`, userID(who), userID(who))
	ownChat := count(t, s, `SELECT count(*) FROM chat_messages WHERE author_user_id = ?`, userID(who))
	othersInMine := count(t, s, `SELECT count(*) FROM chat_messages c JOIN recordings r ON r.id = c.recording_id
		WHERE c.author_user_id != ? AND r.speaker_user_id = ?`, userID(who), userID(who))
	if othersInMine == 0 {
		t.Fatal("fixture person's recordings hold no one else's chat")
	}

	res, err := s.Erase(ctx, task(connector.Subject{Email: email(who)}, "r1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != connector.Erased || res.Remaining != 0 {
		t.Fatalf("erase = %+v", res)
	}
	// Others' messages in the subject's recordings go with the recordings,
	// counted apart from the subject's own.
	if res.Counts[CategoryRecordings] != int64(len(mine)) || res.Counts[CategoryChatMessages] != ownChat ||
		res.Counts[CategoryChatInRecordings] != othersInMine {
		t.Fatalf("counts = %v, want %d recordings, %d own chat messages (%d in others' recordings), %d others' messages in the subject's recordings",
			res.Counts, len(mine), ownChat, inOthers, othersInMine)
	}
	if n := count(t, s, `SELECT count(*) FROM chat_messages WHERE recording_id NOT IN (SELECT id FROM recordings)`); n != 0 {
		t.Errorf("%d chat messages left of erased recordings", n)
	}

	after := files(t, s)
	for _, f := range mine {
		if _, err := os.Stat(filepath.Join(s.files, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file %s still on disk (%v)", f, err)
		}
		delete(before, f)
	}
	if len(after) != len(before) {
		t.Errorf("%d files left, want %d", len(after), len(before))
	}
	for f, sum := range before {
		if after[f] != sum {
			t.Errorf("someone else's file %s was changed or removed", f)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM chat_messages WHERE author_user_id = ?`, userID(who)); n != 0 {
		t.Errorf("%d chat messages of the subject remain", n)
	}
	if n := count(t, s, `SELECT count(*) FROM chat_messages c JOIN recordings r ON r.id = c.recording_id
		WHERE c.author_user_id != ? AND r.speaker_user_id != ?`, userID(who), userID(who)); n != othersChat {
		t.Errorf("others' chat in others' recordings: %d, want %d", n, othersChat)
	}
}

// A crash after the files were deleted but before the rows were: the next
// attempt must find the rows and finish.
func TestEraseAfterCrashBetweenFilesAndRows(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	rows, err := s.db.Query(`SELECT file_name FROM recordings WHERE speaker_user_id = ?`, userID(2))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for rows.Next() {
		var f string
		rows.Scan(&f)
		if err := os.Remove(filepath.Join(s.files, f)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	rows.Close()
	if n == 0 {
		t.Fatal("fixture person has no recordings")
	}
	res, err := s.Erase(ctx, task(subject(2), "r2"))
	if err != nil {
		t.Fatalf("erase after crash: %v", err)
	}
	if res.Outcome != connector.Erased || res.Remaining != 0 || res.Counts[CategoryRecordings] != int64(n) {
		t.Fatalf("erase after crash = %+v", res)
	}
	if c := count(t, s, `SELECT count(*) FROM recordings WHERE speaker_user_id = ?`, userID(2)); c != 0 {
		t.Fatalf("%d rows left", c)
	}
}

func TestEraseMatchesEitherIdentifierWithinTenant(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		subj connector.Subject
	}{
		{"email only, as stored in another case", connector.Subject{Email: "PERSON-0007@example.com"}},
		{"user id only", connector.Subject{UserID: userID(7)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := seeded(t)
			// The same person in another tenant, with a file of its own.
			if _, err := s.db.Exec(`INSERT INTO recordings VALUES ('rec-other', 'acme', 'w', ?, ?, 't', 'rec-other.mp4', '2024-01-01T00:00:00Z')`,
				userID(7), email(7)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(s.files, "rec-other.mp4"), []byte("other tenant"), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := s.Erase(ctx, task(tt.subj, "r3"))
			if err != nil || res.Outcome != connector.Erased || res.Remaining != 0 {
				t.Fatalf("erase = %+v, %v", res, err)
			}
			if n := count(t, s, `SELECT count(*) FROM recordings WHERE speaker_user_id = ? AND tenant = 'demo'`, userID(7)); n != 0 {
				t.Fatalf("%d of the subject's recordings left in tenant demo", n)
			}
			if n := count(t, s, `SELECT count(*) FROM recordings WHERE id = 'rec-other'`); n != 1 {
				t.Fatal("another tenant's recording was erased")
			}
			if _, err := os.Stat(filepath.Join(s.files, "rec-other.mp4")); err != nil {
				t.Fatalf("another tenant's file: %v", err)
			}
		})
	}
}

func TestNoIdentifierIsPermanentError(t *testing.T) {
	s := seeded(t)
	_, err := s.Erase(context.Background(), task(connector.Subject{Email: "  "}, "r4"))
	if !errors.Is(err, ErrNoIdentifier) || connector.IsRetryable(err) {
		t.Fatalf("err = %v, want permanent ErrNoIdentifier", err)
	}
	if n := count(t, s, `SELECT count(*) FROM recordings`); n == 0 {
		t.Fatal("an empty subject erased everything")
	}
}

// An export lists the subject's recordings and hands each video over as a
// file to stream, with the bytes on disk; the records hold no video.
func TestExportHandsOverFiles(t *testing.T) {
	s := seeded(t)
	res, err := s.Export(context.Background(), task(subject(1), "r5"))
	if err != nil || res.Outcome != connector.Exported {
		t.Fatalf("export = %q, %v", res.Outcome, err)
	}
	var doc struct {
		Recordings struct {
			Recordings []struct {
				ID   string `json:"id"`
				File string `json:"file"`
			} `json:"recordings"`
		} `json:"recordings"`
		Contributions struct {
			ChatMessages []struct {
				AuthorEmail string `json:"author_email"`
			} `json:"chat_messages"`
		} `json:"contributions"`
	}
	if err := json.Unmarshal(res.Export, &doc); err != nil {
		t.Fatal(err)
	}
	recs := doc.Recordings.Recordings
	if len(recs) == 0 || int64(len(recs)) != res.Counts[CategoryRecordings] || len(res.Files) != len(recs) {
		t.Fatalf("export has %d recordings and %d files, counts %v", len(recs), len(res.Files), res.Counts)
	}
	onDisk := files(t, s)
	for i, f := range res.Files {
		if f.Name != recs[i].File || f.Category != CategoryRecordings || !strings.HasPrefix(f.ContentType, "video/") {
			t.Errorf("file %d: %q (%s, %s) for recording file %q", i, f.Name, f.Category, f.ContentType, recs[i].File)
		}
		rc, err := f.Open(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := hex.EncodeToString(h.Sum(nil)), onDisk[strings.TrimPrefix(f.Name, recs[i].ID+"-")]; got != want {
			t.Errorf("file %q streams bytes of digest %s, the recording on disk has %s", f.Name, got, want)
		}
	}
	if len(doc.Contributions.ChatMessages) == 0 {
		t.Fatal("export has no chat messages")
	}
	for _, m := range doc.Contributions.ChatMessages {
		if m.AuthorEmail != email(1) {
			t.Fatalf("export holds someone else's chat message")
		}
	}
	if len(res.Export) > 8<<10 {
		t.Fatalf("export is %d bytes: video bytes included?", len(res.Export))
	}
}

func TestSeed(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	for i := 1; i <= 10; i++ {
		res, err := s.Export(ctx, task(subject(i), "s"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Counts[CategoryRecordings] == 0 || res.Counts[CategoryChatMessages] == 0 {
			t.Errorf("person %d: counts %v, want recordings and chat messages", i, res.Counts)
		}
	}
	var none int
	for i := 11; i <= seedPeople; i++ {
		res, err := s.Export(ctx, task(subject(i), "s"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome == connector.NotFound {
			none++
		}
	}
	if none == 0 {
		t.Error("every seeded person has data: no not_found answers in the demo")
	}

	snapshot := func(s *System) (int64, int64, map[string]string) {
		return count(t, s, `SELECT count(*) FROM recordings`), count(t, s, `SELECT count(*) FROM chat_messages`), files(t, s)
	}
	r1, c1, f1 := snapshot(s)
	if err := s.Seed(ctx, seedPeople); err != nil {
		t.Fatal(err)
	}
	if r2, c2, f2 := snapshot(s); r2 != r1 || c2 != c1 || len(f2) != len(f1) {
		t.Fatalf("second seed changed the data: %d/%d/%d -> %d/%d/%d", r1, c1, len(f1), r2, c2, len(f2))
	}

	// Seeding in two steps gives the same data as seeding at once.
	step := open(t, t.TempDir())
	if err := step.Seed(ctx, 15); err != nil {
		t.Fatal(err)
	}
	if err := step.Seed(ctx, seedPeople); err != nil {
		t.Fatal(err)
	}
	r3, c3, f3 := snapshot(step)
	if r3 != r1 || c3 != c1 || !sameMap(f3, f1) {
		t.Fatalf("seeding in steps differs: %d/%d -> %d/%d", r1, c1, r3, c3)
	}

	// An erased person does not come back with the next seed, even one that
	// adds people whose chat would go into the erased person's recordings.
	if _, err := s.Erase(ctx, task(subject(1), "s2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(ctx, seedPeople+20); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Export(ctx, task(subject(1), "s3")); err != nil || res.Outcome != connector.NotFound {
		t.Fatalf("erased person after re-seed: %q, %v", res.Outcome, err)
	}
	if res, err := s.Export(ctx, task(subject(seedPeople+1), "s4")); err != nil || res.Outcome != connector.Exported {
		t.Fatalf("newly seeded person: %q, %v", res.Outcome, err)
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestTransientErrorsAreRetryable: a database another process holds locked
// fails the erasure with a retryable error (the SDK tries again rather than
// dead-lettering the task), and the next attempt succeeds. A cancelled
// context is no failure of the system: not retryable.
func TestTransientErrorsAreRetryable(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	// Wait 50 ms, not the default 10 s, for the lock (one connection in the
	// pool: the pragma stays with it).
	if _, err := s.db.Exec(`PRAGMA busy_timeout = 50`); err != nil {
		t.Fatal(err)
	}
	other, err := sqlitedb.Open(filepath.Join(filepath.Dir(s.files), "recordings.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Erase(ctx, task(subject(5), "r6"))
	if err == nil || !connector.IsRetryable(err) {
		t.Fatalf("erase of a locked database = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), email(5)) || strings.Contains(err.Error(), userID(5)) {
		t.Fatalf("error names the subject: %v", err)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Erase(ctx, task(subject(5), "r6"))
	if err != nil || res.Outcome != connector.Erased || res.Remaining != 0 {
		t.Fatalf("erase once the lock is gone = %+v, %v", res, err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for name, op := range map[string]func(context.Context, connector.Task) (connector.Result, error){"erase": s.Erase, "export": s.Export} {
		if _, err := op(cancelled, task(subject(6), "r7")); err == nil || connector.IsRetryable(err) {
			t.Errorf("%s with a cancelled context = %v, want a permanent error", name, err)
		}
	}
}

// TestEraseLeavesNoCopyInTheFiles: after an erasure, the person's email is
// in no file of the data directory, the SQLite WAL and shared-memory files
// included.
func TestEraseLeavesNoCopyInTheFiles(t *testing.T) {
	s := seeded(t)
	dir := filepath.Dir(s.files)
	if len(piitest.FilesHolding(t, dir, email(1))) == 0 {
		t.Fatal("test bug: the seeded email is in no file")
	}
	res, err := s.Erase(context.Background(), task(subject(1), "r8"))
	if err != nil || res.Outcome != connector.Erased {
		t.Fatalf("erase = %+v, %v", res, err)
	}
	if found := piitest.FilesHolding(t, dir, email(1)); len(found) > 0 {
		t.Fatalf("the erased email is still in %v", found)
	}
	if len(piitest.FilesHolding(t, dir, email(2))) == 0 {
		t.Fatal("another person's email is gone too")
	}
}

// A restriction counts the person's recordings and chat messages and
// changes nothing: the files and rows stay; someone with nothing here is
// not found.
func TestRestrictCountsAndKeeps(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	before := files(t, s)
	rows := count(t, s, `SELECT (SELECT count(*) FROM recordings) + (SELECT count(*) FROM chat_messages)`)
	res, err := s.Restrict(ctx, task(subject(1), "req_r"))
	if err != nil || res.Outcome != connector.Restricted {
		t.Fatalf("Restrict = %+v, %v", res, err)
	}
	wantRec := count(t, s, `SELECT count(*) FROM recordings WHERE speaker_user_id = ?`, userID(1))
	wantChat := count(t, s, `SELECT count(*) FROM chat_messages WHERE author_user_id = ?`, userID(1))
	if res.Counts[CategoryRecordings] != wantRec || res.Counts[CategoryChatMessages] != wantChat || res.Remaining != wantRec+wantChat {
		t.Errorf("Restrict counted %v (remaining %d), want %d recordings and %d chat messages", res.Counts, res.Remaining, wantRec, wantChat)
	}
	if after := count(t, s, `SELECT (SELECT count(*) FROM recordings) + (SELECT count(*) FROM chat_messages)`); after != rows {
		t.Errorf("%d rows after a restriction, %d before", after, rows)
	}
	if after := files(t, s); len(after) != len(before) {
		t.Errorf("%d files after a restriction, %d before", len(after), len(before))
	}
	if res, err := s.Restrict(ctx, task(connector.Subject{Email: "nobody@example.com"}, "req_r2")); err != nil || res.Outcome != connector.NotFound {
		t.Errorf("Restrict of someone unknown = %+v, %v", res, err)
	}
}
