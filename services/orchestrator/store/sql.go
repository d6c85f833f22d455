package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// sqlStore is the one SQL layer both engines share: SQLite and PostgreSQL
// (through pgx's database/sql driver) run the same statements, written with
// ? placeholders, and keep times as milliseconds since the epoch, so they
// return identical values. What differs is in [dialect].
type sqlStore struct {
	db *sql.DB
	// reads, where set (SQLite), is a pool of read-only connections
	// beside db's one, with its own prepared statements: the queries
	// outside a transaction that change nothing run there, side by side
	// with the writer and with each other, instead of queueing it behind
	// them. Where nil (PostgreSQL, whose pool runs everything side by
	// side), they run on db.
	reads     *sql.DB
	readStmts *statements
	d         dialect
	// stmts are the statements kept prepared, and group commits the
	// transactions in groups (SQLite; nil for PostgreSQL, whose driver
	// keeps its own statements and whose transactions run side by side).
	stmts *statements
	group *sqlitedb.GroupOf[*sqlTx]
	// hashes are the log's committed stored hashes, kept in memory.
	hashes *hashCache
}

// dialect is what differs between the engines.
type dialect struct {
	// dollar numbers placeholders $1, $2, ... (PostgreSQL) instead of ?.
	dollar bool
	// lockRows is set where several transactions run at once
	// (PostgreSQL): rows read to be changed are locked. SQLite runs one
	// write transaction at a time (BEGIN IMMEDIATE on one connection), so
	// every transaction there is serialisable already.
	lockRows bool
	// writableCTE: a statement's WITH clauses may insert (PostgreSQL).
	writableCTE bool
}

