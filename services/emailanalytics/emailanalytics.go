// Package emailanalytics is the demo marketing and web analytics system and
// its Lethe connector, in SQLite, keyed by address: open and click events of
// email campaigns, the cookie choices made on the website (chat, audience
// measurement, customisation), the pages viewed there, and the interests
// and preferences commercial prospecting runs on, with the last contact.
// An erasure deletes them (dataset map emailanalytics.yaml); the connector
// SDK then puts the person on the connector's suppression list
// (connector.Suppressions), which the system's import and enrichment paths
// ask, so that the next import from the mailing tool does not bring the
// person back, and so that a person whose processing is restricted
// (Art. 18) is kept but not processed. Retention sweeps delete what
// outlived its purpose: cookie choices after 6 months, page views after
// 50, interests 3 years after the last contact.
package emailanalytics

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// Name is the system's name in tasks and receipts.
const Name = "emailanalytics"

//go:embed emailanalytics.yaml
var mapYAML []byte

// The suppression tables this system kept before the SDK's list
// (suppressions: erased in full; category_suppressions: withdrawn from
// some data categories) are no longer made in a new database: see
// legacySuppressed.
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
`

// System is the email analytics system. Export, Count, Restrict and Sweep
// come from its dataset engine.
type System struct {
	*dataset.Engine
	db *sql.DB
	// key is the system's own hash key (pseudonym.LoadKey of its data
	// directory): the ids of imported rows, and the hashes of the legacy
	// suppression tables.
	key []byte
	// sup is the connector's suppression list, the file connector.Start
	// keeps in the same data directory (a second handle on it); nil
	// without a subject key, when the SDK keeps no list either.
	sup *connector.Suppressions
	// legacy is which of the old suppression tables hold rows: see
	// [System.legacySuppressed].
	legacy legacyTables
	// writes orders imports and enrichments with erasures and
	// restrictions.
	writes writes
	// now is the system's clock (env.Now, or time.Now): the time the demo
	// data is seeded around, and how long an erasure in flight is
	// covered.
	now func() time.Time
}

// Open opens (creating it if needed) the system in
// env.DataDir/emailanalytics.db and, when env.SubjectKey is set, the
// connector's suppression list in env.DataDir (connector.SuppressionsFile):
// the same file connector.Start opens for the connector run with the same
// env, which the SDK writes as tasks succeed and this system reads.
func Open(ctx context.Context, env connector.Env) (_ *System, err error) {
	db, engine, err := dataset.OpenSQLite(ctx, env.DataDir, "emailanalytics.db", schema, mapYAML, dataset.WithLogger(env.Logger), dataset.WithDurability(env.Durability))
	if err != nil {
		return nil, fmt.Errorf("emailanalytics: %w", err)
	}
	s := &System{Engine: engine, db: db, now: env.Now}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.now == nil {
		s.now = time.Now
	}
	if s.key, err = pseudonym.LoadKey(env.DataDir); err != nil {
		return nil, fmt.Errorf("emailanalytics: %w", err)
	}
	if len(env.SubjectKey) > 0 {
		// Without a subject key the SDK keeps no list (connector.Start
		// warns): imports are then checked against the legacy tables and
		// nothing else.
		if s.sup, err = connector.OpenSuppressions(env.DataDir, env.SubjectKey, sqlitedb.WithDurability(env.Durability)); err != nil {
			return nil, fmt.Errorf("emailanalytics: %w", err)
		}
	}
	if s.legacy, err = findLegacy(ctx, db); err != nil {
		return nil, err
	}
	if s.legacy.any() && env.Logger != nil {
		env.Logger.Info("emailanalytics: the suppression tables kept before the connector's list are still read, read-only: their hashes cannot be moved to it",
			"erased", s.legacy.full, "withdrawn", s.legacy.category)
	}
	return s, nil
}

// Close closes the database and the suppression list.
func (s *System) Close() error {
	var err error
	if s.sup != nil {
		err = s.sup.Close()
	}
	return errors.Join(s.db.Close(), err)
}

// Erase deletes the subject's records (of Task.Categories only, for a
// consent withdrawal or an objection). It writes no suppression list of
// its own: the SDK has put the person on the connector's list before it
// calls Erase, and Erase first waits for the imports and enrichments that
// checked the list before that (see [writes]), so none lands after it.
func (s *System) Erase(ctx context.Context, t connector.Task) (connector.Result, error) {
	s.writes.barrier()
	return s.Engine.Erase(ctx, t)
}

// Restrict counts what a restriction of processing (Art. 18) covers, as
// the engine does, once the imports and enrichments in flight are written:
// the SDK has listed the person first, so every later check refuses them,
// and the counts include what was written before.
func (s *System) Restrict(ctx context.Context, t connector.Task) (connector.Result, error) {
	s.writes.barrier()
	return s.Engine.Restrict(ctx, t)
}

// Suppressed reports whether the address of tenant may not be processed
// for data of category (the dataset map's data_category: engagement,
// prospecting, ...; "" asks about any processing): erased in full,
// withdrawn from (or objected to for) that category, or restricted
// (Art. 18: kept, not processed). A host app's import and enrichment
// paths ask it first.
func (s *System) Suppressed(ctx context.Context, tenant, email, category string) (bool, error) {
	s.writes.mu.RLock()
	defer s.writes.mu.RUnlock()
	return s.suppressed(ctx, tenant, pseudonym.Normalize(email), category)
}

// suppressed is Suppressed for a normalised address; the caller holds
// s.writes.mu for reading.
func (s *System) suppressed(ctx context.Context, tenant, email, category string) (bool, error) {
	if s.sup != nil {
		v, err := s.sup.Check(ctx, tenant, connector.Email(email), category)
		if err != nil {
			return false, fmt.Errorf("emailanalytics: check suppression list: %w", err)
		}
		if v.Suppressed {
			return true, nil
		}
	}
	return s.legacySuppressed(ctx, tenant, email, category)
}

// legacyTables says which of the suppression tables this system kept
// before the SDK's list hold rows.
type legacyTables struct{ full, category bool }

func (l legacyTables) any() bool { return l.full || l.category }

// findLegacy looks for rows in the old suppression tables of a database
// made by an earlier version. Nothing writes them any more, so what it
// finds at open stays true.
func findLegacy(ctx context.Context, db *sql.DB) (legacyTables, error) {
	var l legacyTables
	for table, found := range map[string]*bool{"suppressions": &l.full, "category_suppressions": &l.category} {
		var exists bool
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)`, table).Scan(&exists); err != nil {
			return l, fmt.Errorf("emailanalytics: look for the legacy suppression tables: %w", err)
		}
		if !exists {
			continue
		}
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+`)`).Scan(found); err != nil {
			return l, fmt.Errorf("emailanalytics: look for the legacy suppression tables: %w", err)
		}
	}
	return l, nil
}

