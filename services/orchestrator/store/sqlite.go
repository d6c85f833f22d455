package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

const schema = `
CREATE TABLE IF NOT EXISTS requests (
	id              TEXT PRIMARY KEY,
	tenant          TEXT NOT NULL,
	type            TEXT NOT NULL,
	state           TEXT NOT NULL,
	subject_email   TEXT,
	subject_user_id TEXT,
	subject_hash    TEXT NOT NULL,
	source          TEXT NOT NULL,
	source_ref      TEXT UNIQUE,
	received_at     INTEGER NOT NULL,
	deadline        INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	completed_at    INTEGER
);
CREATE INDEX IF NOT EXISTS requests_state_deadline ON requests (state, deadline, id);
CREATE INDEX IF NOT EXISTS requests_deadline ON requests (deadline, id);
CREATE TABLE IF NOT EXISTS tasks (
	id              TEXT PRIMARY KEY,
	request_id      TEXT NOT NULL REFERENCES requests (id),
	system          TEXT NOT NULL,
	state           TEXT NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER,
	outcome         TEXT NOT NULL DEFAULT '',
	answered_at     INTEGER,
	detail          TEXT NOT NULL DEFAULT '',
	legal_basis     TEXT NOT NULL DEFAULT '',
	retain_until    INTEGER,
	counts          TEXT NOT NULL DEFAULT '{}',
	remaining       INTEGER NOT NULL DEFAULT 0,
	export_sha256   BLOB,
	export_data     BLOB,
	receipt         BLOB
);
CREATE INDEX IF NOT EXISTS tasks_request ON tasks (request_id);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (next_attempt_at) WHERE state IN ('published', 'retrying');
CREATE TABLE IF NOT EXISTS outbox (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	topic        TEXT NOT NULL,
	msg_id       TEXT NOT NULL,
	ce_type      TEXT NOT NULL,
	msg_key      TEXT NOT NULL,
	payload      BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	published_at INTEGER,
	task_id      TEXT,
	wait_ms      INTEGER NOT NULL DEFAULT 0,
	claimed_by    TEXT,
	claimed_until INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (msg_key);
CREATE TABLE IF NOT EXISTS log_entries (
	idx        INTEGER PRIMARY KEY,
	request_id TEXT NOT NULL,
	data       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_entries_request ON log_entries (request_id, idx);
CREATE TABLE IF NOT EXISTS log_hashes (
	idx  INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
	request_id TEXT PRIMARY KEY REFERENCES requests (id),
	data       BLOB NOT NULL,
	issued_at  INTEGER NOT NULL
);
`