// q rewrites a statement's ? placeholders for the engine.
func (d dialect) q(s string) string {
	if !d.dollar {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// forUpdate is the locking clause of a SELECT whose rows the transaction
// is about to change.
func (d dialect) forUpdate() string {
	if d.lockRows {
		return " FOR UPDATE"
	}
	return ""
}

// skipLocked is the locking clause of a SELECT that takes work: rows
// another transaction holds are left to it.
func (d dialect) skipLocked(of string) string {
	if !d.lockRows {
		return ""
	}
	if of != "" {
		of = " OF " + of
	}
	return " FOR UPDATE" + of + " SKIP LOCKED"
}

// placeholders returns "?, ?, ..." for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Close closes the database.
func (s *sqlStore) Close() error {
	if s.group != nil {
		s.group.Close()
	}
	if s.reads != nil {
		// First: the writer's connection, closed last, checkpoints the
		// WAL and removes it.
		s.readStmts.close()
		s.reads.Close()
	}
	s.stmts.close()
	return s.db.Close()
}

// Ping checks the database answers.
func (s *sqlStore) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Tx implements [Store].
func (s *sqlStore) Tx(ctx context.Context, fn func(Tx) error) error {
	if s.group != nil {
		return s.group.Tx(ctx, func(t *sqlTx) error { return fn(t) })
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(fmt.Errorf("begin: %w", err))
	}
	// Rolls back if fn panics; a no-op after Commit.
	defer tx.Rollback()
	t := s.newTx(tx)
	if err := fn(t); err != nil {
		return unavailable(err)
	}
	if err := t.flushLog(ctx); err != nil {
		return unavailable(err)
	}
	if err := tx.Commit(); err != nil {
		return unavailable(fmt.Errorf("commit: %w", err))
	}
	s.committed(ctx, t)
	return nil
}

// View implements [Store]: a read-only transaction where reads run (on
// SQLite, the read pool: a deferred BEGIN takes its snapshot at the first
// read; on PostgreSQL, REPEATABLE READ keeps the first statement's
// snapshot to the end), always rolled back.
func (s *sqlStore) View(ctx context.Context, fn func(Tx) error) error {
	db, stmts := s.reader()
	opts := &sql.TxOptions{ReadOnly: true}
	if s.d.lockRows {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return unavailable(fmt.Errorf("begin: %w", err))
	}
	defer tx.Rollback()
	t := &sqlTx{tx: tx, d: s.d, stmts: stmts, hashes: s.hashes}
	t.d.lockRows = false // it changes nothing, so locks nothing
	err = fn(t)
	tx.Rollback() // before preparing: that takes a connection of the pool
	if err != nil {
		return err
	}
	for _, q := range t.missed {
		stmts.prepare(ctx, q)
	}
	return nil
}

// committed keeps what t wrote once it is committed.
func (s *sqlStore) committed(ctx context.Context, t *sqlTx) {
	s.hashes.add(t.wrote.list)
	// Prepared now that the connection is free: the next transaction
	// finds them.
	for _, q := range t.missed {
		s.stmts.prepare(ctx, q)
	}
}

type sqlTx struct {
	tx     *sql.Tx
	d      dialect
	stmts  *statements
	hashes *hashCache
	// grouped: the transaction is a group's (SQLite), not any one
	// caller's, so its statements ignore their caller's cancellation. A
	// statement cut short would fail the caller's savepoint anyway, and a
	// cancellable context costs the SQLite driver a goroutine per
	// statement, on the store's one writer.
	grouped bool
	// missed are the statements run unprepared.
	missed []string
	// wrote are the log hashes written.
	wrote logWrites
	// log is the log's size as this transaction knows it, once read: its
	// appends take their indexes from it, and its new value is written
	// once, before the commit (flushLog), not once per entry.
	log logHead
	// pending are the entries appended and not yet placed in the log
	// (no index yet, see AppendLog); appended those placed and not yet
	// written, and hashesWritten how many of wrote's hashes are: both are
	// written in a few statements before a read of the entries or the
	// commit, not two statements per entry.
	pending       []logEntry
	appended      []logEntry
	hashesWritten int
}

type logEntry struct {
	idx       int64
	requestID string
	data      []byte
}

// mark returns what undoes t's own state back to now, when the savepoint
// begun now is rolled back (the database undoes its own).
func (t *sqlTx) mark() (undo func()) {
	wrote, log, pending, appended, hashesWritten := t.wrote.mark(), t.log, t.pending, t.appended, t.hashesWritten
	return func() {
		t.wrote.undo(wrote)
		t.log, t.pending, t.appended, t.hashesWritten = log, pending, appended, hashesWritten
	}
}

// writeAppended writes the entries appended and their hashes.
func (t *sqlTx) writeAppended(ctx context.Context) error {
	if err := t.place(ctx); err != nil {
		return err
	}
	entries, hashes := t.unwritten()
	if len(entries) > 0 {
		if err := t.insertRows(ctx, insertLogEntries, 3, entries); err != nil {
			return fmt.Errorf("log append: %w", err)
		}
	}
	if len(hashes) > 0 {
		if err := t.insertRows(ctx, insertLogHashes, 2, hashes); err != nil {
			return fmt.Errorf("log append: %w", err)
		}
	}
	t.written()
	return nil
}

const (
	insertLogEntries = `INSERT INTO log_entries (idx, request_id, data) VALUES `
	insertLogHashes  = `INSERT INTO log_hashes (idx, hash) VALUES `
)

// unwritten are the values of the log entries and hashes appended and not
// yet written, row after row.
func (t *sqlTx) unwritten() (entries, hashes []any) {
	stored := t.wrote.list[t.hashesWritten:]
	entries, hashes = make([]any, 0, 3*len(t.appended)), make([]any, 0, 2*len(stored))
	for _, e := range t.appended {
		entries = append(entries, e.idx, e.requestID, e.data)
	}
	for _, h := range stored {
		hashes = append(hashes, h.idx, h.hash[:])
	}
	return entries, hashes
}

// written records that what unwritten returned is written.
func (t *sqlTx) written() {
	t.appended = nil // a new slice: a savepoint's mark keeps the old one
	t.hashesWritten = len(t.wrote.list)
}

// insertRows runs head ("INSERT INTO t (a, b) VALUES ") over rows of
// width values each, args holding them row after row, in as few
// statements as SQLite's limit on variables allows. Unprepared: the
// number of rows varies.
func (t *sqlTx) insertRows(ctx context.Context, head string, width int, args []any) error {
	const maxVariables = 999 // SQLite's lowest limit
	for len(args) > 0 {
		n := min(len(args), maxVariables/width*width)
		q := t.d.q(head + valueRows(width, n))
		if _, err := t.tx.ExecContext(t.statementContext(ctx), q, args[:n]...); err != nil {
			return err
		}
		args = args[n:]
	}
	return nil
}

// logHead is the log's size within a transaction.
type logHead struct {
	size         int64
	known, dirty bool
}

// flushLog writes the entries appended and the log's new size, if the
// transaction appended.
func (t *sqlTx) flushLog(ctx context.Context) error {
	if !t.log.dirty {
		return nil
	}
	if err := t.place(ctx); err != nil {
		return err
	}
	if t.d.writableCTE {
		if entries, hashes := t.unwritten(); len(entries)+len(hashes) < maxParameters {
			return t.flushLogAtOnce(ctx, entries, hashes)
		}
	}
	if err := t.writeAppended(ctx); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `UPDATE log_head SET size = ? WHERE id = 1`, t.log.size); err != nil {
		return fmt.Errorf("log append: %w", err)
	}
	t.log.dirty = false
	return nil
}

// flushLogAtOnce is flushLog in one statement. On PostgreSQL the log's head
// stays locked from the entries' placement to the commit, and every
// appending transaction of every replica queues for it: each round trip in
// that span is paid by all of them, so the entries, their hashes and the
// new size go together.
func (t *sqlTx) flushLogAtOnce(ctx context.Context, entries, hashes []any) error {
	var with []string
	if len(entries) > 0 {
		with = append(with, `entries AS (`+insertLogEntries+valueRows(3, len(entries))+`)`)
	}
	if len(hashes) > 0 {
		with = append(with, `hashes AS (`+insertLogHashes+valueRows(2, len(hashes))+`)`)
	}
	q := `UPDATE log_head SET size = ? WHERE id = 1`
	if len(with) > 0 {
		q = `WITH ` + strings.Join(with, `, `) + ` ` + q
	}
	args := append(append(entries, hashes...), t.log.size)
	if _, err := t.tx.ExecContext(t.statementContext(ctx), t.d.q(q), args...); err != nil {
		return fmt.Errorf("log append: %w", err)
	}
	t.written()
	t.log.dirty = false
	return nil
}

// maxParameters is PostgreSQL's limit on a statement's parameters.
const maxParameters = 65535

// valueRows is "(?, ?), (?, ?)" for values of rows width wide.
func valueRows(width, values int) string {
	return strings.TrimSuffix(strings.Repeat("("+placeholders(width)+"), ", values/width), ", ")
}

func (s *sqlStore) newTx(tx *sql.Tx) *sqlTx {
	return &sqlTx{tx: tx, d: s.d, stmts: s.stmts, hashes: s.hashes}
}

// statementContext is the context t's statements run under.
func (t *sqlTx) statementContext(ctx context.Context) context.Context {
	if t.grouped {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// stmt is the transaction's use of the prepared q, or nil (then q is
// prepared after the commit).
func (t *sqlTx) stmt(ctx context.Context, q string) *sql.Stmt {
	if st := t.stmts.lookup(q); st != nil {
		return t.tx.StmtContext(ctx, st)
	}
	if t.stmts != nil {
		t.missed = append(t.missed, q)
	}
	return nil
}

func (t *sqlTx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = t.statementContext(ctx)
	q := t.d.q(query)
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t *sqlTx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = t.statementContext(ctx)
	q := t.d.q(query)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t *sqlTx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = t.statementContext(ctx)
	q := t.d.q(query)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

// exec runs a statement outside a transaction; query and queryRow a
// query that changes nothing, where reads run (see reads); update and
// updateRow a statement that changes rows and returns some.
func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	q := s.d.q(query)
	if st := s.stmts.prepare(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.db.ExecContext(ctx, q, args...)
}

func (s *sqlStore) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	db, stmts := s.reader()
	return queryOn(ctx, db, stmts, s.d.q(query), args)
}

func (s *sqlStore) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	db, stmts := s.reader()
	return queryRowOn(ctx, db, stmts, s.d.q(query), args)
}

func (s *sqlStore) update(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return queryOn(ctx, s.db, s.stmts, s.d.q(query), args)
}

func (s *sqlStore) updateRow(ctx context.Context, query string, args ...any) *sql.Row {
	return queryRowOn(ctx, s.db, s.stmts, s.d.q(query), args)
}

// reader is where the store's reads run, and their statements.
func (s *sqlStore) reader() (*sql.DB, *statements) {
	if s.reads != nil {
		return s.reads, s.readStmts
	}
	return s.db, s.stmts
}

func queryOn(ctx context.Context, db *sql.DB, stmts *statements, q string, args []any) (*sql.Rows, error) {
	if st := stmts.prepare(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.QueryContext(ctx, q, args...)
}

func queryRowOn(ctx context.Context, db *sql.DB, stmts *statements, q string, args []any) *sql.Row {
	if st := stmts.prepare(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.QueryRowContext(ctx, q, args...)
}

func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullBytes stores an empty value as NULL and reads it back as nil, the
// same in both engines.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func emptyNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// insertOne runs an INSERT ... ON CONFLICT DO NOTHING and turns a conflict
// into ErrDuplicate. Unlike a unique violation, a conflict leaves a
// PostgreSQL transaction usable, as it does in SQLite.
func (t *sqlTx) insertOne(ctx context.Context, what, query string, args ...any) error {
	res, err := t.exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("insert %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("insert %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrDuplicate)
	}
	return nil
}

func (t *sqlTx) InsertRequest(ctx context.Context, r *Request) error {
	return t.insertOne(ctx, "request", `INSERT INTO requests (`+requestColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL) ON CONFLICT DO NOTHING`,
		r.ID, r.Tenant, r.Type, r.State, nullBytes(r.SealedSubject), r.SubjectHash, r.Source, nullString(r.SourceRef),
		ms(r.ReceivedAt), ms(r.Deadline), ms(r.CreatedAt), ms(r.UpdatedAt), ms(r.CompletedAt),
		ms(r.AnsweredAt), nullString(r.DeadlinePolicy), ms(r.OriginalDeadline), ms(r.ExtendedAt), nullString(r.ExtensionReason),
		nullString(r.SubmittedBy), nullString(r.VerificationNote), nullString(r.DenialNote), nullString(r.Scope))
}

// requestColumns: sealed_subject is fifth; an older version's identifiers
// in clear (subject_email, subject_user_id) come last, read only.
const requestColumns = `id, tenant, type, state, sealed_subject, subject_hash, source, source_ref, received_at, deadline, created_at, updated_at, completed_at,
	answered_at, deadline_policy, original_deadline, extended_at, extension_reason, submitted_by, verification_note, denial_note,
	scope, subject_email, subject_user_id`

func scanRequest(row interface{ Scan(...any) error }) (*Request, error) {
	var r Request
	var email, userID, ref, policy, reason, by, vnote, dnote, scope sql.NullString
	var received, deadline, created, updated, completed, answered, original, extended sql.NullInt64
	err := row.Scan(&r.ID, &r.Tenant, &r.Type, &r.State, &r.SealedSubject, &r.SubjectHash, &r.Source, &ref,
		&received, &deadline, &created, &updated, &completed, &answered, &policy, &original, &extended, &reason, &by, &vnote, &dnote,
		&scope, &email, &userID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan request: %w", err)
	}
	r.ClearEmail, r.ClearUserID, r.SourceRef = email.String, userID.String, ref.String
	r.ReceivedAt, r.Deadline, r.CreatedAt = fromMS(received), fromMS(deadline), fromMS(created)
	r.UpdatedAt, r.CompletedAt, r.AnsweredAt = fromMS(updated), fromMS(completed), fromMS(answered)
	r.DeadlinePolicy, r.ExtensionReason = policy.String, reason.String
	r.OriginalDeadline, r.ExtendedAt = fromMS(original), fromMS(extended)
	r.SubmittedBy, r.VerificationNote, r.DenialNote = by.String, vnote.String, dnote.String
	r.Scope = scope.String
	return &r, nil
}

func (t *sqlTx) Request(ctx context.Context, id string) (*Request, error) {
	return scanRequest(t.queryRow(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`+t.d.forUpdate(), id))
}

func (t *sqlTx) RequestBySourceRef(ctx context.Context, ref string) (*Request, error) {
	return scanRequest(t.queryRow(ctx, `SELECT `+requestColumns+` FROM requests WHERE source_ref = ?`+t.d.forUpdate(), ref))
}

// UnverifiedBefore locks the requests it returns, skipping those another
// transaction holds, as DueTasks does.
func (t *sqlTx) UnverifiedBefore(ctx context.Context, before time.Time, only, except []string, limit int) ([]*Request, error) {
	// Counted from receipt, or from filing for a request back-dated: a
	// request filed today is not expired at once.
	where, args := `state = 'pending_verification' AND received_at < ? AND created_at < ?`, []any{before.UnixMilli(), before.UnixMilli()}
	for _, f := range []struct {
		op      string
		tenants []string
	}{{"IN", only}, {"NOT IN", except}} {
		if len(f.tenants) == 0 {
			continue
		}
		where += ` AND tenant ` + f.op + ` (` + placeholders(len(f.tenants)) + `)`
		for _, tn := range f.tenants {
			args = append(args, tn)
		}
	}
	rows, err := t.query(ctx, `SELECT `+requestColumns+` FROM requests WHERE `+where+` ORDER BY received_at LIMIT ?`+t.d.skipLocked(""),
		append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("unverified requests: %w", err)
	}
	defer rows.Close()
	var out []*Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("unverified requests: %w", err)
	}
	return out, nil
}

