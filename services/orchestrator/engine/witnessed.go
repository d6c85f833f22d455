package engine

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// LogSize is the number of entries in the log.
func (e *Engine) LogSize(ctx context.Context) (int64, error) {
	var size int64
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) (err error) { size, err = tx.LogSize(ctx); return err })
	return size, err
}

// SignedCheckpoint signs a checkpoint of the log as it now stands, for
// the witnesses to cosign, and returns its size.
func (e *Engine) SignedCheckpoint(ctx context.Context) (int64, []byte, error) {
	var size int64
	var c []byte
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		var err error
		if size, err = tx.LogSize(ctx); err != nil {
			return err
		}
		root, err := tlog.TreeHash(size, store.HashReader(ctx, tx))
		if err != nil {
			return err
		}
		c, err = proof.SignCheckpoint(e.cfg.Signer, e.cfg.LogOrigin, size, root, e.Now())
		return err
	})
	return size, c, err
}

// IssueWitnessed keeps a checkpoint of the log of size entries that the
// witnesses cosigned (note: the signed note with their cosignatures) and
// issues, on it, every certificate that waited for one covering the log
// as it was when its request changed. It returns how many it issued.
func (e *Engine) IssueWitnessed(ctx context.Context, size int64, note []byte) (int, error) {
	if _, err := proof.OpenCheckpoint(e.Keys(), note); err != nil {
		return 0, fmt.Errorf("witnessed checkpoint: %w", err)
	}
	now := e.Now()
	if err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error { return tx.PutWitnessedCheckpoint(ctx, size, note, now) }); err != nil {
		return 0, err
	}
	return e.issueWaiting(ctx, witnessedOn{size, note}, "")
}

// PublicCheckpoint is the checkpoint GET /log/checkpoint serves: with
// witnesses, the latest they cosigned (none yet: a fresh one); without, a
// fresh one.
func (e *Engine) PublicCheckpoint(ctx context.Context) ([]byte, error) {
	if e.cfg.Witnessed {
		_, note, err := e.cfg.Store.WitnessedCheckpoint(ctx)
		if err == nil {
			return note, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	_, c, err := e.SignedCheckpoint(ctx)
	return c, err
}
