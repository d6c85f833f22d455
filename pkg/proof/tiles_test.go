package proof_test

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/proof"
)

// Tile paths of the tlog-tiles layout read back as the tiles they name,
// and nothing else reads as a tile.
func TestTilePaths(t *testing.T) {
	for _, tt := range []struct {
		path string
		tile tlog.Tile
	}{
		{"tile/0/000", tlog.Tile{H: 8, L: 0, N: 0, W: 256}},
		{"tile/0/x001/234.p/5", tlog.Tile{H: 8, L: 0, N: 1234, W: 5}},
		{"tile/2/007", tlog.Tile{H: 8, L: 2, N: 7, W: 256}},
		{"tile/entries/000.p/17", tlog.Tile{H: 8, L: -1, N: 0, W: 17}},
	} {
		got, err := proof.ParseTilePath(tt.path)
		if err != nil || got != tt.tile || proof.TilePath(got) != tt.path {
			t.Errorf("%s: %+v %v, back to %s", tt.path, got, err, proof.TilePath(got))
		}
	}
	for _, bad := range []string{"", "tile/", "tile/0/abc", "tile/8/0/000", "tile/data/000", "checkpoint", "tile/0/000.p/0"} {
		if _, err := proof.ParseTilePath(bad); err == nil {
			t.Errorf("%q read as a tile", bad)
		}
	}
}

// Which tiles a log holds: whole subtrees only.
func TestTileInLog(t *testing.T) {
	for _, tt := range []struct {
		tile tlog.Tile
		size int64
		want bool
	}{
		{tlog.Tile{H: 8, L: 0, N: 0, W: 5}, 5, true},
		{tlog.Tile{H: 8, L: 0, N: 0, W: 6}, 5, false},
		{tlog.Tile{H: 8, L: -1, N: 0, W: 5}, 5, true},
		{tlog.Tile{H: 8, L: 0, N: 1, W: 1}, 256, false},
		{tlog.Tile{H: 8, L: 0, N: 1, W: 1}, 257, true},
		{tlog.Tile{H: 8, L: 1, N: 0, W: 1}, 255, false},
		{tlog.Tile{H: 8, L: 1, N: 0, W: 1}, 256, true},
		{tlog.Tile{H: 4, L: 0, N: 0, W: 1}, 5, false},
	} {
		if got := proof.TileInLog(tt.tile, tt.size); got != tt.want {
			t.Errorf("%s in a log of %d: %v, want %v", tt.tile.Path(), tt.size, got, tt.want)
		}
	}
}

// An entry bundle reads back as its entries; one that ends early, goes
// on after them, or holds an entry too long for it, is refused.
func TestEntryBundle(t *testing.T) {
	entries := [][]byte{[]byte(`{"a":1}`), {}, []byte(strings.Repeat("x", 300))}
	b, err := proof.EntryBundle(entries)
	if err != nil {
		t.Fatal(err)
	}
	got, err := proof.ReadEntryBundle(b, len(entries))
	if err != nil || len(got) != 3 || !bytes.Equal(got[2], entries[2]) || len(got[1]) != 0 {
		t.Fatalf("read back %q, %v", got, err)
	}
	for name, bad := range map[string]func() error{
		"ends early":    func() error { _, err := proof.ReadEntryBundle(b[:len(b)-1], 3); return err },
		"goes on after": func() error { _, err := proof.ReadEntryBundle(append(b, 0), 3); return err },
		"fewer entries": func() error { _, err := proof.ReadEntryBundle(b, 2); return err },
		"entry too long": func() error {
			_, err := proof.EntryBundle([][]byte{make([]byte, 0x10000)})
			return err
		},
	} {
		if bad() == nil {
			t.Errorf("a bundle that %s was taken", name)
		}
	}
}
