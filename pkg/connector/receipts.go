package connector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// ReceiptStore remembers the receipt of every task a connector completed, so
// that a second delivery of the task answers the same receipt with no second
// effect.
type ReceiptStore interface {
	// Start records that work on taskID starts (if it did not before),
	// and returns what an earlier delivery left: the stored receipt of
	// taskID (nil if none), and whether work on it had started before: a
	// crash, or a failure to store, may have come after the effect. One
	// step, not two: a connector's store is written one transaction at a
	// time, and every task delivered takes this step.
	Start(ctx context.Context, taskID string) (stored *lethev1.Receipt, resumed bool, err error)
	// Put stores r under its task id, replacing a receipt stored before
	// (the "retained" answer that a deferred erasure's answer follows).
	Put(ctx context.Context, r *lethev1.Receipt) error
}

// SQLiteReceipts is a [ReceiptStore] in a SQLite file.
//
// Beside each receipt it keeps a durable count of the effects applied for
// the task: the column receipts.applied, set to 1 when the receipt is first
// stored and incremented, in the same statement (so the same transaction),
// each time a receipt is stored again for that task id. A receipt is stored
// only after the system's effect ran, and a stored receipt stops any later
// delivery from running the effect again, so the count stays 1: above 1 means
// the effect was applied twice, except for the one legitimate second effect,
// the deferred erasure that follows a "retained" answer once its retention
// date has passed. [SQLiteReceipts.Applied] reads the counts (the chaos test,
// scripts/chaos, checks them). An effect cut short before its receipt was
// stored (a crash) is not counted: it is run again, and the [System] must be
// idempotent for it.
type SQLiteReceipts struct {
	db *sql.DB
	// writes commits Begin's and Put's rows of concurrent tasks together.
	writes *sqlitedb.Group
	stmts  *sqlitedb.Prepared // Start's and Put's, run for every task
}

// The statements every task runs.
const (
	selectReceipt = `SELECT receipt FROM receipts WHERE task_id = ?`
	insertStarted = `INSERT INTO started (task_id) VALUES (?) ON CONFLICT (task_id) DO NOTHING`
	upsertReceipt = `INSERT INTO receipts (task_id, receipt) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET receipt = excluded.receipt, applied = receipts.applied + 1`
)

// OpenReceipts opens (or creates) the receipt store at path. opts are
// sqlitedb's: [sqlitedb.WithDurability] (by default every receipt is
// synced to the disk before Put returns).
func OpenReceipts(path string, opts ...sqlitedb.Option) (*SQLiteReceipts, error) {
	db, err := sqlitedb.Open(path, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS receipts (
		task_id TEXT PRIMARY KEY,
		receipt BLOB NOT NULL,
		applied INTEGER NOT NULL DEFAULT 1,
		stored_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));
	CREATE TABLE IF NOT EXISTS started (
		task_id TEXT PRIMARY KEY,
		started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))`); err != nil {
		db.Close()
		return nil, fmt.Errorf("receipt store schema: %w", err)
	}
	// A store made before the applied count: each receipt it holds was one
	// applied effect.
	var has int
	if err := db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('receipts') WHERE name = 'applied'`).Scan(&has); err != nil {
		db.Close()
		return nil, fmt.Errorf("receipt store schema: %w", err)
	}
	if has == 0 {
		if _, err := db.Exec(`ALTER TABLE receipts ADD COLUMN applied INTEGER NOT NULL DEFAULT 1`); err != nil {
			db.Close()
			return nil, fmt.Errorf("receipt store schema: %w", err)
		}
	}
	stmts, err := sqlitedb.Prepare(db, selectReceipt, insertStarted, upsertReceipt)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("receipt store: %w", err)
	}
	return &SQLiteReceipts{db: db, writes: sqlitedb.NewGroup(db), stmts: stmts}, nil
}

// Close closes the file, once the writes under way are committed.
func (s *SQLiteReceipts) Close() error {
	s.writes.Close()
	s.stmts.Close()
	return s.db.Close()
}

// Start implements [ReceiptStore].
func (s *SQLiteReceipts) Start(ctx context.Context, taskID string) (*lethev1.Receipt, bool, error) {
	var stored []byte
	var resumed bool
	err := s.writes.Tx(ctx, func(tx *sql.Tx) error {
		stored = nil
		err := s.stmts.QueryRow(tx, selectReceipt, taskID).Scan(&stored)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := s.stmts.Exec(tx, insertStarted, taskID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		resumed = n == 0
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("start task: %w", err)
	}
	if stored == nil {
		return nil, resumed, nil
	}
	r := &lethev1.Receipt{}
	if err := proto.Unmarshal(stored, r); err != nil {
		return nil, false, fmt.Errorf("decode stored receipt: %w", err)
	}
	return r, resumed, nil
}

// Put implements [ReceiptStore].
func (s *SQLiteReceipts) Put(ctx context.Context, r *lethev1.Receipt) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode receipt: %w", err)
	}
	err = s.writes.Tx(ctx, func(tx *sql.Tx) error {
		_, err := s.stmts.Exec(tx, upsertReceipt, r.GetTaskId(), b)
		return err
	})
	if err != nil {
		return fmt.Errorf("put receipt: %w", err)
	}
	return nil
}

// Applied returns, per task id with a stored receipt, how many times an
// effect was applied for it (see [SQLiteReceipts]): 1 for each task done
// once.
func (s *SQLiteReceipts) Applied(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT task_id, applied FROM receipts`)
	if err != nil {
		return nil, fmt.Errorf("applied counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("applied counts: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("applied counts: %w", err)
	}
	return out, nil
}
