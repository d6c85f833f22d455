// Package emailanalytics is the demo marketing and web analytics system and
// its Lethe connector, in SQLite, keyed by address: open and click events of
// email campaigns, the cookie choices made on the website (chat, audience
// measurement, customisation), the pages viewed there, and the interests
// and preferences commercial prospecting runs on, with the last contact.
// An erasure deletes them (dataset map emailanalytics.yaml) and puts the
// keyed hash of the address on a suppression list, so that the next import
// from the mailing tool does not bring the person back. Retention sweeps
// delete what outlived its purpose: cookie choices after 6 months, page
// views after 50, interests 3 years after the last contact.
package emailanalytics

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// Name is the system's name in tasks and receipts.
const Name = "emailanalytics"

//go:embed emailanalytics.yaml
var mapYAML []byte

const schema = `
CREATE TABLE IF NOT EXISTS email_events (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	email TEXT NOT NULL,
	campaign_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	at TEXT NOT NULL,
	user_agent TEXT);
CREATE INDEX IF NOT EXISTS email_events_email ON email_events (tenant, email);
CREATE TABLE IF NOT EXISTS cookie_consents (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	email TEXT NOT NULL,
	purpose TEXT NOT NULL,
	choice TEXT NOT NULL,
	set_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cookie_consents_email ON cookie_consents (tenant, email);
CREATE TABLE IF NOT EXISTS page_views (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	email TEXT NOT NULL,
	url TEXT NOT NULL,
	referrer TEXT,
	at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS page_views_email ON page_views (tenant, email);
CREATE TABLE IF NOT EXISTS interests (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	email TEXT NOT NULL,
	topic TEXT NOT NULL,
	preference TEXT NOT NULL,
	last_contact_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS interests_email ON interests (tenant, email);
-- A person suppressed for some data categories only (a consent withdrawal,
-- an objection): their keyed hash, per category.
CREATE TABLE IF NOT EXISTS category_suppressions (
	tenant TEXT NOT NULL,
	email_hash TEXT NOT NULL,
	category TEXT NOT NULL,
	suppressed_at TEXT NOT NULL,
	PRIMARY KEY (tenant, email_hash, category));
CREATE TABLE IF NOT EXISTS suppressions (
	tenant TEXT NOT NULL,
	email_hash TEXT NOT NULL,
	suppressed_at TEXT NOT NULL,
	PRIMARY KEY (tenant, email_hash));
`

// System is the email analytics system. Export, Count and Sweep come from
// its dataset engine.
type System struct {
	*dataset.Engine
	db  *sql.DB
	key []byte
	// now is the system's clock (env.Now, or time.Now): the time of a
	// suppression, and the time the demo data is seeded around.
	now func() time.Time
}

// Open opens (creating it if needed) the system in
// env.DataDir/emailanalytics.db.
func Open(ctx context.Context, env connector.Env) (*System, error) {
	db, engine, err := dataset.OpenSQLite(ctx, env.DataDir, "emailanalytics.db", schema, mapYAML, dataset.WithLogger(env.Logger), dataset.WithDurability(env.Durability))
	if err != nil {
		return nil, fmt.Errorf("emailanalytics: %w", err)
	}
	key, err := pseudonym.LoadKey(env.DataDir)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("emailanalytics: %w", err)
	}
	now := env.Now
	if now == nil {
		now = time.Now
	}
	return &System{Engine: engine, db: db, key: key, now: now}, nil
}

// Close closes the database.
func (s *System) Close() error { return s.db.Close() }

// Erase suppresses the subject's address, then deletes its records. The
// address goes on the list first so that no import slips in between; the
// list holds its keyed hash only. An address with no events is suppressed
// too: the person asked not to be processed, whether or not we held data.
//
// An erasure limited to data categories (a consent withdrawal, an
// objection) suppresses the address for those categories only: an import
// or enrichment of another category still goes through.
func (s *System) Erase(ctx context.Context, t connector.Task) (connector.Result, error) {
	if email := pseudonym.Normalize(t.Subject.Email); email != "" {
		hash, at := pseudonym.Hash(s.key, email), s.now().UTC().Format(time.RFC3339)
		var err error
		if len(t.Categories) == 0 {
			_, err = s.db.ExecContext(ctx, `INSERT INTO suppressions (tenant, email_hash, suppressed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				t.Tenant, hash, at)
		}
		for _, c := range t.Categories {
			if err == nil {
				_, err = s.db.ExecContext(ctx, `INSERT INTO category_suppressions (tenant, email_hash, category, suppressed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
					t.Tenant, hash, c, at)
			}
		}
		if err != nil {
			return connector.Result{}, connector.Retryable(fmt.Errorf("emailanalytics: suppress address: %w", err))
		}
	}
	return s.Engine.Erase(ctx, t)
}

