package sqlitedb

import (
	"context"
	"database/sql"
	"sync"
)

// Scrubber runs [Checkpoint] for callers that must see the WAL emptied of
// what they committed (an erasure, before its receipt), sharing one
// checkpoint among those that ask at the same time: a checkpoint holds
// the database's one connection while it copies and truncates, and one
// per erasure made every erasure of a bulk load wait in line for the
// others'. A caller returns once a checkpoint that began after its call
// has ended, so what it committed before the call is out of the WAL, as
// with a checkpoint of its own.
type Scrubber struct {
	db      *sql.DB
	mu      sync.Mutex
	next    *scrub // the round that starts once the running one ends; nil if none asked
	running bool   // a goroutine runs the rounds
}

type scrub struct {
	done chan struct{}
	err  error
}

// NewScrubber scrubs db's WAL. It starts a goroutine only while callers
// wait.
func NewScrubber(db *sql.DB) *Scrubber { return &Scrubber{db: db} }

// Checkpoint returns once a checkpoint begun after the call has ended,
// with its error; or ctx's, if ctx ends first (the checkpoint goes on).
func (s *Scrubber) Checkpoint(ctx context.Context) error {
	s.mu.Lock()
	if s.next == nil {
		s.next = &scrub{done: make(chan struct{})}
	}
	r := s.next
	if !s.running {
		s.running = true
		go s.run()
	}
	s.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run checkpoints for each round asked, then stops.
func (s *Scrubber) run() {
	for {
		s.mu.Lock()
		r := s.next
		s.next = nil
		if r == nil {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		// The round's, not a caller's: one leaving must not stop the
		// others' checkpoint.
		r.err = Checkpoint(context.Background(), s.db)
		close(r.done)
	}
}
