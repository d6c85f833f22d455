package connector

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// Env is what a connector's system gets to open itself with.
type Env struct {
	// DataDir is the directory the system keeps its files in.
	DataDir    string
	Bus        bus.Bus
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the connector's clock (nil: time.Now); a test moves it to
	// see a retention run out.
	Now func() time.Time
	// TaskKeys hold the orchestrator's public key, which every task must
	// be signed with (see OrchestratorKey).
	TaskKeys proof.KeySet
	// Durability is how far the connector's stores take a write before it
	// counts as done: the receipt store, and a system's own SQLite files
	// (sqlitedb.WithDurability, dataset.WithDurability). The zero value is
	// durability.Strict, an fsync per commit.
	Durability durability.Mode
	// Blobs is where exports go, encrypted; the orchestrator reads them
	// from the same store (see [Config]).
	Blobs blob.Store
	// SubjectKey is the orchestrator's subject hash key (see [Config]).
	SubjectKey []byte
}

// OrchestratorKey reads the orchestrator's public key from the public
// entry it writes beside its signing key (data/orchestrator/signing.key.pub
// in the local layout), as the keys a connector checks tasks with.
func OrchestratorKey(path string) (proof.KeySet, error) {
	k, err := proof.ReadPublicKey(path)
	if err != nil {
		return proof.KeySet{}, fmt.Errorf("orchestrator key: %w", err)
	}
	if k.Role != proof.RoleOrchestrator {
		return proof.KeySet{}, fmt.Errorf("orchestrator key %s: %s is a %s key", path, k.ID, k.Role)
	}
	var ks proof.KeySet
	ks.Add(k)
	return ks, nil
}

// Opener opens a connector's system. A connector binary passes it to
// connectorcmd.Main.
type Opener func(ctx context.Context, env Env) (System, error)

// Start serves sys until ctx is cancelled, keeping its receipts in
// env.DataDir/receipts.db and its suppression list in
// env.DataDir/suppressions.db (when env.SubjectKey is set; see
// [Suppressions]), and signing receipts with the key in
// env.DataDir/signing.key (see [SigningKey]). It is what a connector binary
// runs (through connectorcmd.Main, which dials the bus and opens the system
// first), and what the in-process stack runs for each connector.
func Start(ctx context.Context, system string, env Env, sys System) error {
	signer, err := SigningKey(env.DataDir, system)
	if err != nil {
		return err
	}
	seal, err := SealingKey(env.DataDir)
	if err != nil {
		return err
	}
	receipts, err := OpenReceipts(filepath.Join(env.DataDir, "receipts.db"), sqlitedb.WithDurability(env.Durability))
	if err != nil {
		return err
	}
	defer receipts.Close()
	var sup *Suppressions
	if len(env.SubjectKey) > 0 {
		if sup, err = OpenSuppressions(env.DataDir, env.SubjectKey, sqlitedb.WithDurability(env.Durability)); err != nil {
			return err
		}
		defer sup.Close()
	} else if env.Logger != nil {
		env.Logger.Warn("no subject key: no suppression list is kept, and restrictions fail (--subject-key)")
	}
	if env.Logger != nil {
		env.Logger.Info("signing receipts", "key_id", signer.Key.ID, "public_key_file", filepath.Join(env.DataDir, "signing.key.pub"))
	}
	return Run(ctx, Config{System: system, Bus: env.Bus, Receipts: receipts, Signer: signer, SealKey: seal, TaskKeys: env.TaskKeys, Logger: env.Logger,
		Registerer: env.Registerer, Now: env.Now, Blobs: env.Blobs, SubjectKey: env.SubjectKey, Suppressions: sup}, sys)
}

// SigningKey is the connector's ed25519 key: from $LETHE_SIGNING_KEY (the
// hex of its seed) in production, else generated into dataDir/signing.key on
// first start. The public entry written beside that file, signing.key.pub,
// is what the orchestrator's keys file must list for the system
// (`lethectl keys add`).
//
// The entry also carries the connector's sealing key (see [SealingKey]),
// which the orchestrator seals the tasks' subject identifiers to.
func SigningKey(dataDir, system string) (*proof.Signer, error) {
	s, err := proof.LoadSigner(filepath.Join(dataDir, "signing.key"), system, time.Now())
	if err != nil {
		return nil, err
	}
	if _, err := proof.SealingKeyIn(dataDir, s); err != nil {
		return nil, err
	}
	return s, nil
}

// SealingKey is the connector's X25519 key, dataDir/seal.key, created on
// first start: the tasks' subject identifiers are sealed to it.
func SealingKey(dataDir string) (*proof.SealKey, error) {
	return proof.LoadOrCreateSealKey(filepath.Join(dataDir, "seal.key"))
}