// Suppressed reports whether the address of tenant may not be processed
// for data of category (the dataset map's data_category: engagement,
// prospecting, ...): erased in full, or withdrawn from that category. A
// host app's import and enrichment paths ask it first.
func (s *System) Suppressed(ctx context.Context, tenant, email, category string) (bool, error) {
	return suppressed(ctx, s.db, s.key, tenant, email, category)
}

func suppressed(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, key []byte, tenant, email, category string) (bool, error) {
	hash := pseudonym.Hash(key, pseudonym.Normalize(email))
	var yes bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM suppressions WHERE tenant = ? AND email_hash = ?)
		OR EXISTS (SELECT 1 FROM category_suppressions WHERE tenant = ? AND email_hash = ? AND category = ?)`,
		tenant, hash, tenant, hash, category).Scan(&yes)
	if err != nil {
		return false, fmt.Errorf("emailanalytics: check suppression list: %w", err)
	}
	return yes, nil
}

// Interest is a topic a person showed interest in, as a prospecting
// tool reports it.
type Interest struct {
	Topic, Preference string
	At                time.Time
}

// Enrich stores an interest of address email in tenant (prospecting),
// unless the address is suppressed for prospecting: then it stores
// nothing and returns false.
func (s *System) Enrich(ctx context.Context, tenant, email string, in Interest) (stored bool, err error) {
	email = pseudonym.Normalize(email)
	if tenant == "" || !strings.Contains(email, "@") || in.Topic == "" || in.At.IsZero() {
		return false, fmt.Errorf("%w: tenant, email address, topic and time are required", ErrBadEvent)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("emailanalytics: enrich: %w", err)
	}
	defer tx.Rollback()
	if no, err := suppressed(ctx, tx, s.key, tenant, email, "prospecting"); err != nil || no {
		return false, err
	}
	at := in.At.UTC().Format(time.RFC3339)
	id := pseudonym.Hash(s.key, strings.Join([]string{tenant, email, in.Topic}, "\x00"))[:32]
	if _, err := tx.ExecContext(ctx, `INSERT INTO interests (id, tenant, email, topic, preference, last_contact_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET preference = excluded.preference, last_contact_at = excluded.last_contact_at`,
		id, tenant, email, in.Topic, in.Preference, at); err != nil {
		return false, fmt.Errorf("emailanalytics: enrich: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("emailanalytics: enrich: %w", err)
	}
	return true, nil
}

// Event is one open or click of a campaign email, as the mailing tool
// reports it.
type Event struct {
	CampaignID string
	// Type is "open" or "click".
	Type      string
	At        time.Time
	UserAgent string
}

// ErrBadEvent is returned by [System.Import] for an event it cannot store.
var ErrBadEvent = errors.New("emailanalytics: bad event")

// Import stores one event of address email in tenant, unless the address is
// on the tenant's suppression list: then it stores nothing and returns
// false.
func (s *System) Import(ctx context.Context, tenant, email string, ev Event) (imported bool, err error) {
	email = pseudonym.Normalize(email)
	switch {
	case tenant == "" || !strings.Contains(email, "@"):
		return false, fmt.Errorf("%w: tenant and email address are required", ErrBadEvent)
	case ev.Type != "open" && ev.Type != "click":
		return false, fmt.Errorf("%w: type %q is not open or click", ErrBadEvent, ev.Type)
	case ev.CampaignID == "" || ev.At.IsZero():
		return false, fmt.Errorf("%w: campaign and time are required", ErrBadEvent)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("emailanalytics: import: %w", err)
	}
	defer tx.Rollback()
	if no, err := suppressed(ctx, tx, s.key, tenant, email, "engagement"); err != nil || no {
		return false, err
	}
	at := ev.At.UTC().Format(time.RFC3339Nano)
	// The id is derived from the event, so importing the same report twice
	// stores it once.
	id := pseudonym.Hash(s.key, strings.Join([]string{tenant, email, ev.CampaignID, ev.Type, at}, "\x00"))[:32]
	if _, err := tx.ExecContext(ctx, `INSERT INTO email_events (id, tenant, email, campaign_id, event_type, at, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		id, tenant, email, ev.CampaignID, ev.Type, at, ev.UserAgent); err != nil {
		return false, fmt.Errorf("emailanalytics: import: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("emailanalytics: import: %w", err)
	}
	return true, nil
}
