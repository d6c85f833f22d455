package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// The transparency log is served read-only in the C2SP tlog-tiles layout
// (GET /log/checkpoint, /log/tile/<L>/<N>[.p/<W>], /log/tile/entries/...),
// so that anyone can mirror it and check every entry with generic tooling.
// Its entries name no one: keyed hashes only.

// TileHeight is the height of tlog-tiles tiles: 256 hashes or entries.
const TileHeight = 8

// ErrNoTile is a tile the log does not hold (yet).
var ErrNoTile = errors.New("no such tile")

// LogTile reads a tile of the log: a tile of hashes (level 0 and up), or
// (level -1, "entries") a bundle of entries, each its length as a
// big-endian uint16 then its bytes. ErrNoTile for one past the log's end.
func (e *Engine) LogTile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	if t.H != TileHeight {
		return nil, ErrNoTile
	}
	var data []byte
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		size, err := tx.LogSize(ctx)
		if err != nil {
			return err
		}
		if !holds(size, t) {
			return ErrNoTile
		}
		if t.L >= 0 {
			data, err = tlog.ReadTileData(t, store.HashReader(ctx, tx))
			return err
		}
		start := t.N << TileHeight
		records, err := tx.LogRange(ctx, start, start+int64(t.W))
		if err != nil {
			return err
		}
		data = nil
		for _, r := range records {
			if len(r.Data) > 0xffff {
				return fmt.Errorf("log entry %d is longer than an entry bundle holds", r.Index)
			}
			data = binary.BigEndian.AppendUint16(data, uint16(len(r.Data)))
			data = append(data, r.Data...)
		}
		return nil
	})
	return data, err
}

// holds reports whether a log of size has all of tile t: a tile of level
// L is made of the hashes of subtrees of 256^L entries, and only whole
// subtrees count.
func holds(size int64, t tlog.Tile) bool {
	level := max(t.L, 0) // the entries tile spans what the level 0 tile does
	width := size >> (TileHeight * level)
	return t.N >= 0 && t.W >= 1 && t.W <= 1<<TileHeight && t.N<<TileHeight+int64(t.W) <= width
}
