package prooftest

import (
	"fmt"

	"github.com/lethe-dev/lethe/pkg/proof"
	"golang.org/x/mod/sumdb/tlog"
)

// Tile serves a tile of the log as the orchestrator does (C2SP
// tlog-tiles, height 8): a tile of hashes, or (level -1) a bundle of
// entries, each its length as a big-endian uint16 then its bytes. It
// errs for a tile the log does not hold.
func (l *MemLog) Tile(t tlog.Tile) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !proof.TileInLog(t, l.size()) {
		return nil, fmt.Errorf("%w: %s in a log of %d entries", proof.ErrNoTile, proof.TilePath(t), l.size())
	}
	if t.L >= 0 {
		return tlog.ReadTileData(t, l.reader())
	}
	start := t.N << proof.TileHeight
	return proof.EntryBundle(l.entries[start : start+int64(t.W)])
}
