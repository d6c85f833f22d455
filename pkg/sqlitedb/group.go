package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Group commits the write transactions of concurrent callers together.
//
// A database Open returns has one connection, so its writers queue for it,
// and each commit costs the same whether it carries one change or fifty:
// the WAL frames of every page touched and, under durability.Strict, an
// fsync. Group runs each caller's function in a savepoint of its own inside
// one transaction shared with the callers waiting at the same time: a
// function that fails is rolled back to its savepoint alone, and every
// caller returns only once the group is committed, so what Tx reports is
// as durable as a transaction of its own would be. The group is only what
// queued while the last one committed: a lone caller waits for nobody.
//
// A Group hands each function the *sql.Tx; a [GroupOf] hands it what its
// [Hooks] make of the transaction, for a store that keeps more beside it.
type Group = GroupOf[*sql.Tx]

// NewGroup commits db's writes in groups. Close it before db.
func NewGroup(db *sql.DB) *Group {
	return NewGroupOf(db, Hooks[*sql.Tx]{Begin: func(tx *sql.Tx) *sql.Tx { return tx }})
}

// Hooks say what a GroupOf[T] keeps beside a group's transaction. Begin is
// required, the others optional.
type Hooks[T any] struct {
	// Begin makes what the group's functions get, around its transaction.
	Begin func(*sql.Tx) T
	// Mark is called before each function of a group of several; the
	// function it returns undoes what T kept since, when that function
	// is rolled back to its savepoint.
	Mark func(T) (undo func())
	// BeforeCommit finishes the transaction's work before its commit.
	BeforeCommit func(context.Context, T) error
	// AfterCommit runs once the transaction committed.
	AfterCommit func(context.Context, T)
	// Err wraps every error Tx returns (the store's own classification).
	Err func(error) error
}

// GroupOf is a [Group] whose functions get T, made by its [Hooks].
type GroupOf[T any] struct {
	db    *sql.DB
	hooks Hooks[T]
	// savepoints are the statements that open, release and roll back a
	// member's savepoint, prepared once: parsing them again for each
	// member is as dear as a small insert. Only run uses them.
	savepoints *Prepared
	queue      chan *groupCall[T]
	start      sync.Once
	stopped    chan struct{} // closed once run returned
	mu         sync.Mutex    // guards closed, and sends on queue against its closing
	closed     bool
	// What Stats reports, kept by run.
	busy, commits, members atomic.Int64
}

// GroupStats says how busy a group's writer has been since it was made.
// One writer runs every write of the database, so Busy growing as fast
// as the clock is a saturated store: callers queue for it, whatever
// else is idle.
type GroupStats struct {
	// Busy is the time spent running groups, from the first function
	// to the commit (waits for the CPU and the disk included).
	Busy time.Duration
	// Groups is the transactions committed (or rolled back); Members
	// the functions they ran: Members/Groups is the mean group size.
	Groups, Members int64
}

// Stats reads the group's counters; safe at any time.
func (g *GroupOf[T]) Stats() GroupStats {
	return GroupStats{Busy: time.Duration(g.busy.Load()), Groups: g.commits.Load(), Members: g.members.Load()}
}

// groupMax bounds the functions of one transaction: a group's latency is
// the sum of its members'.
const groupMax = 64

type groupCall[T any] struct {
	ctx  context.Context
	fn   func(T) error
	err  error
	panc any // a panic of fn, raised again in the caller
	done chan struct{}
}

// NewGroupOf commits db's writes in groups, with hooks. Close it before db.
func NewGroupOf[T any](db *sql.DB, hooks Hooks[T]) *GroupOf[T] {
	if hooks.Err == nil {
		hooks.Err = func(err error) error { return err }
	}
	return &GroupOf[T]{db: db, hooks: hooks, queue: make(chan *groupCall[T], groupMax), stopped: make(chan struct{})}
}

// ErrClosed is what Tx returns once the group is closed.
var ErrClosed = errors.New("sqlitedb: closed")

// Tx runs fn in the next group's transaction and returns once that
// transaction committed (nil), or fn's error, fn's work rolled back.
// ctx ends the wait for a turn; fn's statements should not take it:
// the transaction is the group's, and the SQLite driver watches a
// cancellable context with a goroutine per statement.
func (g *GroupOf[T]) Tx(ctx context.Context, fn func(T) error) error {
	g.start.Do(func() { go g.run() })
	c := &groupCall[T]{ctx: ctx, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.queue <- c // run takes from the queue until it is closed, so this ends
	g.mu.Unlock()
	<-c.done // once queued, its outcome is waited for: it may commit
	if c.panc != nil {
		panic(c.panc)
	}
	return g.hooks.Err(c.err)
}

// Close lets the groups queued commit, then stops.
func (g *GroupOf[T]) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	g.start.Do(func() { close(g.stopped) }) // never started: nothing to wait for
	<-g.stopped
	g.savepoints.Close()
}

