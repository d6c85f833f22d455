package devstack

import (
	"log/slog"
	"testing"

	"github.com/lethe-dev/lethe/pkg/durability"
)

// The stack's durability reaches every connector's stores (its receipt
// store and its system's SQLite files open with the env's).
func TestDurabilityReachesTheConnectors(t *testing.T) {
	for _, mode := range []durability.Mode{durability.Strict, durability.Fast} {
		s := &Stack{cfg: Config{Durability: mode, Logger: slog.Default()}}
		for _, name := range demoSystems {
			if got := s.env(name).Durability; got != mode {
				t.Errorf("%s runs %v, want %v", name, got, mode)
			}
		}
	}
}