func (t *sqlTx) UpdateRequest(ctx context.Context, r *Request) error {
	_, err := t.exec(ctx, `UPDATE requests SET state = ?, sealed_subject = ?, subject_email = NULL, subject_user_id = NULL, deadline = ?, updated_at = ?,
		completed_at = ?, answered_at = ?, original_deadline = ?, extended_at = ?, extension_reason = ?, verification_note = ?, denial_note = ?,
		scope = COALESCE(?, scope) WHERE id = ?`,
		r.State, nullBytes(r.SealedSubject), ms(r.Deadline), ms(r.UpdatedAt), ms(r.CompletedAt),
		ms(r.AnsweredAt), ms(r.OriginalDeadline), ms(r.ExtendedAt), nullString(r.ExtensionReason), nullString(r.VerificationNote),
		nullString(r.DenialNote), nullString(r.Scope), r.ID)
	if err != nil {
		return fmt.Errorf("update request: %w", err)
	}
	return nil
}

func (t *sqlTx) InsertTask(ctx context.Context, k *Task) error {
	counts, err := json.Marshal(k.Counts)
	if err != nil {
		return fmt.Errorf("task counts: %w", err)
	}
	return t.insertOne(ctx, "task", `INSERT INTO tasks
		(id, request_id, system, state, attempts, next_attempt_at, outcome, answered_at, detail, legal_basis, retain_until, counts, remaining, export_sha256, export_data, receipt, round_start)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, k.RequestID, k.System, k.State, k.Attempts, ms(k.NextAttemptAt), k.Outcome, ms(k.AnsweredAt), k.Detail, k.LegalBasis,
		ms(k.RetainUntil), string(counts), k.Remaining, nullBytes(k.ExportSHA256), nullBytes(k.ExportKey), nullBytes(k.Receipt), k.RoundStart)
}

// taskColumns lists the task columns, each prefixed (with a table alias).
func taskColumns(prefix string) string {
	cols := []string{"id", "request_id", "system", "state", "attempts", "next_attempt_at", "outcome", "answered_at", "detail", "legal_basis",
		"retain_until", "counts", "remaining", "export_sha256", "export_data", "receipt", "round_start", "dead_at", "published_at", "published_seq"}
	for i := range cols {
		cols[i] = prefix + cols[i]
	}
	return strings.Join(cols, ", ")
}

func scanTask(row interface{ Scan(...any) error }) (*Task, error) {
	var k Task
	var next, answered, retain, dead, published, seq sql.NullInt64
	var counts string
	err := row.Scan(&k.ID, &k.RequestID, &k.System, &k.State, &k.Attempts, &next, &k.Outcome, &answered, &k.Detail, &k.LegalBasis,
		&retain, &counts, &k.Remaining, &k.ExportSHA256, &k.ExportKey, &k.Receipt, &k.RoundStart, &dead, &published, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan task: %w", err)
	}
	k.NextAttemptAt, k.AnsweredAt, k.RetainUntil, k.DeadAt, k.PublishedAt = fromMS(next), fromMS(answered), fromMS(retain), fromMS(dead), fromMS(published)
	k.PublishedSeq = seq.Int64
	k.ExportSHA256, k.ExportKey, k.Receipt = emptyNil(k.ExportSHA256), emptyNil(k.ExportKey), emptyNil(k.Receipt)
	if err := json.Unmarshal([]byte(counts), &k.Counts); err != nil {
		return nil, fmt.Errorf("task counts: %w", err)
	}
	return &k, nil
}

// Task reads a task. Where rows are locked, it locks the task's request
// first: every transaction locks a request before its tasks (Request,
// Tasks, DueTasks do), so two never wait for each other in a cycle.
func (t *sqlTx) Task(ctx context.Context, id string) (*Task, error) {
	if t.d.lockRows {
		// A task's request_id never changes: reading it unlocked is safe.
		var rid string
		err := t.queryRow(ctx, `SELECT id FROM requests WHERE id = (SELECT request_id FROM tasks WHERE id = ?)`+t.d.forUpdate(), id).Scan(&rid)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("lock task's request: %w", err)
		}
	}
	return scanTask(t.queryRow(ctx, `SELECT `+taskColumns("")+` FROM tasks WHERE id = ?`+t.d.forUpdate(), id))
}

func (t *sqlTx) Tasks(ctx context.Context, requestID string) ([]*Task, error) {
	return scanTasks(t.query(ctx, `SELECT `+taskColumns("")+` FROM tasks WHERE request_id = ? ORDER BY system`+t.d.forUpdate(), requestID))
}

// OpenTasks implements [Tx]. The caller holds the request's lock (every
// transaction takes it first), so no other answer ends a task meanwhile.
func (t *sqlTx) OpenTasks(ctx context.Context, requestID string) (int, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM tasks WHERE request_id = ? AND state NOT IN ('answered', 'deferred', 'dead_letter')`, requestID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("open tasks: %w", err)
	}
	return n, nil
}

