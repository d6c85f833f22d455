// Package billing is the demo billing system and its Lethe connector:
// invoices, payment methods and billing profiles, in SQLite. Its erasure and
// export follow the dataset map billing.yaml: invoices are retained for the
// period accounting law requires (the erasure answers "retained"), card
// tokens and billing profiles are deleted.
package billing

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
)

// Name is the system's name in tasks and receipts.
const Name = "billing"

//go:embed billing.yaml
var mapYAML []byte

const schema = `
CREATE TABLE IF NOT EXISTS billing_profiles (
	tenant TEXT NOT NULL,
	user_id TEXT NOT NULL,
	email TEXT NOT NULL,
	billing_name TEXT NOT NULL,
	address TEXT NOT NULL,
	vat_id TEXT,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (tenant, user_id));
CREATE TABLE IF NOT EXISTS payment_methods (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	user_id TEXT NOT NULL,
	email TEXT NOT NULL,
	card_token TEXT NOT NULL,
	brand TEXT NOT NULL,
	last4 TEXT NOT NULL,
	exp_month INTEGER NOT NULL,
	exp_year INTEGER NOT NULL,
	added_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS payment_methods_user ON payment_methods (tenant, user_id);
CREATE TABLE IF NOT EXISTS invoices (
	id TEXT PRIMARY KEY,
	tenant TEXT NOT NULL,
	user_id TEXT NOT NULL,
	email TEXT NOT NULL,
	billing_name TEXT NOT NULL,
	address TEXT NOT NULL,
	amount_cents INTEGER NOT NULL,
	currency TEXT NOT NULL,
	issued_at TEXT NOT NULL,
	checkout_ip TEXT);
CREATE INDEX IF NOT EXISTS invoices_user ON invoices (tenant, user_id);
`

// System is the billing system. Erase, Export and Count come from its
// dataset engine.
type System struct {
	*dataset.Engine
	db *sql.DB
}

// Open opens (creating it if needed) the system in env.DataDir/billing.db.
// env.Now, if set, is the clock that decides when an invoice's retention is
// over (a test jumps ten years).
func Open(ctx context.Context, env connector.Env) (*System, error) {
	opts := []dataset.Option{dataset.WithLogger(env.Logger), dataset.WithDurability(env.Durability)}
	if env.Now != nil {
		opts = append(opts, dataset.WithNow(env.Now))
	}
	db, engine, err := dataset.OpenSQLite(ctx, env.DataDir, "billing.db", schema, mapYAML, opts...)
	if err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	return &System{Engine: engine, db: db}, nil
}

// Close closes the database.
func (s *System) Close() error { return s.db.Close() }
