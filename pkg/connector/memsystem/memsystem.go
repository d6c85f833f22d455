// Package memsystem is a connector.System that keeps its people in memory.
// A benchmark runs the connectors over it so that what it measures is
// Lethe's own machinery (the SDK's receipts, signatures and sealing, the
// bus, the orchestrator) rather than a demo system's database; a connector
// author can start from it in a test.
package memsystem

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	"github.com/lethe-dev/lethe/pkg/connector"
)

// System holds, per person (by email), a record count per data category.
// It is safe for concurrent use.
type System struct {
	// categories are what each seeded person holds.
	categories map[string]int64
	mu         sync.Mutex
	people     map[string]map[string]int64
}

// New returns an empty system whose seeded people each hold categories
// (category name to record count).
func New(categories map[string]int64) *System {
	return &System{categories: maps.Clone(categories), people: map[string]map[string]int64{}}
}

// Person is the email of the i-th seeded person, as the demo systems
// name them.
func Person(i int) string { return fmt.Sprintf("person-%04d@example.com", i) }

// Seed adds people 1..n (Person), each holding the system's categories.
func (s *System) Seed(ctx context.Context, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i <= n; i++ {
		s.people[Person(i)] = maps.Clone(s.categories)
	}
	return ctx.Err()
}

// Holds reports whether the system still holds data of email.
func (s *System) Holds(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.people[email]
	return ok
}

// Erase deletes the person's records and counts them per category.
func (s *System) Erase(ctx context.Context, t connector.Task) (connector.Result, error) {
	s.mu.Lock()
	held, ok := s.people[t.Subject.Email]
	delete(s.people, t.Subject.Email)
	s.mu.Unlock()
	if !ok {
		return connector.Result{Outcome: connector.NotFound}, ctx.Err()
	}
	return connector.Result{Outcome: connector.Erased, Counts: held}, ctx.Err()
}

// Export returns the person's record counts per category as their data:
// a row {"records": n} in a table of each category's name.
func (s *System) Export(ctx context.Context, t connector.Task) (connector.Result, error) {
	s.mu.Lock()
	held, ok := s.people[t.Subject.Email]
	held = maps.Clone(held)
	s.mu.Unlock()
	if !ok {
		return connector.Result{Outcome: connector.NotFound}, ctx.Err()
	}
	doc := connector.Records{}
	for c, n := range held {
		doc[c] = map[string][]map[string]any{c: {{"records": n}}}
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return connector.Result{}, err
	}
	return connector.Result{Outcome: connector.Exported, Counts: held, Export: data}, ctx.Err()
}
