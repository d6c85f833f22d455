package memsystem

import (
	"context"
	"testing"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectortest"
)

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Fixture {
		s := New(map[string]int64{"account": 1, "connection": 3})
		if err := s.Seed(context.Background(), 2); err != nil {
			t.Fatal(err)
		}
		return connectortest.Fixture{
			System:  s,
			Present: connector.Subject{Email: Person(1)},
			Absent:  connector.Subject{Email: "nobody@example.com"},
			Remaining: func(_ context.Context, p connector.Subject) (int64, error) {
				s.mu.Lock()
				defer s.mu.Unlock()
				var n int64
				for _, c := range s.people[p.Email] {
					n += c
				}
				return n, nil
			},
		}
	})
}
