package dataset_test

import (
	"context"
	"testing"

	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// A demo system's SQLite file syncs each commit (PRAGMA synchronous 2,
// FULL) unless opened fast (1, NORMAL).
func TestOpenSQLiteDurability(t *testing.T) {
	t.Setenv(pseudonym.KeyEnv, "")
	const schema = `CREATE TABLE IF NOT EXISTS people (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, email TEXT NOT NULL);`
	const m = `
tables:
  - name: people
    category: profile
    tenant: tenant
    subject: {email: email, user_id: id}
    strategy: delete
`
	for _, tc := range []struct {
		name string
		opts []dataset.Option
		want int
	}{
		{"default", nil, 2},
		{"strict", []dataset.Option{dataset.WithDurability(durability.Strict)}, 2},
		{"fast", []dataset.Option{dataset.WithDurability(durability.Fast), dataset.WithLogger(nil)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _, err := dataset.OpenSQLite(context.Background(), t.TempDir(), "people.db", schema, []byte(m), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var got int
			if err := db.QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("PRAGMA synchronous = %d, want %d", got, tc.want)
			}
		})
	}
}
