// Package accounts is the demo accounts system and its Lethe connector: user
// profiles, login history, technical request logs, and questions asked in
// webinars, in SQLite. Its erasure, export and retention sweeps follow the
// dataset map accounts.yaml. It also plays the
// application's own "delete my account", which announces the deletion on the
// bus so that Lethe erases the person everywhere else: through a
// transactional outbox (pkg/hostoutbox), so that a deletion is announced if
// and only if it commits.
package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/hostoutbox"
	"github.com/lethe-dev/lethe/pkg/httpserve"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// Name is the system's name in tasks and receipts.
const Name = "accounts"

//go:embed accounts.yaml
var mapYAML []byte

const schema = `
CREATE TABLE IF NOT EXISTS users (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	email TEXT NOT NULL,
	name TEXT NOT NULL,
	created_at TEXT NOT NULL,
	ended_at TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS users_tenant_email ON users (tenant, email);
CREATE TABLE IF NOT EXISTS logins (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	user_id TEXT NOT NULL,
	ip TEXT NOT NULL,
	country TEXT NOT NULL,
	at TEXT NOT NULL);
DROP INDEX IF EXISTS logins_user;
CREATE INDEX IF NOT EXISTS logins_tenant_user ON logins (tenant, user_id);
CREATE TABLE IF NOT EXISTS technical_logs (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	user_id TEXT NOT NULL,
	ip TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	method TEXT NOT NULL,
	url TEXT NOT NULL,
	status INTEGER NOT NULL,
	at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS technical_logs_tenant_user ON technical_logs (tenant, user_id);
CREATE TABLE IF NOT EXISTS comments (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	webinar_id TEXT NOT NULL,
	author_id TEXT,
	author_name TEXT,
	body TEXT NOT NULL,
	at TEXT NOT NULL);
DROP INDEX IF EXISTS comments_author;
CREATE INDEX IF NOT EXISTS comments_tenant_author ON comments (tenant, author_id);
`

// System is the accounts system. Erase, Export and Count come from its
// dataset engine.
type System struct {
	*dataset.Engine
	db  *sql.DB
	key []byte // keys event ids
	// signer signs account.deleted events: the service's own key, which the
	// orchestrator's keys file registers for "accounts".
	signer *proof.Signer
	// orchestrator holds the orchestrator's public key, whose sealing key
	// the events' subjects are sealed to.
	orchestrator proof.KeySet
	bus          bus.Publisher
	log          *slog.Logger
	// now is the system's clock (env.Now, or time.Now): the time of the
	// account.deleted events, and the time the demo data is seeded around.
	now func() time.Time

	// relay publishes the account.deleted events DeleteAccount leaves in
	// the outbox table, from Open to Close; nil without a bus.
	relay     *hostoutbox.Relay
	stopRelay context.CancelFunc
	relayDone chan struct{}

	mu    sync.Mutex
	admin *http.Server
}

// Open opens (creating it if needed) the system in env.DataDir/accounts.db.
// With a bus in env, it starts the relay that publishes the account.deleted
// events of [System.DeleteAccount], until [System.Close]: those a previous
// run left unpublished first.
func Open(ctx context.Context, env connector.Env) (*System, error) {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	db, engine, err := dataset.OpenSQLite(ctx, env.DataDir, "accounts.db", schema, mapYAML, dataset.WithLogger(log), dataset.WithDurability(env.Durability),
		// A file made before accounts could end.
		dataset.WithAddedColumn("users", "ended_at", "TEXT"))
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	key, err := pseudonym.LoadKey(env.DataDir)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("accounts: %w", err)
	}
	signer, err := connector.SigningKey(env.DataDir, Name)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("accounts: %w", err)
	}
	if err := hostoutbox.Ensure(ctx, db, hostoutbox.SQLite); err != nil {
		db.Close()
		return nil, fmt.Errorf("accounts: %w", err)
	}
	now := env.Now
	if now == nil {
		now = time.Now
	}
	s := &System{Engine: engine, db: db, key: key, signer: signer, orchestrator: env.TaskKeys, log: log, now: now}
	if env.Bus != nil {
		s.bus = env.Bus
		s.startRelay(ctx)
	}
	return s, nil
}

// startRelay runs the outbox relay until Close: on a context of its own,
// not ctx, which may be only the opening's.
func (s *System) startRelay(ctx context.Context) {
	s.relay = &hostoutbox.Relay{DB: s.db, Bus: s.bus, Logger: s.log}
	ctx, s.stopRelay = context.WithCancel(context.WithoutCancel(ctx))
	s.relayDone = make(chan struct{})
	go func() {
		defer close(s.relayDone)
		if err := s.relay.Run(ctx); err != nil {
			s.log.Error("outbox relay stopped: account deletions are no longer announced until a restart", "err", err)
		}
	}()
}

