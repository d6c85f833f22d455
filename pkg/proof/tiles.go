package proof

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// The log is served in the C2SP tlog-tiles layout: tiles of height 8
// (256 hashes, or 256 entries), at tile/<L>/<N>[.p/<W>] for hashes and
// tile/entries/<N>[.p/<W>] for entry bundles, each entry its length as a
// big-endian uint16, then its bytes. golang.org/x/mod/sumdb/tlog reads
// and proves tiles but names them in the sumdb layout (tile/8/0/...,
// tile/8/data/...): what follows translates, in one place, for the
// orchestrator that serves them and for whoever reads them.

// TileHeight is the height of tlog-tiles tiles.
const TileHeight = 8

// ErrNoTile is a tile path that is not the tlog-tiles layout, or a tile
// the log does not hold (yet).
var ErrNoTile = errors.New("no such tile")

// TilePath is t's path in the tlog-tiles layout ("tile/0/x001/234.p/5",
// "tile/entries/000").
func TilePath(t tlog.Tile) string {
	rest := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", TileHeight))
	if after, ok := strings.CutPrefix(rest, "data/"); ok {
		rest = "entries/" + after
	}
	return "tile/" + rest
}

// ParseTilePath reads a path of the tlog-tiles layout (TilePath).
func ParseTilePath(path string) (tlog.Tile, error) {
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok || strings.HasPrefix(rest, "data/") { // sumdb's name, not the layout's
		return tlog.Tile{}, fmt.Errorf("%w: %q", ErrNoTile, path)
	}
	if after, ok := strings.CutPrefix(rest, "entries/"); ok {
		rest = "data/" + after
	}
	t, err := tlog.ParseTilePath(fmt.Sprintf("tile/%d/", TileHeight) + rest)
	if err != nil {
		return tlog.Tile{}, fmt.Errorf("%w: %q", ErrNoTile, path)
	}
	return t, nil
}

// TileInLog reports whether a log of size entries holds all of tile t: a
// tile of level L is made of the hashes of whole subtrees of 256^L
// entries; an entry bundle spans what the level 0 tile does.
func TileInLog(t tlog.Tile, size int64) bool {
	width := size >> (TileHeight * max(t.L, 0))
	return t.H == TileHeight && t.N >= 0 && t.W >= 1 && t.W <= 1<<TileHeight && t.N<<TileHeight+int64(t.W) <= width
}

// EntryBundle encodes entries as an entry bundle.
func EntryBundle(entries [][]byte) ([]byte, error) {
	var b []byte
	for i, e := range entries {
		if len(e) > 0xffff {
			return nil, fmt.Errorf("entry %d of the bundle is longer than an entry bundle holds", i)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b, nil
}

// ReadEntryBundle decodes an entry bundle of n entries; a bundle that
// ends early, or goes on after its last entry, is an error.
func ReadEntryBundle(b []byte, n int) ([][]byte, error) {
	entries := make([][]byte, 0, n)
	for range n {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			return nil, fmt.Errorf("the entry bundle ends at entry %d of %d", len(entries), n)
		}
		size := int(binary.BigEndian.Uint16(b))
		entries = append(entries, b[2:2+size])
		b = b[2+size:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the bundle's %d entries", len(b), n)
	}
	return entries, nil
}
