package store

import (
	"context"
	"database/sql"
	"sync"
)

// statements keeps SQLite's statements compiled. SQLite parses a
// statement's text anew on every call that does not go through a prepared
// statement: under load that parsing was about 15% of the orchestrator's
// CPU. A statement is prepared on the database, outside any transaction
// (the store's one connection is held by a transaction while it runs; a
// statement first met inside one is prepared after its commit), and used in
// a transaction through Tx.StmtContext, which reuses what the connection
// compiled.
//
// A nil *statements prepares nothing: every call runs its text.
type statements struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// maxStatements bounds the cache: the store's statements are a few dozen
// texts (those with a list of placeholders, one per length met).
const maxStatements = 512

func newStatements(db *sql.DB) *statements {
	return &statements{db: db, m: map[string]*sql.Stmt{}}
}

// lookup returns q prepared, or nil if it is not yet.
func (p *statements) lookup(q string) *sql.Stmt {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[q]
}

// prepare returns q prepared, preparing it first if need be; nil when it
// cannot (the cache is full, or preparing failed: the caller runs the text,
// which reports the error). Never call it inside a transaction.
func (p *statements) prepare(ctx context.Context, q string) *sql.Stmt {
	if p == nil {
		return nil
	}
	if st := p.lookup(q); st != nil {
		return st
	}
	st, err := p.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.m[q]; ok {
		st.Close() // prepared meanwhile by another caller
		return prev
	}
	if len(p.m) >= maxStatements {
		st.Close()
		return nil
	}
	p.m[q] = st
	return st
}

func (p *statements) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for q, st := range p.m {
		st.Close()
		delete(p.m, q)
	}
}
