package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// SQLite runs one write transaction at a time on its one connection, and
// a commit costs the same whether it carries one change or a hundred: the
// WAL frames of every page touched, and under durability.Strict an fsync.
// So the SQLite store commits in groups. Each caller's function runs in a
// savepoint of its own inside a transaction shared with the callers
// waiting at the same time; a function that fails is rolled back to its
// savepoint alone, and every caller returns only once the group is
// committed, so what it reports after Tx returns is durable, as with a
// transaction of its own. Functions run one after another, as separate
// transactions would on SQLite; the group is only what queued while the
// last one committed, so a lone caller waits for nobody.
type groupCommit struct {
	s       *sqlStore
	queue   chan *txCall
	start   sync.Once
	stopped chan struct{} // closed once run returned
	mu      sync.Mutex    // guards closed, and sends on queue against its closing
	closed  bool
}

// maxGroup bounds the functions of one transaction: a group's latency is
// the sum of its members'.
const maxGroup = 64

type txCall struct {
	ctx  context.Context
	fn   func(Tx) error
	err  error
	panc any // a panic of fn, raised again in the caller
	done chan struct{}
}

func newGroupCommit(s *sqlStore) *groupCommit {
	return &groupCommit{s: s, queue: make(chan *txCall, maxGroup), stopped: make(chan struct{})}
}

// errClosed is returned by Tx on a closed store.
var errClosed = errors.New("store: closed")

// tx runs fn in the next group.
func (g *groupCommit) tx(ctx context.Context, fn func(Tx) error) error {
	g.start.Do(func() { go g.run() })
	c := &txCall{ctx: ctx, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errClosed
	}
	g.queue <- c // run takes from the queue until it is closed, so this ends
	g.mu.Unlock()
	<-c.done // once queued, its outcome is waited for: it may commit
	if c.panc != nil {
		panic(c.panc)
	}
	return c.err
}

// close lets the groups queued commit, then stops.
func (g *groupCommit) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	g.start.Do(func() { close(g.stopped) }) // never started: nothing to wait for
	<-g.stopped
}

// run commits groups until the queue is closed and empty.
func (g *groupCommit) run() {
	defer close(g.stopped)
	for c := range g.queue {
		group := []*txCall{c}
	more:
		for len(group) < maxGroup {
			select {
			case c, ok := <-g.queue:
				if !ok {
					break more
				}
				group = append(group, c)
			default:
				break more
			}
		}
		g.commit(group)
	}
}

// commit runs the group in one transaction and tells each caller.
func (g *groupCommit) commit(group []*txCall) {
	s := g.s
	defer func() {
		for _, c := range group {
			close(c.done)
		}
	}()
	var live []*txCall
	for _, c := range group {
		if err := c.ctx.Err(); err != nil {
			c.err = err // given up on before it started: nothing ran
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	// The transaction is the group's, not any caller's: one caller
	// leaving must not roll back the others.
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		fail(live, unavailable(fmt.Errorf("begin: %w", err)))
		return
	}
	defer tx.Rollback() // a no-op after Commit
	t := s.newTx(tx)
	var ok []*txCall
	for i, c := range live {
		if len(live) == 1 {
			c.err = g.call(c, t)
		} else {
			c.err = g.savepoint(tx, i, c, t)
		}
		if c.err == nil {
			ok = append(ok, c)
		} else if errors.Is(c.err, errGroupBroken) {
			// The savepoint could not be rolled back: nothing of this
			// transaction can be trusted; none of it commits.
			fail(live, c.err)
			return
		}
	}
	if len(ok) == 0 {
		return // every function failed: nothing to commit
	}
	if err := t.flushLog(ctx); err != nil {
		fail(ok, unavailable(err))
		return
	}
	if err := tx.Commit(); err != nil {
		fail(ok, unavailable(fmt.Errorf("commit: %w", err)))
		return
	}
	s.hashes.add(t.wrote.list)
	// Prepared now that the connection is free: the next transaction
	// finds them.
	for _, q := range t.missed {
		s.stmts.prepare(ctx, q)
	}
}

// errGroupBroken marks a failure that spoils the whole group's transaction.
var errGroupBroken = errors.New("store: group transaction broken")

// savepoint runs c's function in savepoint i of tx, rolled back to it if
// the function fails.
func (g *groupCommit) savepoint(tx *sql.Tx, i int, c *txCall, t *sqlTx) error {
	name := fmt.Sprintf("c%d", i)
	if _, err := tx.Exec(`SAVEPOINT ` + name); err != nil {
		return fmt.Errorf("%w: savepoint: %w", errGroupBroken, unavailable(err))
	}
	mark, log := t.wrote.mark(), t.log
	err := g.call(c, t)
	if err != nil {
		t.wrote.undo(mark)
		t.log = log
		if _, rerr := tx.Exec(`ROLLBACK TO ` + name); rerr != nil {
			// SQLite rolls the whole transaction back by itself after some
			// errors (SQLITE_FULL among them): every member fails with the
			// cause, so a full disk is still ErrUnavailable to each.
			return fmt.Errorf("%w: %w (rollback to savepoint: %v)", errGroupBroken, err, rerr)
		}
	}
	if _, rerr := tx.Exec(`RELEASE ` + name); rerr != nil {
		return fmt.Errorf("%w: release savepoint: %w", errGroupBroken, rerr)
	}
	return err
}

// call runs c's function, with c's context for its statements, keeping
// a panic for the caller.
func (g *groupCommit) call(c *txCall, t *sqlTx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.panc = p
			err = errors.New("store: the transaction's function panicked")
		}
	}()
	return unavailable(c.fn(t))
}

func fail(calls []*txCall, err error) {
	for _, c := range calls {
		c.err = err
	}
}