// Members' savepoints, one at a time, so one name serves.
const (
	savepointOpen     = `SAVEPOINT member`
	savepointRelease  = `RELEASE member`
	savepointRollback = `ROLLBACK TO member`
)

// prepareSavepoints prepares the savepoint statements, outside any
// transaction (the database has one connection); if it cannot, they are
// parsed, and preparing them is tried again for the next group.
func (g *GroupOf[T]) prepareSavepoints() {
	if g.savepoints == nil {
		g.savepoints, _ = Prepare(g.db, savepointOpen, savepointRelease, savepointRollback)
	}
}

// exec runs one of the savepoint statements in tx.
func (g *GroupOf[T]) exec(tx *sql.Tx, q string) error {
	_, err := g.savepoints.Exec(tx, q)
	return err
}

func (g *GroupOf[T]) run() {
	defer close(g.stopped)
	for c := range g.queue {
		group := []*groupCall[T]{c}
	more:
		for len(group) < groupMax {
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
		start := time.Now()
		g.commit(group)
		g.busy.Add(int64(time.Since(start)))
		g.commits.Add(1)
		g.members.Add(int64(len(group)))
	}
}

// commit runs the group in one transaction and tells each caller.
func (g *GroupOf[T]) commit(group []*groupCall[T]) {
	defer func() {
		for _, c := range group {
			close(c.done)
		}
	}()
	var live []*groupCall[T]
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
	if len(live) > 1 {
		g.prepareSavepoints()
	}
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		failAll(live, fmt.Errorf("sqlitedb: begin: %w", err))
		return
	}
	defer tx.Rollback() // a no-op after Commit
	t := g.hooks.Begin(tx)
	committed := 0
	for _, c := range live {
		if len(live) == 1 {
			c.err = call(c, t)
		} else {
			c.err = g.savepoint(tx, t, c)
		}
		if errors.Is(c.err, errBroken) {
			// The savepoint could not be rolled back: nothing of this
			// transaction can be trusted; none of it commits.
			failAll(live, c.err)
			return
		}
		if c.err == nil {
			committed++
		}
	}
	if committed == 0 {
		return // every function failed: nothing to commit
	}
	err = nil
	if g.hooks.BeforeCommit != nil {
		err = g.hooks.BeforeCommit(ctx, t)
	}
	if err == nil {
		if err = tx.Commit(); err != nil {
			err = fmt.Errorf("sqlitedb: commit: %w", err)
		}
	}
	if err != nil {
		for _, c := range live {
			if c.err == nil {
				c.err = err
			}
		}
		return
	}
	if g.hooks.AfterCommit != nil {
		g.hooks.AfterCommit(ctx, t)
	}
}

// errBroken marks a failure that spoils the whole group's transaction.
var errBroken = errors.New("sqlitedb: group transaction broken")

// savepoint runs c's function in a savepoint of tx, rolled back to it if
// the function fails.
func (g *GroupOf[T]) savepoint(tx *sql.Tx, t T, c *groupCall[T]) error {
	if err := g.exec(tx, savepointOpen); err != nil {
		return fmt.Errorf("%w: savepoint: %w", errBroken, err)
	}
	undo := func() {}
	if g.hooks.Mark != nil {
		undo = g.hooks.Mark(t)
	}
	err := call(c, t)
	if err != nil {
		undo()
		if rerr := g.exec(tx, savepointRollback); rerr != nil {
			// SQLite rolls the whole transaction back by itself after
			// some errors (SQLITE_FULL among them).
			return fmt.Errorf("%w: %w (rollback to savepoint: %v)", errBroken, err, rerr)
		}
	}
	if rerr := g.exec(tx, savepointRelease); rerr != nil {
		return fmt.Errorf("%w: release savepoint: %w", errBroken, rerr)
	}
	return err
}

// call runs c's function, keeping a panic for the caller.
func call[T any](c *groupCall[T], t T) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.panc = p
			err = errors.New("sqlitedb: the transaction's function panicked")
		}
	}()
	return c.fn(t)
}

func failAll[T any](calls []*groupCall[T], err error) {
	for _, c := range calls {
		c.err = err
	}
}
