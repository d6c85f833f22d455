package connector

import (
	"path/filepath"
	"testing"

	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// The receipt store syncs each receipt (PRAGMA synchronous 2, FULL) unless
// opened fast (1, NORMAL).
func TestReceiptsDurability(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []sqlitedb.Option
		want int
	}{
		{"default", nil, 2},
		{"strict", []sqlitedb.Option{sqlitedb.WithDurability(durability.Strict)}, 2},
		{"fast", []sqlitedb.Option{sqlitedb.WithDurability(durability.Fast)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenReceipts(filepath.Join(t.TempDir(), "receipts.db"), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var got int
			if err := s.db.QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("PRAGMA synchronous = %d, want %d", got, tc.want)
			}
		})
	}
}
