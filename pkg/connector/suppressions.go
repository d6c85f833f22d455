package connector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// Why a person is on a system's suppression list.
const (
	// SuppressedErased: the person's data was erased (or kept by law
	// only): nothing of theirs may come back through an import.
	SuppressedErased = "erased"
	// SuppressedPurpose: the person withdrew consent from, or objected
	// to, purposes: their data of those categories may not be processed
	// (a marketing send, an enrichment) or collected again.
	SuppressedPurpose = "purpose"
	// SuppressedRestricted: processing of the person's data is restricted
	// (Art. 18): it is kept, and nothing but storage may touch it, until
	// the restriction is lifted.
	SuppressedRestricted = "restricted"
)

// Suppressions is a connector's suppression list: who may no longer be
// processed, and for what. The SDK keeps it as tasks succeed (an erasure,
// a consent withdrawal or an objection, a restriction, a re-application
// after a restore) and clears a restriction's entries when it is lifted.
// It holds keyed hashes only (the orchestrator's subject key, as its
// subject hashes): a list of the people erased that named them would
// undo the erasure.
//
// A host application's import and enrichment paths ask it before they
// write or use a person's data: [Suppressions.Check].
type Suppressions struct {
	db *sql.DB
	// writes commits the entries of concurrent tasks together.
	writes *sqlitedb.Group
	insert *sqlitedb.Prepared // insertSuppression, run for every erasure
	key    []byte
	now    func() time.Time
}

const insertSuppression = `INSERT INTO suppressions (tenant, hash, category, reason, request_id, at)
	VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// SuppressionsFile is the list's file in a connector's data directory.
const SuppressionsFile = "suppressions.db"

// OpenSuppressions opens (or creates) the suppression list of the
// connector whose data directory is dataDir, hashing identifiers with
// key, the orchestrator's subject key (--subject-key). A host
// application opens the same file to ask it.
func OpenSuppressions(dataDir string, key []byte, opts ...sqlitedb.Option) (*Suppressions, error) {
	if len(key) == 0 {
		return nil, errors.New("suppression list: no subject key to hash identifiers with (--subject-key)")
	}
	db, err := sqlitedb.Open(filepath.Join(dataDir, SuppressionsFile), opts...)
	if err != nil {
		return nil, err
	}
	// category "" is every category; request_id is the task's request,
	// which a lift names to clear its restriction's entries.
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS suppressions (
		tenant TEXT NOT NULL,
		hash TEXT NOT NULL,
		category TEXT NOT NULL,
		reason TEXT NOT NULL,
		request_id TEXT NOT NULL,
		at TEXT NOT NULL,
		PRIMARY KEY (tenant, hash, category, reason, request_id));
	CREATE INDEX IF NOT EXISTS suppressions_request ON suppressions (tenant, request_id)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("suppression list schema: %w", err)
	}
	insert, err := sqlitedb.Prepare(db, insertSuppression)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("suppression list: %w", err)
	}
	return &Suppressions{db: db, writes: sqlitedb.NewGroup(db), insert: insert, key: key, now: time.Now}, nil
}

// Close closes the list, once the writes under way are committed.
func (s *Suppressions) Close() error {
	s.writes.Close()
	s.insert.Close()
	return s.db.Close()
}

// Identifier is how a host application names the person it asks about:
// [Email] or [UserID].
type Identifier struct{ key string }

// Email names a person by email address (compared case-insensitively).
func Email(address string) Identifier {
	return Identifier{"email:" + pseudonym.Normalize(address)}
}

// UserID names a person by user id.
func UserID(id string) Identifier { return Identifier{"user_id:" + strings.TrimSpace(id)} }

// Verdict is the list's answer: whether the person may not be processed
// for the category asked, and why (SuppressedErased, SuppressedPurpose,
// SuppressedRestricted), most binding first.
type Verdict struct {
	Suppressed bool
	Reasons    []string
}

// Check reports whether the person named by id may not be processed, in
// tenant, for data of category ("" asks about any processing: only an
// erasure or a restriction, which cover every category, answer yes).
func (s *Suppressions) Check(ctx context.Context, tenant string, id Identifier, category string) (Verdict, error) {
	if id.key == "" || strings.HasSuffix(id.key, ":") {
		return Verdict{}, errors.New("suppression list: empty identifier")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT reason FROM suppressions
		WHERE tenant = ? AND hash = ? AND (category = '' OR category = ?)
		ORDER BY CASE reason WHEN 'erased' THEN 0 WHEN 'restricted' THEN 1 ELSE 2 END`,
		tenant, pseudonym.Hash(s.key, id.key), category)
	if err != nil {
		return Verdict{}, fmt.Errorf("suppression list: %w", err)
	}
	defer rows.Close()
	var v Verdict
	for rows.Next() {
		var reason string
		if err := rows.Scan(&reason); err != nil {
			return Verdict{}, fmt.Errorf("suppression list: %w", err)
		}
		v.Reasons = append(v.Reasons, reason)
	}
	v.Suppressed = len(v.Reasons) > 0
	return v, rows.Err()
}

// add puts the subject on the list for categories (none: every one).
func (s *Suppressions) add(ctx context.Context, tenant, requestID string, subj Subject, reason string, categories []string) error {
	var hashes []string
	if subj.Email != "" {
		hashes = append(hashes, pseudonym.Hash(s.key, Email(subj.Email).key))
	}
	if subj.UserID != "" {
		hashes = append(hashes, pseudonym.Hash(s.key, UserID(subj.UserID).key))
	}
	return s.addHashes(ctx, tenant, requestID, hashes, reason, categories)
}

// addHashes puts people named by their keyed hashes on the list.
func (s *Suppressions) addHashes(ctx context.Context, tenant, requestID string, hashes []string, reason string, categories []string) error {
	if len(categories) == 0 {
		categories = []string{""}
	}
	at := s.now().UTC().Format(time.RFC3339Nano)
	err := s.writes.Tx(ctx, func(tx *sql.Tx) error {
		for _, h := range hashes {
			for _, c := range categories {
				if _, err := s.insert.Exec(tx, insertSuppression, tenant, h, c, reason, requestID, at); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return Retryable(fmt.Errorf("suppression list: %w", err))
	}
	return nil
}

// lift clears the entries of restriction restrictionID and says how many
// there were.
func (s *Suppressions) lift(ctx context.Context, tenant, restrictionID string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM suppressions WHERE tenant = ? AND request_id = ? AND reason = ?`,
		tenant, restrictionID, SuppressedRestricted)
	if err != nil {
		return 0, Retryable(fmt.Errorf("suppression list: %w", err))
	}
	return res.RowsAffected()
}