// DueTasks locks the tasks it returns and their requests, skipping those
// another transaction holds: two replicas never re-attempt one task, and
// the locks are all taken before the transaction appends to the log.
//
// Deferred tasks, due at their retain-until date, come after the retries:
// they are read from their own index.
func (t *sqlTx) DueTasks(ctx context.Context, now time.Time, limit int) ([]*Task, error) {
	due, err := scanTasks(t.query(ctx, `SELECT `+taskColumns("t.")+` FROM requests r JOIN tasks t ON t.request_id = r.id
		WHERE t.state IN ('published', 'retrying') AND t.next_attempt_at <= ? ORDER BY t.next_attempt_at LIMIT ?`+t.d.skipLocked("r, t"),
		now.UnixMilli(), limit))
	if err != nil || len(due) == limit {
		return due, err
	}
	deferred, err := scanTasks(t.query(ctx, `SELECT `+taskColumns("t.")+` FROM requests r JOIN tasks t ON t.request_id = r.id
		WHERE t.state = 'deferred' AND t.retain_until <= ? ORDER BY t.retain_until LIMIT ?`+t.d.skipLocked("r, t"),
		now.UnixMilli(), limit-len(due)))
	return append(due, deferred...), err
}

func scanTasks(rows *sql.Rows, err error) ([]*Task, error) {
	if err != nil {
		return nil, fmt.Errorf("query tasks: %w", err)
	}
	defer rows.Close()
	var out []*Task
	for rows.Next() {
		k, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query tasks: %w", err)
	}
	return out, nil
}

func (t *sqlTx) UpdateTask(ctx context.Context, k *Task) error {
	counts, err := json.Marshal(k.Counts)
	if err != nil {
		return fmt.Errorf("task counts: %w", err)
	}
	_, err = t.exec(ctx, `UPDATE tasks SET state = ?, attempts = ?, next_attempt_at = ?, outcome = ?, answered_at = ?, detail = ?,
		legal_basis = ?, retain_until = ?, counts = ?, remaining = ?, export_sha256 = ?, export_data = ?, receipt = ?, round_start = ?, dead_at = ?,
		published_at = ?, published_seq = ? WHERE id = ?`,
		k.State, k.Attempts, ms(k.NextAttemptAt), k.Outcome, ms(k.AnsweredAt), k.Detail, k.LegalBasis, ms(k.RetainUntil), string(counts),
		k.Remaining, nullBytes(k.ExportSHA256), nullBytes(k.ExportKey), nullBytes(k.Receipt), k.RoundStart, ms(k.DeadAt), ms(k.PublishedAt), nullInt(k.PublishedSeq), k.ID)
	if err != nil {
		return fmt.Errorf("update task: %w", err)
	}
	return nil
}

func (t *sqlTx) Enqueue(ctx context.Context, m OutboxMessage) error {
	_, err := t.exec(ctx, `INSERT INTO outbox (topic, msg_id, ce_type, msg_key, payload, created_at, task_id, wait_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		m.Topic, m.ID, m.Type, m.Key, m.Payload, m.Created.UnixMilli(), nullString(m.TaskID), m.Wait.Milliseconds())
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// ForgetTasks locks the rows it deletes in seq order, as MarkPublished
// does, so the two never deadlock.
func (t *sqlTx) ForgetTasks(ctx context.Context, requestID string) error {
	if _, err := t.exec(ctx, `DELETE FROM outbox WHERE seq IN
		(SELECT seq FROM outbox WHERE msg_key = ? AND task_id IS NOT NULL ORDER BY seq`+t.d.forUpdate()+`)`, requestID); err != nil {
		return fmt.Errorf("forget task messages: %w", err)
	}
	return nil
}

func (t *sqlTx) LogSize(ctx context.Context) (int64, error) {
	if err := t.place(ctx); err != nil {
		return 0, err
	}
	if t.log.known {
		return t.log.size, nil
	}
	var n int64
	if err := t.queryRow(ctx, `SELECT size FROM log_head WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("log size: %w", err)
	}
	return n, nil
}