// Close stops the admin API, if served, and the outbox relay, and closes
// the database.
func (s *System) Close() error {
	s.mu.Lock()
	if s.admin != nil {
		s.admin.Close()
	}
	s.mu.Unlock()
	if s.stopRelay != nil {
		s.stopRelay()
		<-s.relayDone
	}
	return s.db.Close()
}

// ErrNoAccount is returned by [System.DeleteAccount] for an email with no
// account in the tenant.
var ErrNoAccount = errors.New("accounts: no such account")

// DeleteAccount is the application's own "delete my account": it deletes the
// account's profile, and only that (the application leaves the rest to the
// erasure it triggers), and announces it with an account.deleted event for
// Lethe. The event, sealed and signed, is written to the outbox in the
// deletion's transaction, and the relay publishes it once that has
// committed: a deletion that commits is announced even if the bus is down
// or the process dies right after, and one that does not commit is never
// announced. Its id is derived from the account, so publishing it again (a
// relay that died before recording the publication) is recognised as the
// same event.
func (s *System) DeleteAccount(ctx context.Context, tenant, email string) (userID string, err error) {
	if s.relay == nil {
		return "", errors.New("accounts: no bus to announce account deletions on")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("accounts: delete account: %w", err)
	}
	defer tx.Rollback()
	var stored string
	err = tx.QueryRowContext(ctx, `SELECT id, email FROM users WHERE tenant = ? AND LOWER(TRIM(email)) = ?`,
		tenant, pseudonym.Normalize(email)).Scan(&userID, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNoAccount
	}
	if err != nil {
		return "", fmt.Errorf("accounts: find account: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ? AND tenant = ?`, userID, tenant); err != nil {
		return "", fmt.Errorf("accounts: delete account: %w", err)
	}
	now := s.now()
	// Sealed to the orchestrator: the broker holds no readable identifier.
	to, err := s.orchestrator.OrchestratorSealKey(now)
	if err != nil {
		return "", fmt.Errorf("accounts: announce account deletion: the orchestrator's key: %w", err)
	}
	sealed, err := proof.SealSubject(to, &lethev1.Subject{Email: pseudonym.Normalize(stored), UserId: userID})
	if err != nil {
		return "", fmt.Errorf("accounts: announce account deletion: %w", err)
	}
	ev := &lethev1.AccountDeleted{
		EventId:       s.eventID(tenant, userID),
		Tenant:        tenant,
		SealedSubject: sealed,
		DeletedAt:     timestamppb.New(now),
		Source:        Name,
	}
	if err := proof.SignAccountDeleted(s.signer, ev); err != nil {
		return "", err
	}
	msg, err := events.AccountDeletedMessage(ev, "lethe/"+Name, now)
	if err != nil {
		return "", err
	}
	if err := hostoutbox.Enqueue(ctx, tx, events.TopicAccountDeleted, msg); err != nil {
		return "", fmt.Errorf("accounts: announce account deletion: %w", err)
	}
	if err := tx.Commit(); err != nil {
		// Neither deleted nor announced.
		return "", fmt.Errorf("accounts: delete account: %w", err)
	}
	s.relay.Wake()
	s.log.Info("account deleted; its announcement is in the outbox", "tenant", tenant, "event_type", events.TypeAccountDeleted, "event_id", ev.GetEventId())
	return userID, nil
}

// eventID is the id of the account.deleted event of userID in tenant: the
// keyed hash of both, so that it names the deletion without naming the person
// (the orchestrator logs and stores event ids), and is the same every time the
// deletion is announced, so the orchestrator de-duplicates a retry. HMAC
// directly, not pseudonym.Hash, which folds case: user ids are case-sensitive,
// and two users differing in case must not share an event id.
func (s *System) eventID(tenant, userID string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("account.deleted\x00" + tenant + "\x00" + userID))
	return "acct-del-" + hex.EncodeToString(m.Sum(nil))[:32]
}

// ServeAdmin serves [System.AdminHandler] on addr until ctx is cancelled or
// the system is closed, and returns the address it listens on.
func (s *System) ServeAdmin(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("accounts: admin API: %w", err)
	}
	srv := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.admin = srv
	s.mu.Unlock()
	go func() {
		if err := httpserve.Serve(ctx, srv, ln, "", "", 5*time.Second); err != nil {
			s.log.Error("admin API stopped", "err", err)
		}
	}()
	s.log.Info("admin API listening", "addr", ln.Addr().String())
	return ln.Addr(), nil
}
