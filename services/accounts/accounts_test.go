package accounts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/proof"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectortest"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/hostoutbox"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

func open(t *testing.T, b bus.Bus) (*System, string) {
	t.Helper()
	return openEnv(t, connector.Env{Bus: b})
}

// openEnv opens the system in a new data folder with env's bus and clock,
// seeded with 30 people.
func openEnv(t *testing.T, env connector.Env) (*System, string) {
	t.Helper()
	t.Setenv(pseudonym.KeyEnv, "")
	dir := t.TempDir()
	env.DataDir, env.TaskKeys = dir, orchestratorKeys(t)
	s, err := Open(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Seed(context.Background(), 30); err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// orchestratorSeal is the test orchestrator's sealing key, which the
// events' subjects are sealed to.
var orchestratorSeal *proof.SealKey

// orchestratorKeys is a test orchestrator's public key, with its sealing key.
func orchestratorKeys(t *testing.T) proof.KeySet {
	t.Helper()
	dir := t.TempDir()
	signer, err := proof.LoadSigner(filepath.Join(dir, "signing.key"), proof.RoleOrchestrator, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if orchestratorSeal, err = proof.LoadOrCreateSealKey(filepath.Join(dir, "seal.key")); err != nil {
		t.Fatal(err)
	}
	k := signer.Key
	k.Seal = orchestratorSeal.Public[:]
	return proof.KeySet{Keys: []proof.Key{k}}
}

// rows counts person i's rows looking at the tables directly.
func (s *System) rows(t *testing.T, i int) (profile, logins, comments int64) {
	t.Helper()
	uid := dataset.DemoUserID(i)
	count := func(q string, args ...any) (n int64) {
		if err := s.db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return count(`SELECT COUNT(*) FROM users WHERE tenant = 'demo' AND (email = ? OR id = ?)`, dataset.DemoEmail(i), uid),
		count(`SELECT COUNT(*) FROM logins WHERE tenant = 'demo' AND user_id = ?`, uid),
		count(`SELECT COUNT(*) FROM comments WHERE tenant = 'demo' AND author_id = ?`, uid)
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Fixture {
		s, _ := open(t, nil)
		// Person 1 in the demo data; the suite asks about no other subject.
		return connectortest.Fixture{
			System:  s,
			Present: connector.Subject{Email: dataset.DemoEmail(1)},
			Absent:  connector.Subject{Email: dataset.DemoEmail(18)}, // every ninth above 10 has no account
			Remaining: func(context.Context, connector.Subject) (int64, error) {
				p, l, c := s.rows(t, 1)
				return p + l + c + s.technicalLogs(t, 1), nil
			},
		}
	})
}

// technicalLogs counts person i's technical log lines looking at the table
// directly.
func (s *System) technicalLogs(t *testing.T, i int) (n int64) {
	t.Helper()
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM technical_logs WHERE tenant = 'demo' AND user_id = ?`, dataset.DemoUserID(i)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSeededPeople(t *testing.T) {
	s, _ := open(t, nil)
	for i := 1; i <= 10; i++ {
		if p, l, c := s.rows(t, i); p != 1 || l == 0 || c == 0 || s.technicalLogs(t, i) == 0 {
			t.Errorf("person %d: %d profile, %d logins, %d comments, %d technical logs; want data in each", i, p, l, c, s.technicalLogs(t, i))
		}
	}
	if p, _, _ := s.rows(t, 27); p != 0 || s.technicalLogs(t, 27) != 0 {
		t.Errorf("person 27 has an account; want some people without")
	}
	const all = `SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM logins) + (SELECT COUNT(*) FROM comments) + (SELECT COUNT(*) FROM technical_logs)`
	var before, after int
	s.db.QueryRow(all).Scan(&before)
	if err := s.Seed(context.Background(), 30); err != nil {
		t.Fatal(err)
	}
	s.db.QueryRow(all).Scan(&after)
	if before != after || before == 0 {
		t.Fatalf("seeding twice: %d rows then %d", before, after)
	}
}

func TestEraseAnonymisesComments(t *testing.T) {
	s, dir := open(t, nil)
	ctx := context.Background()
	_, logins, comments := s.rows(t, 3)
	technical := s.technicalLogs(t, 3)
	var bodies []string
	rows, _ := s.db.Query(`SELECT body FROM comments WHERE author_id = 'user-0003' ORDER BY id`)
	for rows.Next() {
		var b string
		rows.Scan(&b)
		bodies = append(bodies, b)
	}
	rows.Close()

	res, err := s.Erase(ctx, connector.Task{Tenant: "demo", Subject: connector.Subject{Email: "Person-0003@Example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != connector.Erased || res.Remaining != 0 ||
		res.Counts["profile"] != 1 || res.Counts["login_history"] != logins || res.Counts["webinar_comments"] != comments ||
		res.Counts["technical_logs"] != technical || technical == 0 {
		t.Fatalf("erase = %+v; want 1 profile, %d logins, %d comments, %d technical logs", res, logins, comments, technical)
	}
	if n := s.technicalLogs(t, 3); n != 0 {
		t.Fatalf("%d technical log lines left", n)
	}
	key, err := pseudonym.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	rows, _ = s.db.Query(`SELECT body FROM comments WHERE author_id = ? AND author_name IS NULL ORDER BY id`, pseudonym.Hash(key, "user-0003"))
	for rows.Next() {
		var b string
		rows.Scan(&b)
		kept = append(kept, b)
	}
	rows.Close()
	if len(kept) != len(bodies) || len(kept) == 0 || kept[0] != bodies[0] {
		t.Fatalf("comments after erasure = %q, want the bodies %q under the hashed author", kept, bodies)
	}
	if p, l, c := s.rows(t, 4); p != 1 || l == 0 || c == 0 {
		t.Fatalf("person 4 was touched: %d %d %d", p, l, c)
	}
}

func startBus(t *testing.T) bus.Bus {
	t.Helper()
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	b, err := natsbus.Connect(context.Background(), srv.URL(), natsbus.Config{Name: "accounts-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestDeleteAccountAnnouncesIt(t *testing.T) {
	b := startBus(t)
	s, _ := open(t, b)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return at }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	got := make(chan *lethev1.AccountDeleted, 4)
	go b.Consume(ctx, events.TopicAccountDeleted, "test", func(_ context.Context, m *bus.Message) error {
		ev := &lethev1.AccountDeleted{}
		if err := events.Decode(m, ev, events.TypeAccountDeleted); err != nil {
			return err
		}
		got <- ev
		return nil
	})

	uid, err := s.DeleteAccount(ctx, "demo", " Person-0002@example.com")
	if err != nil || uid != "user-0002" {
		t.Fatalf("DeleteAccount = %q, %v", uid, err)
	}
	select {
	case ev := <-got:
		// The subject travels sealed to the orchestrator, and only so.
		subject, err := orchestratorSeal.OpenSubject(ev.GetSealedSubject())
		if err != nil || ev.GetSubject() != nil {
			t.Fatalf("event subject: clear %v, sealed: %v", ev.GetSubject(), err)
		}
		if ev.GetEventId() != s.eventID("demo", "user-0002") || ev.GetTenant() != "demo" || ev.GetSource() != "accounts" ||
			subject.GetEmail() != "person-0002@example.com" || subject.GetUserId() != "user-0002" ||
			!ev.GetDeletedAt().AsTime().Equal(at) {
			t.Fatalf("event = %v", ev)
		}
		// Signed with the service's key, registered for its source.
		if err := proof.VerifyAccountDeleted(proof.KeySet{Keys: []proof.Key{s.signer.Key}}, ev, time.Now()); err != nil {
			t.Fatalf("the event does not verify: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no account.deleted event on the bus")
	}
	s.waitOutboxEmpty(t)
	p, logins, _ := s.rows(t, 2)
	if p != 0 || logins == 0 {
		t.Fatalf("after account deletion: %d profile rows, %d logins; want the profile gone, the rest left to the erasure", p, logins)
	}
	if _, err := s.DeleteAccount(ctx, "demo", "person-0002@example.com"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("deleting again = %v, want ErrNoAccount", err)
	}
	if _, err := s.DeleteAccount(ctx, "other", "person-0005@example.com"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("deleting in another tenant = %v, want ErrNoAccount", err)
	}

	// The erasure the event asks for finds the rest by the user id it carries.
	res, err := s.Erase(ctx, connector.Task{Tenant: "demo", Subject: connector.Subject{Email: "person-0002@example.com", UserID: "user-0002"}})
	if err != nil || res.Outcome != connector.Erased || res.Remaining != 0 || res.Counts["login_history"] != logins {
		t.Fatalf("erase after account deletion = %+v, %v", res, err)
	}
}

func TestAdminAPI(t *testing.T) {
	s, _ := open(t, startBus(t))
	srv := httptest.NewServer(s.AdminHandler())
	defer srv.Close()
	tests := []struct {
		name, method, body string
		code               int
		want               map[string]string
	}{
		{"deletes", "POST", `{"tenant":"demo","email":"person-0007@example.com"}`, http.StatusAccepted,
			map[string]string{"user_id": "user-0007", "event_id": s.eventID("demo", "user-0007")}},
		{"unknown account", "POST", `{"tenant":"demo","email":"person-0007@example.com"}`, http.StatusNotFound, nil},
		{"other tenant", "POST", `{"tenant":"acme","email":"person-0008@example.com"}`, http.StatusNotFound, nil},
		{"bad json", "POST", `{"tenant":`, http.StatusBadRequest, nil},
		{"unknown field", "POST", `{"tenant":"demo","email":"person-0008@example.com","force":true}`, http.StatusBadRequest, nil},
		{"missing email", "POST", `{"tenant":"demo"}`, http.StatusBadRequest, nil},
		{"missing tenant", "POST", `{"email":"person-0008@example.com"}`, http.StatusBadRequest, nil},
		{"not an email", "POST", `{"tenant":"demo","email":"person-0008"}`, http.StatusBadRequest, nil},
		{"wrong method", "GET", ``, http.StatusMethodNotAllowed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+"/v1/accounts/delete", bytes.NewBufferString(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got map[string]string
			json.NewDecoder(resp.Body).Decode(&got)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d (%v), want %d", resp.StatusCode, got, tt.code)
			}
			if tt.want != nil && (got["user_id"] != tt.want["user_id"] || got["event_id"] != tt.want["event_id"]) {
				t.Fatalf("body %v, want %v", got, tt.want)
			}
			if tt.code >= 400 && tt.code != http.StatusMethodNotAllowed && got["error"] == "" {
				t.Fatalf("error answer without an error message: %v", got)
			}
		})
	}
	if p, _, _ := s.rows(t, 8); p != 1 {
		t.Fatal("a rejected request deleted person 8")
	}
}

func TestServeAdmin(t *testing.T) {
	s, _ := open(t, startBus(t))
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := s.ServeAdmin(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr.String()+"/v1/accounts/delete", "application/json", bytes.NewBufferString(`{"tenant":"demo","email":"person-0009@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := http.Post("http://"+addr.String()+"/v1/accounts/delete", "application/json", nil); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("admin API still serving after its context was cancelled")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEventIDNamesNoOne: the event id, which the orchestrator logs and
// stores, holds neither the user id nor the email; it is the same for the
// same deletion (so a repeated announcement is de-duplicated) and differs
// between users, tenants and systems with different keys.
func TestEventIDNamesNoOne(t *testing.T) {
	s, _ := open(t, nil)
	id := s.eventID("demo", "user-0002")
	if !strings.HasPrefix(id, "acct-del-") || len(id) != len("acct-del-")+32 {
		t.Fatalf("event id %q, want acct-del- and 32 hex characters", id)
	}
	for _, personal := range []string{"user-0002", "0002", dataset.DemoEmail(2), "demo"} {
		if strings.Contains(id, personal) {
			t.Fatalf("event id %q contains %q", id, personal)
		}
	}
	if again := s.eventID("demo", "user-0002"); again != id {
		t.Fatalf("the same deletion got ids %q and %q", id, again)
	}
	other, _ := open(t, nil) // another data dir: another random key
	for name, got := range map[string]string{
		"another user":      s.eventID("demo", "user-0003"),
		"a user id in case": s.eventID("demo", "User-0002"),
		"another tenant":    s.eventID("acme", "user-0002"),
		"another key":       other.eventID("demo", "user-0002"),
	} {
		if got == id {
			t.Errorf("%s has the same event id %q", name, id)
		}
	}
}

// TestEraseLeavesNoCopyInTheFiles: after an erasure, the person's email is
// in no file of the data directory, the SQLite WAL and shared-memory files
// included.
func TestEraseLeavesNoCopyInTheFiles(t *testing.T) {
	s, dir := open(t, nil)
	email := dataset.DemoEmail(4)
	if len(piitest.FilesHolding(t, dir, email)) == 0 {
		t.Fatal("test bug: the seeded email is in no file")
	}
	res, err := s.Erase(context.Background(), connector.Task{Tenant: "demo", Subject: connector.Subject{Email: email}})
	if err != nil || res.Outcome != connector.Erased {
		t.Fatalf("erase = %+v, %v", res, err)
	}
	if found := piitest.FilesHolding(t, dir, email); len(found) > 0 {
		t.Fatalf("the erased email is still in %v", found)
	}
	if len(piitest.FilesHolding(t, dir, dataset.DemoEmail(5))) == 0 {
		t.Fatal("another person's email is gone too")
	}
}

// accountDeleted consumes the account.deleted events of b until the test
// ends.
func accountDeleted(t *testing.T, b bus.Bus) <-chan *lethev1.AccountDeleted {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	got := make(chan *lethev1.AccountDeleted, 8)
	go b.Consume(ctx, events.TopicAccountDeleted, "test", func(_ context.Context, m *bus.Message) error {
		ev := &lethev1.AccountDeleted{}
		if err := events.Decode(m, ev, events.TypeAccountDeleted); err != nil {
			return err
		}
		got <- ev
		return nil
	})
	return got
}

// expectOnly waits for the account.deleted event of userID in tenant demo,
// and checks that no other event follows it.
func (s *System) expectOnly(t *testing.T, got <-chan *lethev1.AccountDeleted, userID string) {
	t.Helper()
	select {
	case ev := <-got:
		if ev.GetEventId() != s.eventID("demo", userID) {
			t.Fatalf("event %s, want the one of %s (%s)", ev.GetEventId(), userID, s.eventID("demo", userID))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no account.deleted event of %s on the bus", userID)
	}
	select {
	case ev := <-got:
		t.Fatalf("another event followed: %s", ev.GetEventId())
	case <-time.After(time.Second):
	}
}

// outbox counts the events not yet published.
func (s *System) outbox(t *testing.T) int64 {
	t.Helper()
	n, err := hostoutbox.Pending(context.Background(), s.db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *System) waitOutboxEmpty(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.outbox(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events still in the outbox", s.outbox(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeleteAccountNotCommittedAnnouncesNothing: a deletion whose
// transaction does not commit is not announced, though its event was
// written in the transaction. The commit fails here on a deferred foreign
// key (a session still pointing at the profile), as a crash before the
// commit would leave it: the profile and the event both rolled back.
func TestDeleteAccountNotCommittedAnnouncesNothing(t *testing.T) {
	b := startBus(t)
	s, _ := open(t, b)
	got := accountDeleted(t, b)
	if _, err := s.db.Exec(`CREATE TABLE sessions (user_id TEXT REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED);
		INSERT INTO sessions VALUES ('user-0003')`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.DeleteAccount(ctx, "demo", dataset.DemoEmail(3)); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Fatalf("DeleteAccount = %v, want the commit to fail", err)
	}
	if p, _, _ := s.rows(t, 3); p != 1 {
		t.Fatal("the profile is gone though the deletion did not commit")
	}
	if n := s.outbox(t); n != 0 {
		t.Fatalf("%d events in the outbox after the rollback", n)
	}
	// The next deletion, which commits, is the first and only one
	// announced.
	if _, err := s.DeleteAccount(ctx, "demo", dataset.DemoEmail(2)); err != nil {
		t.Fatal(err)
	}
	s.expectOnly(t, got, "user-0002")
	s.waitOutboxEmpty(t)
}

// TestDeleteAccountWhileTheBusIsDown: with the broker down, the deletion
// still succeeds and its event waits in the outbox, across a restart of
// the system; it goes out, once, when the broker is back.
func TestDeleteAccountWhileTheBusIsDown(t *testing.T) {
	t.Setenv(pseudonym.KeyEnv, "")
	natsDir := t.TempDir()
	srv, err := natsbus.StartEmbedded(natsDir, "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	b, err := natsbus.Connect(context.Background(), srv.URL(), natsbus.Config{Name: "accounts-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dir, keys := t.TempDir(), orchestratorKeys(t)
	env := connector.Env{DataDir: dir, Bus: b, TaskKeys: keys}
	ctx := context.Background()
	s, err := Open(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // the second one
	if err := s.Seed(ctx, 10); err != nil {
		t.Fatal(err)
	}

	srv.Shutdown()
	if _, err := s.DeleteAccount(ctx, "demo", dataset.DemoEmail(4)); err != nil {
		t.Fatalf("DeleteAccount with the bus down = %v", err)
	}
	if p, _, _ := s.rows(t, 4); p != 0 {
		t.Fatal("the profile is still there")
	}
	time.Sleep(300 * time.Millisecond) // the relay tries, and fails
	if n := s.outbox(t); n != 1 {
		t.Fatalf("%d events in the outbox, want the one waiting for the bus", n)
	}
	// The system stops and starts again; the broker comes back.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err = natsbus.StartEmbedded(natsDir, "127.0.0.1", port, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = Open(ctx, env); err != nil {
		t.Fatal(err)
	}
	s.expectOnly(t, accountDeleted(t, b), "user-0004")
	s.waitOutboxEmpty(t)
}
