package sqlitedb

import (
	"database/sql"
	"fmt"
)

// Prepared keeps statements compiled for the transactions of a database
// Open returned. SQLite parses a statement's text anew on every call that
// does not go through a prepared statement, and for a small insert the
// parsing costs about as much as the insert. The statements are prepared
// on the database, outside any transaction (its one connection is held by
// a transaction while that runs), and run in a transaction through
// Tx.Stmt, which reuses what the connection compiled.
//
// A nil *Prepared, or a text it was not given, runs the text.
type Prepared struct{ m map[string]*sql.Stmt }

// Prepare compiles queries on db. Call it before db's first transaction.
func Prepare(db *sql.DB, queries ...string) (*Prepared, error) {
	p := &Prepared{m: make(map[string]*sql.Stmt, len(queries))}
	for _, q := range queries {
		st, err := db.Prepare(q)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("sqlite prepare: %w", err)
		}
		p.m[q] = st
	}
	return p, nil
}

func (p *Prepared) in(tx *sql.Tx, q string) *sql.Stmt {
	if p == nil || p.m[q] == nil {
		return nil
	}
	return tx.Stmt(p.m[q])
}

// Exec runs q in tx.
func (p *Prepared) Exec(tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st := p.in(tx, q); st != nil {
		return st.Exec(args...)
	}
	return tx.Exec(q, args...)
}

// QueryRow runs q in tx for one row.
func (p *Prepared) QueryRow(tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := p.in(tx, q); st != nil {
		return st.QueryRow(args...)
	}
	return tx.QueryRow(q, args...)
}

// Close releases the statements.
func (p *Prepared) Close() {
	if p == nil {
		return
	}
	for _, st := range p.m {
		st.Close()
	}
}