// ReadHashes reads stored hashes of the log's Merkle tree.
func (t *sqlTx) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	out := make([]tlog.Hash, len(indexes))
	var args []any
	var missing []int // of indexes, to read from the database
	for i, idx := range indexes {
		if h, ok := t.wrote.get(idx); ok {
			out[i] = h
		} else if h, ok := t.hashes.get(idx); ok {
			out[i] = h
		} else {
			args, missing = append(args, idx), append(missing, i)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := t.query(ctx, `SELECT idx, hash FROM log_hashes WHERE idx IN (`+placeholders(len(args))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("log hashes: %w", err)
	}
	defer rows.Close()
	found := make(map[int64]tlog.Hash, len(indexes))
	for rows.Next() {
		var idx int64
		var b []byte
		if err := rows.Scan(&idx, &b); err != nil {
			return nil, fmt.Errorf("log hashes: %w", err)
		}
		var h tlog.Hash
		copy(h[:], b)
		found[idx] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("log hashes: %w", err)
	}
	// Not written by this transaction: committed, so cached at once.
	read := make([]storedHash, 0, len(missing))
	for _, i := range missing {
		h, ok := found[indexes[i]]
		if !ok {
			return nil, fmt.Errorf("log hash %d: %w", indexes[i], ErrNotFound)
		}
		out[i] = h
		read = append(read, storedHash{indexes[i], h})
	}
	t.hashes.add(read)
	return out, nil
}

// AppendLog keeps the entry for the end of the transaction (or its first
// read of the log): only then is the log's head row locked and the entry
// given its index. The lock serialises the appends of concurrent
// transactions (of several replicas), each seeing the one before, so the
// indexes are dense, and it is held until the transaction ends: taken at
// the first append instead, it held up every appending transaction (on
// PostgreSQL) for all the statements a submission runs after its first
// entry. A transaction that rolls back leaves no gap.
func (t *sqlTx) AppendLog(ctx context.Context, requestID string, entry []byte) error {
	t.pending = append(t.pending, logEntry{requestID: requestID, data: entry})
	t.log.dirty = true
	return nil
}

// place gives the entries kept by AppendLog their indexes and their
// hashes in the log's tree, locking the log's head (PostgreSQL) until the
// transaction ends.
func (t *sqlTx) place(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	if !t.log.known {
		if err := t.queryRow(ctx, `SELECT size FROM log_head WHERE id = 1`+t.d.forUpdate()).Scan(&t.log.size); err != nil {
			return fmt.Errorf("log append: %w", err)
		}
		t.log.known = true
	}
	for _, e := range t.pending {
		n := t.log.size
		hashes, err := tlog.StoredHashes(n, e.data, HashReader(ctx, t))
		if err != nil {
			return fmt.Errorf("log append: %w", err)
		}
		e.idx = n
		t.appended = append(t.appended, e)
		first := tlog.StoredHashIndex(0, n)
		for i, h := range hashes {
			t.wrote.add(first+int64(i), h)
		}
		t.log.size = n + 1
	}
	t.pending = nil // a new slice: a savepoint's mark keeps the old one
	return nil
}

func (t *sqlTx) LogRange(ctx context.Context, start, end int64) ([]LogRecord, error) {
	if err := t.writeAppended(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT idx, data FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx`, start, end)
	if err != nil {
		return nil, fmt.Errorf("log range: %w", err)
	}
	return logRecords(rows)
}

func (t *sqlTx) RequestLog(ctx context.Context, requestID string) ([]LogRecord, error) {
	if err := t.writeAppended(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT idx, data FROM log_entries WHERE request_id = ? ORDER BY idx`, requestID)
	if err != nil {
		return nil, fmt.Errorf("request log: %w", err)
	}
	return logRecords(rows)
}

// logRecords reads log entries (idx, data) from rows, and closes them.
func logRecords(rows *sql.Rows) ([]LogRecord, error) {
	defer rows.Close()
	var out []LogRecord
	for rows.Next() {
		var r LogRecord
		if err := rows.Scan(&r.Index, &r.Data); err != nil {
			return nil, fmt.Errorf("log entries: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("log entries: %w", err)
	}
	return out, nil
}

func (t *sqlTx) PutCertificate(ctx context.Context, requestID string, cert PackedCertificate, at time.Time) error {
	if _, err := t.exec(ctx, `INSERT INTO certificates (request_id, data, issued_at) VALUES (?, ?, ?)
		ON CONFLICT (request_id) DO UPDATE SET data = excluded.data, issued_at = excluded.issued_at`, requestID, []byte(cert), at.UnixMilli()); err != nil {
		return fmt.Errorf("put certificate: %w", err)
	}
	return nil
}

func (t *sqlTx) HoldCertificate(ctx context.Context, requestID string, logSize int64) error {
	if _, err := t.exec(ctx, `INSERT INTO pending_certificates (request_id, log_size) VALUES (?, ?)
		ON CONFLICT (request_id) DO UPDATE SET log_size = excluded.log_size`, requestID, logSize); err != nil {
		return fmt.Errorf("hold certificate: %w", err)
	}
	return nil
}

func (t *sqlTx) HeldCertificates(ctx context.Context, size int64, limit int) ([]string, error) {
	rows, err := t.query(ctx, `SELECT request_id FROM pending_certificates WHERE log_size <= ? ORDER BY log_size, request_id LIMIT ?`+t.d.forUpdate(), size, limit)
	if err != nil {
		return nil, fmt.Errorf("held certificates: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("held certificates: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (t *sqlTx) HeldCertificate(ctx context.Context, requestID string) (int64, error) {
	var size int64
	err := t.queryRow(ctx, `SELECT log_size FROM pending_certificates WHERE request_id = ?`, requestID).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("held certificate: %w", err)
	}
	return size, nil
}

func (t *sqlTx) ReleaseCertificate(ctx context.Context, requestID string, size int64) (bool, error) {
	res, err := t.exec(ctx, `DELETE FROM pending_certificates WHERE request_id = ? AND log_size <= ?`, requestID, size)
	if err != nil {
		return false, fmt.Errorf("release certificate: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("release certificate: %w", err)
	}
	return n > 0, nil
}

func (t *sqlTx) PutWitnessedCheckpoint(ctx context.Context, size int64, note []byte, at time.Time) error {
	if _, err := t.exec(ctx, `INSERT INTO witnessed_checkpoints (size, note, made_at) VALUES (?, ?, ?)
		ON CONFLICT (size) DO UPDATE SET note = excluded.note, made_at = excluded.made_at`, size, note, at.UnixMilli()); err != nil {
		return fmt.Errorf("put witnessed checkpoint: %w", err)
	}
	return nil
}

// WitnessedCheckpoint implements [Store].
func (s *sqlStore) WitnessedCheckpoint(ctx context.Context) (int64, []byte, error) {
	var size int64
	var note []byte
	err := s.queryRow(ctx, `SELECT size, note FROM witnessed_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &note)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, ErrNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("witnessed checkpoint: %w", err)
	}
	return size, note, nil
}

// Certificate implements [Store].
func (s *sqlStore) DeadLetters(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, error) {
	where, args := `t.state = 'dead_letter'`, []any{}
	if q.System != "" {
		where, args = where+` AND t.system = ?`, append(args, q.System)
	}
	if q.Tenant != "" {
		where, args = where+` AND r.tenant = ?`, append(args, q.Tenant)
	}
	if !q.Since.IsZero() {
		where, args = where+` AND t.dead_at >= ?`, append(args, q.Since.UnixMilli())
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.query(ctx, `SELECT t.request_id, r.tenant, t.system, t.attempts, t.detail, t.dead_at
		FROM tasks t JOIN requests r ON r.id = t.request_id WHERE `+where+` ORDER BY t.dead_at, t.id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var d DeadLetter
		var dead sql.NullInt64
		if err := rows.Scan(&d.RequestID, &d.Tenant, &d.System, &d.Attempts, &d.Detail, &dead); err != nil {
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		d.DeadAt = fromMS(dead)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}

func (s *sqlStore) Certificate(ctx context.Context, requestID string) ([]byte, error) {
	var b []byte
	err := s.queryRow(ctx, `SELECT data FROM certificates WHERE request_id = ?`, requestID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return unpackCertificate(b)
}

// Get implements [Store].
func (s *sqlStore) Get(ctx context.Context, id string) (*Request, []*Task, error) {
	r, err := scanRequest(s.queryRow(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`, id))
	if err != nil {
		return nil, nil, err
	}
	tasks, err := scanTasks(s.query(ctx, `SELECT `+taskColumns("")+` FROM tasks WHERE request_id = ? ORDER BY system`, id))
	if err != nil {
		return nil, nil, err
	}
	return r, tasks, nil
}

// List implements [Store]. The cursor is the (deadline, id) of the last row
// of the previous page, so pages stay stable while requests come and go;
// the row comparison is an index range in both engines.
func (s *sqlStore) List(ctx context.Context, q ListQuery) ([]*Request, string, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	where, args := []string{"1 = 1"}, []any{}
	if q.State != "" {
		where, args = append(where, "state = ?"), append(args, q.State)
	}
	if q.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, q.Tenant)
	}
	if q.SourceRef != "" {
		where, args = append(where, "source_ref = ?"), append(args, q.SourceRef)
	}
	if q.SubmittedBy != "" {
		where, args = append(where, "submitted_by = ?"), append(args, q.SubmittedBy)
	}
	if len(q.States) > 0 {
		in := strings.TrimSuffix(strings.Repeat("?, ", len(q.States)), ", ")
		where = append(where, "state IN ("+in+")")
		for _, st := range q.States {
			args = append(args, st)
		}
	}
	if q.Type != "" {
		where, args = append(where, "type = ?"), append(args, q.Type)
	}
	if q.SubjectHash != "" {
		where, args = append(where, "subject_hash = ?"), append(args, q.SubjectHash)
	}
	if !q.DeadlineFrom.IsZero() {
		where, args = append(where, "deadline >= ?"), append(args, q.DeadlineFrom.UnixMilli())
	}
	if !q.DeadlineBefore.IsZero() {
		where, args = append(where, "deadline < ?"), append(args, q.DeadlineBefore.UnixMilli())
	}
	if q.After != "" {
		dl, id, err := decodeCursor(q.After)
		if err != nil {
			return nil, "", err
		}
		where, args = append(where, "(deadline, id) > (?, ?)"), append(args, dl, id)
	}
	rows, err := s.query(ctx, `SELECT `+requestColumns+` FROM requests WHERE `+strings.Join(where, " AND ")+
		` ORDER BY deadline, id LIMIT ?`, append(args, q.Limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	var out []*Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list requests: %w", err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		last := out[len(out)-1]
		next = encodeCursor(last.Deadline.UnixMilli(), last.ID)
	}
	return out, next, nil
}

func encodeCursor(deadline int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(deadline, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	dl, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(dl, 10, 64)
	if !ok || err != nil {
		return 0, "", ErrBadCursor
	}
	return n, id, nil
}

// Pressure implements [Store]: index ranges over the requests not yet
// ended, over the tasks waiting for an answer or a date (the partial
// tasks_due index), and over the notices due (notices_due), so it costs the
// same whatever the number of ended requests.
func (s *sqlStore) Pressure(ctx context.Context, bounds, dueBounds []time.Time) (Pressure, error) {
	p := Pressure{OpenBefore: make([]int, len(bounds)), DeferredBefore: make([]int, len(dueBounds)), Pending: map[string]PendingTasks{}}
	var earliest sql.NullInt64
	if err := s.queryRow(ctx, `SELECT count(*), min(deadline) FROM requests WHERE state IN (?, ?)`,
		lifecycle.PendingVerification, lifecycle.Open).Scan(&p.Open, &earliest); err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	p.EarliestOpen = fromMS(earliest)
	// Per tenant: the requests not yet ended only (the index's range).
	rows, err := s.query(ctx, `SELECT tenant, min(deadline) FROM requests WHERE state IN (?, ?) GROUP BY tenant`,
		lifecycle.PendingVerification, lifecycle.Open)
	if err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	defer rows.Close()
	p.EarliestByTenant = map[string]time.Time{}
	for rows.Next() {
		var tenant string
		var dl int64
		if err := rows.Scan(&tenant, &dl); err != nil {
			return p, fmt.Errorf("pressure: %w", err)
		}
		p.EarliestByTenant[tenant] = time.UnixMilli(dl).UTC()
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	for i, b := range bounds {
		if err := s.queryRow(ctx, `SELECT count(*) FROM requests WHERE state IN (?, ?) AND deadline < ?`,
			lifecycle.PendingVerification, lifecycle.Open, b.UnixMilli()).Scan(&p.OpenBefore[i]); err != nil {
			return p, fmt.Errorf("pressure: %w", err)
		}
	}
	// Per system, the tasks waiting for an answer (tasks_due), and the
	// nearest deadline among those of requests not yet ended: a follow-up
	// erasure's request has answered already, so its deadline no longer
	// presses. Two index ranges, joined on the small side: one join of the
	// two would read every request on PostgreSQL (a hash join).
	// The WHERE clauses repeat the partial indexes' own, word for word:
	// SQLite uses a partial index only for a query that says what it says.
	rows, err = s.query(ctx, `SELECT system, count(*) FROM tasks WHERE state IN ('published', 'retrying') GROUP BY system`)
	if err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var system string
		var pt PendingTasks
		if err := rows.Scan(&system, &pt.Count); err != nil {
			return p, fmt.Errorf("pressure: %w", err)
		}
		p.Pending[system] = pt
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	rows, err = s.query(ctx, `SELECT t.system, min(r.deadline) FROM requests r JOIN tasks t ON t.request_id = r.id
		WHERE r.state IN (?, ?) AND t.state IN ('published', 'retrying') GROUP BY t.system`, lifecycle.PendingVerification, lifecycle.Open)
	if err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var system string
		var dl int64
		if err := rows.Scan(&system, &dl); err != nil {
			return p, fmt.Errorf("pressure: %w", err)
		}
		pt := p.Pending[system]
		pt.EarliestDeadline = time.UnixMilli(dl).UTC()
		p.Pending[system] = pt
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	// Deferred erasures: waiting for their date (tasks_deferred), or in
	// their follow-up round, the only tasks with a round before their
	// current one (tasks_due).
	deferred := `SELECT (SELECT count(*) FROM tasks WHERE state = 'deferred' AND retain_until < ?) +
		(SELECT count(*) FROM tasks WHERE state IN ('published', 'retrying') AND round_start > 0 AND retain_until < ?)`
	for i, b := range append(dueBounds, time.UnixMilli(math.MaxInt64)) {
		n := &p.Deferred
		if i < len(dueBounds) {
			n = &p.DeferredBefore[i]
		}
		if err := s.queryRow(ctx, deferred, b.UnixMilli(), b.UnixMilli()).Scan(n); err != nil {
			return p, fmt.Errorf("pressure: %w", err)
		}
	}
	if err := s.queryRow(ctx, `SELECT
		coalesce(sum(CASE WHEN bus_at IS NULL THEN 1 ELSE 0 END), 0), coalesce(sum(CASE WHEN webhook_at IS NULL THEN 1 ELSE 0 END), 0)
		FROM notices WHERE next_attempt_at IS NOT NULL`).Scan(&p.UndeliveredBus, &p.UndeliveredWebhook); err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	var untold sql.NullInt64
	if err := s.queryRow(ctx, `SELECT min(r.original_deadline) FROM notices n JOIN requests r ON r.id = n.request_id
		WHERE n.next_attempt_at IS NOT NULL AND n.bus_at IS NULL AND n.webhook_at IS NULL AND r.state IN (?, ?)`,
		lifecycle.PendingVerification, lifecycle.Open).Scan(&untold); err != nil {
		return p, fmt.Errorf("pressure: %w", err)
	}
	p.UntoldDeadline = fromMS(untold)
	return p, nil
}

// CountOverdue implements [Store]: an index range over the requests not
// yet ended whose deadline has passed.
func (s *sqlStore) CountOverdue(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT count(*) FROM requests WHERE state IN (?, ?) AND deadline < ?`,
		lifecycle.PendingVerification, lifecycle.Open, now.UnixMilli()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count overdue: %w", err)
	}
	return n, nil
}

// ClaimOutbox implements [Store]. Where rows are locked, messages that
// another relay is claiming at this moment are skipped rather than waited
// for.
func (s *sqlStore) ClaimOutbox(ctx context.Context, owner string, limit int, now, until time.Time) ([]OutboxMessage, error) {
	// A write like any other: on SQLite, in a group with the others, not
	// a commit of its own that holds the one connection between groups.
	var out []OutboxMessage
	err := s.Tx(ctx, func(tx Tx) error {
		out = nil
		rows, err := tx.(*sqlTx).query(ctx, `UPDATE outbox SET claimed_by = ?, claimed_until = ?
			WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < ?)
				ORDER BY seq LIMIT ?`+s.d.skipLocked("")+`)
			RETURNING seq, topic, msg_id, ce_type, msg_key, payload, created_at, task_id, wait_ms`, owner, until.UnixMilli(), now.UnixMilli(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m OutboxMessage
			var created, wait int64
			var taskID sql.NullString
			if err := rows.Scan(&m.Seq, &m.Topic, &m.ID, &m.Type, &m.Key, &m.Payload, &created, &taskID, &wait); err != nil {
				return err
			}
			m.Created, m.TaskID, m.Wait = time.UnixMilli(created).UTC(), taskID.String, time.Duration(wait)*time.Millisecond
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	slices.SortFunc(out, func(a, b OutboxMessage) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// ReleaseOutbox implements [Store].
func (s *sqlStore) ReleaseOutbox(ctx context.Context, owner string) error {
	if _, err := s.exec(ctx, `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ? AND published_at IS NULL`, owner); err != nil {
		return fmt.Errorf("release outbox: %w", err)
	}
	return nil
}

// MarkPublished implements [Store]. It locks in the order every
// transaction that completes a request does (the request, its tasks, then
// its outbox rows, in seq order: ForgetTasks), so the two cannot wait for
// each other in a cycle: it used to change the tasks first, and a relay
// holding one task of a request while the request's last receipt held
// another and asked for all of them was a deadlock (on PostgreSQL, a
// second's stall before one of them failed).
func (s *sqlStore) MarkPublished(ctx context.Context, seqs []int64, at time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	args := make([]any, 0, len(seqs)+1)
	args = append(args, at.UnixMilli())
	for _, seq := range seqs {
		args = append(args, seq)
	}
	in := placeholders(len(seqs))
	return s.Tx(ctx, func(tx Tx) error {
		t := tx.(*sqlTx)
		published, err := t.publishedTasks(ctx, in, args[1:])
		if err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
		if err := t.lockRequests(ctx, published); err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
		// The task's wait starts now, unless a newer attempt or an answer
		// came meanwhile (rechecked under the row lock). One statement a
		// task, found by its key: a join of the tasks with the outbox rows
		// let PostgreSQL's planner, whose statistics lag behind a burst
		// (few tasks wait unmarked, they said), scan the thousands that
		// did once per outbox row, ~100 ms a call.
		for _, p := range published {
			if _, err := t.exec(ctx, markTaskPublished, args[0], p.seq, at.UnixMilli()+p.waitMS, p.taskID); err != nil {
				return fmt.Errorf("mark published: %w", err)
			}
		}
		if _, err := t.exec(ctx, `UPDATE outbox SET published_at = ? WHERE seq IN
			(SELECT seq FROM outbox WHERE seq IN (`+in+`) ORDER BY seq`+t.d.forUpdate()+`)`, args...); err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
		return nil
	})
}

// markTaskPublished starts a published task's wait. The index tasks_due
// leaves out the tasks with no time yet (migrations 00012 PostgreSQL,
// 00013 SQLite), so that the key is the only way to the task.
const markTaskPublished = `UPDATE tasks SET published_at = ?, published_seq = ?, next_attempt_at = ?
	WHERE id = ? AND state = 'published' AND next_attempt_at IS NULL`

// publishedTask is an outbox row that carried a task's attempt.
type publishedTask struct {
	seq, waitMS       int64
	taskID, requestID string
}

// publishedTasks reads the outbox rows of seqs (in, placeholders for
// them) that carried tasks, in seq order.
func (t *sqlTx) publishedTasks(ctx context.Context, in string, seqs []any) ([]publishedTask, error) {
	rows, err := t.query(ctx, `SELECT seq, wait_ms, task_id, msg_key FROM outbox WHERE seq IN (`+in+`) AND task_id IS NOT NULL ORDER BY seq`, seqs...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []publishedTask
	for rows.Next() {
		var p publishedTask
		if err := rows.Scan(&p.seq, &p.waitMS, &p.taskID, &p.requestID); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// lockRequests locks the requests of published's tasks, in id order (two
// relays lock them in the same order), where rows are locked at all.
func (t *sqlTx) lockRequests(ctx context.Context, published []publishedTask) error {
	if !t.d.lockRows || len(published) == 0 {
		return nil
	}
	ids := make([]any, 0, len(published))
	seen := make(map[string]bool, len(published))
	for _, p := range published {
		if !seen[p.requestID] {
			seen[p.requestID] = true
			ids = append(ids, p.requestID)
		}
	}
	rows, err := t.query(ctx, `SELECT id FROM requests WHERE id IN (`+placeholders(len(ids))+`) ORDER BY id`+t.d.forUpdate(), ids...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() { // each row is locked as it is read
	}
	return rows.Err()
}

// Stats implements [Store]. The counts by state and type are kept by
// triggers in the transactions that change them (migration 00003): a
// scrape reads a few rows, whatever the number of requests.
func (s *sqlStore) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Requests: map[Kind]int{}}
	rows, err := s.query(ctx, `SELECT state, type, n FROM request_counts`)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k Kind
		var n int
		if err := rows.Scan(&k.State, &k.Type, &n); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		if n > 0 {
			st.Requests[k] = n
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	var oldest sql.NullInt64
	if err := s.queryRow(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE published_at IS NULL`).Scan(&st.OutboxDepth, &oldest); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.OldestUnpublished = fromMS(oldest)
	if err := s.queryRow(ctx, `SELECT count(*) FROM pending_certificates`).Scan(&st.CertificatesWaiting); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

const noticeColumns = `id, request_id, kind, payload, created_at, bus_at, webhook_at, attempts, next_attempt_at, last_error, bus_published_at`

func scanNotice(row interface{ Scan(...any) error }) (*Notice, error) {
	var n Notice
	var created int64
	var bus, webhook, next, published sql.NullInt64
	err := row.Scan(&n.ID, &n.RequestID, &n.Kind, &n.Payload, &created, &bus, &webhook, &n.Attempts, &next, &n.LastError, &published)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan notice: %w", err)
	}
	n.Payload = emptyNil(n.Payload)
	n.CreatedAt, n.BusAt, n.WebhookAt, n.NextAttemptAt = time.UnixMilli(created).UTC(), fromMS(bus), fromMS(webhook), fromMS(next)
	n.BusPublishedAt = fromMS(published)
	return &n, nil
}

func (t *sqlTx) InsertNotice(ctx context.Context, n *Notice) error {
	return t.insertOne(ctx, "notice", `INSERT INTO notices (`+noticeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		n.ID, n.RequestID, n.Kind, nullBytes(n.Payload), n.CreatedAt.UnixMilli(), ms(n.BusAt), ms(n.WebhookAt), n.Attempts, ms(n.NextAttemptAt), n.LastError,
		ms(n.BusPublishedAt))
}

func (t *sqlTx) Notice(ctx context.Context, id string) (*Notice, error) {
	return scanNotice(t.queryRow(ctx, `SELECT `+noticeColumns+` FROM notices WHERE id = ?`+t.d.forUpdate(), id))
}

// UpdateNotice also ends the lease of a notice whose delivery was tried.
func (t *sqlTx) UpdateNotice(ctx context.Context, n *Notice) error {
	_, err := t.exec(ctx, `UPDATE notices SET payload = ?, bus_at = ?, webhook_at = ?, attempts = ?, next_attempt_at = ?, last_error = ?,
		bus_published_at = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?`,
		nullBytes(n.Payload), ms(n.BusAt), ms(n.WebhookAt), n.Attempts, ms(n.NextAttemptAt), n.LastError, ms(n.BusPublishedAt), n.ID)
	if err != nil {
		return fmt.Errorf("update notice: %w", err)
	}
	return nil
}

// ClaimNotices implements [Store].
func (s *sqlStore) ClaimNotices(ctx context.Context, owner string, limit int, now, until time.Time) ([]*Notice, error) {
	rows, err := s.update(ctx, `UPDATE notices SET claimed_by = ?, claimed_until = ?
		WHERE id IN (SELECT id FROM notices WHERE next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)
			ORDER BY next_attempt_at LIMIT ?`+s.d.skipLocked("")+`)
		RETURNING `+noticeColumns, owner, until.UnixMilli(), now.UnixMilli(), now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim notices: %w", err)
	}
	defer rows.Close()
	var out []*Notice
	for rows.Next() {
		n, err := scanNotice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim notices: %w", err)
	}
	slices.SortFunc(out, func(a, b *Notice) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) })
	return out, nil
}

// ReleaseNotices implements [Store].
func (s *sqlStore) ReleaseNotices(ctx context.Context, owner string) error {
	if _, err := s.exec(ctx, `UPDATE notices SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?`, owner); err != nil {
		return fmt.Errorf("release notices: %w", err)
	}
	return nil
}

const tokenColumns = `id, hash, name, tenant, role, created_at, last_used_at, expires_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (*Token, error) {
	var k Token
	var used, expires, revoked sql.NullInt64
	var created int64
	err := row.Scan(&k.ID, &k.Hash, &k.Name, &k.Tenant, &k.Role, &created, &used, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan token: %w", err)
	}
	k.CreatedAt = time.UnixMilli(created).UTC()
	k.LastUsedAt, k.ExpiresAt, k.RevokedAt = fromMS(used), fromMS(expires), fromMS(revoked)
	return &k, nil
}

// InsertToken implements [Store].
func (s *sqlStore) InsertToken(ctx context.Context, k *Token) error {
	res, err := s.exec(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, k.Hash, k.Name, k.Tenant, k.Role, k.CreatedAt.UnixMilli(), ms(k.LastUsedAt), ms(k.ExpiresAt), ms(k.RevokedAt))
	if err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("token: %w", ErrDuplicate)
	}
	return nil
}

// TokenByHash implements [Store].
func (s *sqlStore) TokenByHash(ctx context.Context, hash []byte) (*Token, error) {
	return scanToken(s.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
}

// Tokens implements [Store].
func (s *sqlStore) Tokens(ctx context.Context) ([]*Token, error) {
	rows, err := s.query(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer rows.Close()
	var out []*Token
	for rows.Next() {
		k, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements [Store].
func (s *sqlStore) RevokeToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, at.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return nil
}

// TouchToken implements [Store].
func (s *sqlStore) TouchToken(ctx context.Context, id string, at time.Time) error {
	if _, err := s.exec(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, at.UnixMilli(), id); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
}

// DropExports implements [Tx].
func (t *sqlTx) DropExports(ctx context.Context, requestID string) (int, error) {
	res, err := t.exec(ctx, `UPDATE tasks SET export_data = NULL WHERE request_id = ? AND export_data IS NOT NULL`, requestID)
	if err != nil {
		return 0, fmt.Errorf("drop exports: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ExportsEndedBefore implements [Store].
func (s *sqlStore) ExportsEndedBefore(ctx context.Context, before time.Time) ([]string, error) {
	rows, err := s.query(ctx, `SELECT DISTINCT r.id FROM requests r JOIN tasks t ON t.request_id = r.id
		WHERE t.export_data IS NOT NULL AND r.completed_at IS NOT NULL AND r.completed_at < ? ORDER BY r.id`, before.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("expired exports: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("expired exports: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// InsertExportLink implements [Store].
func (s *sqlStore) InsertExportLink(ctx context.Context, l *ExportLink) error {
	res, err := s.exec(ctx, `INSERT INTO export_links (hash, request_id, created_at, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		l.Hash, l.RequestID, l.CreatedAt.UnixMilli(), l.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("insert export link: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("export link: %w", ErrDuplicate)
	}
	return nil
}

// UseExportLink implements [Store]: one UPDATE spends the link, so two
// concurrent uses cannot both win.
func (s *sqlStore) UseExportLink(ctx context.Context, hash []byte, now time.Time) (*ExportLink, error) {
	l := &ExportLink{Hash: hash, UsedAt: now}
	var created, expires int64
	err := s.updateRow(ctx, `UPDATE export_links SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?
		RETURNING request_id, created_at, expires_at`, now.UnixMilli(), hash, now.UnixMilli()).Scan(&l.RequestID, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("use export link: %w", err)
	}
	l.CreatedAt, l.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	return l, nil
}

// LastSweeps implements [Store].
func (s *sqlStore) LastSweeps(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.query(ctx, `SELECT tenant, scope, received_at FROM requests WHERE type = 'sweep' AND scope IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("last sweeps: %w", err)
	}
	defer rows.Close()
	last := map[string]time.Time{}
	for rows.Next() {
		var tenant, spec string
		var received int64
		if err := rows.Scan(&tenant, &spec, &received); err != nil {
			return nil, fmt.Errorf("last sweeps: %w", err)
		}
		var run struct {
			Policy string `json:"policy"`
			DryRun bool   `json:"dry_run"`
		}
		if json.Unmarshal([]byte(spec), &run) != nil || run.DryRun {
			continue
		}
		if at, key := time.UnixMilli(received).UTC(), tenant+"/"+run.Policy; at.After(last[key]) {
			last[key] = at
		}
	}
	return last, rows.Err()
}