// SQLite is the embedded [Store].
type SQLite struct{ db *sql.DB }

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (or creates) the store at path.
func OpenSQLite(path string) (*SQLite, error) {
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("store schema: %w", err)
	}
	return &SQLite{db: db}, nil
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// Ping checks the database answers.
func (s *SQLite) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Tx implements [Store].
func (s *SQLite) Tx(ctx context.Context, fn func(Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(&sqliteTx{ctx: ctx, tx: tx}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// querier is what sql.DB and sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

type sqliteTx struct {
	ctx context.Context
	tx  *sql.Tx
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

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func (t *sqliteTx) InsertRequest(r *Request) error {
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO requests
		(id, tenant, type, state, subject_email, subject_user_id, subject_hash, source, source_ref, received_at, deadline, created_at, updated_at, completed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Tenant, r.Type, r.State, nullString(r.SubjectEmail), nullString(r.SubjectUserID), r.SubjectHash, r.Source, nullString(r.SourceRef),
		ms(r.ReceivedAt), ms(r.Deadline), ms(r.CreatedAt), ms(r.UpdatedAt), ms(r.CompletedAt))
	if isUnique(err) {
		return fmt.Errorf("request: %w", ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("insert request: %w", err)
	}
	return nil
}

const requestColumns = `id, tenant, type, state, subject_email, subject_user_id, subject_hash, source, source_ref, received_at, deadline, created_at, updated_at, completed_at`

func scanRequest(row interface{ Scan(...any) error }) (*Request, error) {
	var r Request
	var email, userID, ref sql.NullString
	var received, deadline, created, updated, completed sql.NullInt64
	err := row.Scan(&r.ID, &r.Tenant, &r.Type, &r.State, &email, &userID, &r.SubjectHash, &r.Source, &ref,
		&received, &deadline, &created, &updated, &completed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan request: %w", err)
	}
	r.SubjectEmail, r.SubjectUserID, r.SourceRef = email.String, userID.String, ref.String
	r.ReceivedAt, r.Deadline, r.CreatedAt = fromMS(received), fromMS(deadline), fromMS(created)
	r.UpdatedAt, r.CompletedAt = fromMS(updated), fromMS(completed)
	return &r, nil
}

func (t *sqliteTx) Request(id string) (*Request, error) {
	return scanRequest(t.tx.QueryRowContext(t.ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`, id))
}

func (t *sqliteTx) RequestBySourceRef(ref string) (*Request, error) {
	return scanRequest(t.tx.QueryRowContext(t.ctx, `SELECT `+requestColumns+` FROM requests WHERE source_ref = ?`, ref))
}

func (t *sqliteTx) UpdateRequest(r *Request) error {
	_, err := t.tx.ExecContext(t.ctx, `UPDATE requests SET state = ?, subject_email = ?, subject_user_id = ?, deadline = ?, updated_at = ?, completed_at = ? WHERE id = ?`,
		r.State, nullString(r.SubjectEmail), nullString(r.SubjectUserID), ms(r.Deadline), ms(r.UpdatedAt), ms(r.CompletedAt), r.ID)
	if err != nil {
		return fmt.Errorf("update request: %w", err)
	}
	return nil
}

func (t *sqliteTx) InsertTask(k *Task) error {
	counts, _ := json.Marshal(k.Counts)
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO tasks
		(id, request_id, system, state, attempts, next_attempt_at, outcome, answered_at, detail, legal_basis, retain_until, counts, remaining, export_sha256, export_data, receipt)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.RequestID, k.System, k.State, k.Attempts, ms(k.NextAttemptAt), k.Outcome, ms(k.AnsweredAt), k.Detail, k.LegalBasis,
		ms(k.RetainUntil), string(counts), k.Remaining, k.ExportSHA256, k.ExportData, k.Receipt)
	if isUnique(err) {
		return fmt.Errorf("task: %w", ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("insert task: %w", err)
	}
	return nil
}

const taskColumns = `id, request_id, system, state, attempts, next_attempt_at, outcome, answered_at, detail, legal_basis, retain_until, counts, remaining, export_sha256, export_data, receipt`

func scanTask(row interface{ Scan(...any) error }) (*Task, error) {
	var k Task
	var next, answered, retain sql.NullInt64
	var counts string
	err := row.Scan(&k.ID, &k.RequestID, &k.System, &k.State, &k.Attempts, &next, &k.Outcome, &answered, &k.Detail, &k.LegalBasis,
		&retain, &counts, &k.Remaining, &k.ExportSHA256, &k.ExportData, &k.Receipt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan task: %w", err)
	}
	k.NextAttemptAt, k.AnsweredAt, k.RetainUntil = fromMS(next), fromMS(answered), fromMS(retain)
	if err := json.Unmarshal([]byte(counts), &k.Counts); err != nil {
		return nil, fmt.Errorf("task counts: %w", err)
	}
	return &k, nil
}

func (t *sqliteTx) Task(id string) (*Task, error) {
	return scanTask(t.tx.QueryRowContext(t.ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, id))
}

func (t *sqliteTx) Tasks(requestID string) ([]*Task, error) {
	return queryTasks(t.ctx, t.tx, `SELECT `+taskColumns+` FROM tasks WHERE request_id = ? ORDER BY system`, requestID)
}

func (t *sqliteTx) DueTasks(now time.Time, limit int) ([]*Task, error) {
	return queryTasks(t.ctx, t.tx, `SELECT `+taskColumns+` FROM tasks
		WHERE state IN ('published', 'retrying') AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?`, now.UnixMilli(), limit)
}

func queryTasks(ctx context.Context, q querier, query string, args ...any) ([]*Task, error) {
	rows, err := q.QueryContext(ctx, query, args...)
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
	return out, rows.Err()
}

func (t *sqliteTx) UpdateTask(k *Task) error {
	counts, _ := json.Marshal(k.Counts)
	_, err := t.tx.ExecContext(t.ctx, `UPDATE tasks SET state = ?, attempts = ?, next_attempt_at = ?, outcome = ?, answered_at = ?, detail = ?,
		legal_basis = ?, retain_until = ?, counts = ?, remaining = ?, export_sha256 = ?, export_data = ?, receipt = ? WHERE id = ?`,
		k.State, k.Attempts, ms(k.NextAttemptAt), k.Outcome, ms(k.AnsweredAt), k.Detail, k.LegalBasis, ms(k.RetainUntil), string(counts),
		k.Remaining, k.ExportSHA256, k.ExportData, k.Receipt, k.ID)
	if err != nil {
		return fmt.Errorf("update task: %w", err)
	}
	return nil
}

func (t *sqliteTx) Enqueue(m OutboxMessage) error {
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO outbox (topic, msg_id, ce_type, msg_key, payload, created_at, task_id, wait_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		m.Topic, m.ID, m.Type, m.Key, m.Payload, m.Created.UnixMilli(), nullString(m.TaskID), m.Wait.Milliseconds())
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

func (t *sqliteTx) ForgetTasks(requestID string) error {
	if _, err := t.tx.ExecContext(t.ctx, `DELETE FROM outbox WHERE msg_key = ? AND task_id IS NOT NULL`, requestID); err != nil {
		return fmt.Errorf("forget task messages: %w", err)
	}
	return nil
}

func (t *sqliteTx) LogSize() (int64, error) {
	var n int64
	if err := t.tx.QueryRowContext(t.ctx, `SELECT count(*) FROM log_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("log size: %w", err)
	}
	return n, nil
}

func (t *sqliteTx) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		var b []byte
		if err := t.tx.QueryRowContext(t.ctx, `SELECT hash FROM log_hashes WHERE idx = ?`, idx).Scan(&b); err != nil {
			return nil, fmt.Errorf("log hash %d: %w", idx, err)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

func (t *sqliteTx) AppendLog(requestID string, entry []byte) (int64, error) {
	n, err := t.LogSize()
	if err != nil {
		return 0, err
	}
	hashes, err := tlog.StoredHashes(n, entry, t)
	if err != nil {
		return 0, fmt.Errorf("log append: %w", err)
	}
	if _, err := t.tx.ExecContext(t.ctx, `INSERT INTO log_entries (idx, request_id, data) VALUES (?, ?, ?)`, n, requestID, entry); err != nil {
		return 0, fmt.Errorf("log append: %w", err)
	}
	first := tlog.StoredHashIndex(0, n)
	for i, h := range hashes {
		if _, err := t.tx.ExecContext(t.ctx, `INSERT INTO log_hashes (idx, hash) VALUES (?, ?)`, first+int64(i), h[:]); err != nil {
			return 0, fmt.Errorf("log append: %w", err)
		}
	}
	return n, nil
}

func (t *sqliteTx) RequestLog(requestID string) ([]LogRecord, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT idx, data FROM log_entries WHERE request_id = ? ORDER BY idx`, requestID)
	if err != nil {
		return nil, fmt.Errorf("request log: %w", err)
	}
	defer rows.Close()
	var out []LogRecord
	for rows.Next() {
		var r LogRecord
		if err := rows.Scan(&r.Index, &r.Data); err != nil {
			return nil, fmt.Errorf("request log: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *sqliteTx) PutCertificate(requestID string, cert []byte, at time.Time) error {
	if _, err := t.tx.ExecContext(t.ctx, `INSERT INTO certificates (request_id, data, issued_at) VALUES (?, ?, ?)
		ON CONFLICT (request_id) DO UPDATE SET data = excluded.data, issued_at = excluded.issued_at`, requestID, cert, at.UnixMilli()); err != nil {
		return fmt.Errorf("put certificate: %w", err)
	}
	return nil
}

// Certificate implements [Store].
func (s *SQLite) Certificate(ctx context.Context, requestID string) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT data FROM certificates WHERE request_id = ?`, requestID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return b, nil
}

// Get implements [Store].
func (s *SQLite) Get(ctx context.Context, id string) (*Request, []*Task, error) {
	r, err := scanRequest(s.db.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`, id))
	if err != nil {
		return nil, nil, err
	}
	tasks, err := queryTasks(ctx, s.db, `SELECT `+taskColumns+` FROM tasks WHERE request_id = ? ORDER BY system`, id)
	return r, tasks, err
}

// List implements [Store]. The cursor is the (deadline, id) of the last row
// of the previous page, so pages stay stable while requests come and go.
func (s *SQLite) List(ctx context.Context, q ListQuery) ([]*Request, string, error) {
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
	if q.After != "" {
		dl, id, err := decodeCursor(q.After)
		if err != nil {
			return nil, "", err
		}
		where, args = append(where, "(deadline > ? OR (deadline = ? AND id > ?))"), append(args, dl, dl, id)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE `+strings.Join(where, " AND ")+
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
		return nil, "", err
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		last := out[len(out)-1]
		next = encodeCursor(last.Deadline.UnixMilli(), last.ID)
	}
	return out, next, nil
}

// ErrBadCursor is returned for a cursor this store did not make.
var ErrBadCursor = errors.New("bad cursor")

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

// ClaimOutbox implements [Store].
func (s *SQLite) ClaimOutbox(ctx context.Context, owner string, limit int, now, until time.Time) ([]OutboxMessage, error) {
	rows, err := s.db.QueryContext(ctx, `UPDATE outbox SET claimed_by = ?, claimed_until = ?
		WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY seq LIMIT ?)
		RETURNING seq, topic, msg_id, ce_type, msg_key, payload, created_at`, owner, until.UnixMilli(), now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		var m OutboxMessage
		var created int64
		if err := rows.Scan(&m.Seq, &m.Topic, &m.ID, &m.Type, &m.Key, &m.Payload, &created); err != nil {
			return nil, fmt.Errorf("claim outbox: %w", err)
		}
		m.Created = time.UnixMilli(created).UTC()
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b OutboxMessage) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, rows.Err()
}

// ReleaseOutbox implements [Store].
func (s *SQLite) ReleaseOutbox(ctx context.Context, owner string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ? AND published_at IS NULL`, owner); err != nil {
		return fmt.Errorf("release outbox: %w", err)
	}
	return nil
}

// MarkPublished implements [Store].
func (s *SQLite) MarkPublished(ctx context.Context, seqs []int64, at time.Time) error {
	return s.Tx(ctx, func(tx Tx) error {
		t := tx.(*sqliteTx)
		for _, seq := range seqs {
			// The task's wait starts now, unless a newer attempt or an
			// answer came meanwhile.
			if _, err := t.tx.ExecContext(ctx, `UPDATE tasks SET next_attempt_at = ? + (SELECT wait_ms FROM outbox WHERE seq = ?)
				WHERE id = (SELECT task_id FROM outbox WHERE seq = ?) AND state = 'published' AND next_attempt_at IS NULL`,
				at.UnixMilli(), seq, seq); err != nil {
				return fmt.Errorf("mark published: %w", err)
			}
			if _, err := t.tx.ExecContext(ctx, `UPDATE outbox SET published_at = ? WHERE seq = ?`, at.UnixMilli(), seq); err != nil {
				return fmt.Errorf("mark published: %w", err)
			}
		}
		return nil
	})
}

// Stats implements [Store].
func (s *SQLite) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Requests: map[[2]string]int{}}
	rows, err := s.db.QueryContext(ctx, `SELECT state, type, count(*) FROM requests GROUP BY state, type`)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state, typ string
		var n int
		if err := rows.Scan(&state, &typ, &n); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		st.Requests[[2]string{state, typ}] = n
	}
	var oldest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE published_at IS NULL`).Scan(&st.OutboxDepth, &oldest); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.OldestUnpublished = fromMS(oldest)
	return st, nil
}