// legacySuppressed asks the suppression tables an earlier version kept.
// Their rows cannot be copied into the SDK's list: they are the HMAC of
// the bare normalised address under the system's own key (its hash.key,
// or $LETHE_HASH_KEY), while the list holds the HMAC of
// "email:<address>" under the orchestrator's subject key; even where the
// two keys are the same text the hashed strings differ, and turning one
// hash into the other would take the address, which the erasure removed.
// So they stay, read-only, for as long as they hold anyone.
func (s *System) legacySuppressed(ctx context.Context, tenant, email, category string) (bool, error) {
	hash := pseudonym.Hash(s.key, email)
	var yes bool
	if s.legacy.full {
		if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM suppressions WHERE tenant = ? AND email_hash = ?)`,
			tenant, hash).Scan(&yes); err != nil || yes {
			return yes, legacyErr(err)
		}
	}
	if s.legacy.category && category != "" {
		if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM category_suppressions WHERE tenant = ? AND email_hash = ? AND category = ?)`,
			tenant, hash, category).Scan(&yes); err != nil {
			return false, legacyErr(err)
		}
	}
	return yes, nil
}

func legacyErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("emailanalytics: check legacy suppression list: %w", err)
}

// writes orders the import and enrichment paths with the SDK's list: an
// import or an enrichment holds it for reading from its check of the list
// to its write; an erasure or a restriction takes it once, after the SDK
// has listed the person, so that every write checked before the listing
// has landed (the erasure then deletes it, the restriction counts it)
// and every check after it refuses the person.
type writes struct{ mu sync.RWMutex }

// barrier waits for the writes in flight.
func (w *writes) barrier() {
	w.mu.Lock()
	w.mu.Unlock() //nolint:staticcheck // an empty critical section: a barrier
}

// Interest is a topic a person showed interest in, as a prospecting
// tool reports it.
type Interest struct {
	Topic, Preference string
	At                time.Time
}

// Enrich stores an interest of address email in tenant (prospecting),
// unless the address is suppressed for prospecting (erased, withdrawn
// from or objected to for prospecting, or restricted): then it stores
// nothing and returns false.
func (s *System) Enrich(ctx context.Context, tenant, email string, in Interest) (stored bool, err error) {
	email = pseudonym.Normalize(email)
	if tenant == "" || !strings.Contains(email, "@") || in.Topic == "" || in.At.IsZero() {
		return false, fmt.Errorf("%w: tenant, email address, topic and time are required", ErrBadEvent)
	}
	// Held from the check to the write: an erasure beginning meanwhile
	// waits, then deletes what was written (see writes).
	s.writes.mu.RLock()
	defer s.writes.mu.RUnlock()
	if no, err := s.suppressed(ctx, tenant, email, "prospecting"); err != nil || no {
		return false, err
	}
	at := in.At.UTC().Format(time.RFC3339)
	id := pseudonym.Hash(s.key, strings.Join([]string{tenant, email, in.Topic}, "\x00"))[:32]
	if _, err := s.db.ExecContext(ctx, `INSERT INTO interests (id, tenant, email, topic, preference, last_contact_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET preference = excluded.preference, last_contact_at = excluded.last_contact_at`,
		id, tenant, email, in.Topic, in.Preference, at); err != nil {
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
// suppressed for engagement (erased, withdrawn from or objected to for
// it, or restricted): then it stores nothing and returns false.
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
	// Held from the check to the write: an erasure beginning meanwhile
	// waits, then deletes what was written (see writes).
	s.writes.mu.RLock()
	defer s.writes.mu.RUnlock()
	if no, err := s.suppressed(ctx, tenant, email, "engagement"); err != nil || no {
		return false, err
	}
	at := ev.At.UTC().Format(time.RFC3339Nano)
	// The id is derived from the event, so importing the same report twice
	// stores it once.
	id := pseudonym.Hash(s.key, strings.Join([]string{tenant, email, ev.CampaignID, ev.Type, at}, "\x00"))[:32]
	if _, err := s.db.ExecContext(ctx, `INSERT INTO email_events (id, tenant, email, campaign_id, event_type, at, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		id, tenant, email, ev.CampaignID, ev.Type, at, ev.UserAgent); err != nil {
		return false, fmt.Errorf("emailanalytics: import: %w", err)
	}
	return true, nil
}
