package prooftest

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Tile serves a tile of the log as the orchestrator does (C2SP
// tlog-tiles, height 8): a tile of hashes, or (level -1) a bundle of
// entries, each its length as a big-endian uint16 then its bytes. It
// errs for a tile the log does not hold.
func (l *MemLog) Tile(t tlog.Tile) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	width := l.size() >> (8 * max(t.L, 0))
	if t.H != 8 || t.N < 0 || t.W < 1 || t.W > 256 || t.N*256+int64(t.W) > width {
		return nil, fmt.Errorf("no tile %s in a log of %d entries", t.Path(), l.size())
	}
	if t.L >= 0 {
		return tlog.ReadTileData(t, l.reader())
	}
	var data []byte
	for _, e := range l.entries[t.N*256 : t.N*256+int64(t.W)] {
		data = binary.BigEndian.AppendUint16(data, uint16(len(e)))
		data = append(data, e...)
	}
	return data, nil
}
