package engine

import (
	"context"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// The transparency log is served read-only in the C2SP tlog-tiles layout
// (GET /log/checkpoint, /log/tile/<L>/<N>[.p/<W>], /log/tile/entries/...),
// so that anyone can mirror it and check every entry with generic tooling.
// Its entries name no one: keyed hashes only.

// LogTile reads a tile of the log: a tile of hashes (level 0 and up), or
// (level -1, "entries") a bundle of entries (proof.EntryBundle).
// proof.ErrNoTile for one past the log's end.
func (e *Engine) LogTile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	var data []byte
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		size, err := tx.LogSize(ctx)
		if err != nil {
			return err
		}
		if !proof.TileInLog(t, size) {
			return proof.ErrNoTile
		}
		if t.L >= 0 {
			data, err = tlog.ReadTileData(t, store.HashReader(ctx, tx))
			return err
		}
		start := t.N << proof.TileHeight
		records, err := tx.LogRange(ctx, start, start+int64(t.W))
		if err != nil {
			return err
		}
		entries := make([][]byte, len(records))
		for i, r := range records {
			entries[i] = r.Data
		}
		data, err = proof.EntryBundle(entries)
		return err
	})
	return data, err
}
