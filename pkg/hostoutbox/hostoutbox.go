// Package hostoutbox is a transactional outbox for applications on
// database/sql that publish Lethe events (account.deleted): the message is
// written in the same transaction as the change it announces, and a [Relay]
// publishes it once that transaction has committed. A deletion that rolls
// back announces nothing; one that commits is announced even if the bus is
// down or the process dies right after the commit.
//
// Delivery is at least once: a relay that dies between the broker's ack and
// the row's deletion publishes the message again, under the same message id,
// which the broker (NATS JetStream's de-duplication window) and the
// orchestrator (one request per event id) recognise.
//
// It works on SQLite and PostgreSQL: [Ensure] makes the table in either
// dialect; the statements of [Enqueue] and the relay are the same in both,
// with $1, $2, ... placeholders, which PostgreSQL's drivers read natively and
// SQLite as numbered parameters, in order.
package hostoutbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/lethe-dev/lethe/pkg/bus"
)

// Table is the outbox table's name.
const Table = "lethe_outbox"

// Dialect is the SQL dialect of the host's database. It matters only to
// [Ensure]: the column types differ, the statements do not.
type Dialect string

// Dialects [Ensure] knows.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// The table: seq orders the messages (oldest first); id, the message id, is
// unique, so that enqueueing a message again (a retried request) adds
// nothing while the first is pending. A published message's row is deleted.
var schemas = map[Dialect]string{
	SQLite: `CREATE TABLE IF NOT EXISTS ` + Table + ` (
	seq INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	topic TEXT NOT NULL,
	type TEXT NOT NULL,
	source TEXT NOT NULL,
	msg_key TEXT NOT NULL,
	msg_time TEXT NOT NULL,
	data BLOB,
	created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))`,
	Postgres: `CREATE TABLE IF NOT EXISTS ` + Table + ` (
	seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	topic TEXT NOT NULL,
	type TEXT NOT NULL,
	source TEXT NOT NULL,
	msg_key TEXT NOT NULL,
	msg_time TEXT NOT NULL,
	data BYTEA,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
}

// Ensure creates the outbox table in db if it does not exist yet.
func Ensure(ctx context.Context, db *sql.DB, d Dialect) error {
	ddl, ok := schemas[d]
	if !ok {
		return fmt.Errorf("hostoutbox: unknown dialect %q (want %q or %q)", d, SQLite, Postgres)
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("hostoutbox: create %s: %w", Table, err)
	}
	return nil
}

// Enqueue writes msg, to be published on topic, in the caller's transaction
// tx: it is published only if tx commits. msg.ID is required: it is the
// de-duplication id, here (a message whose id is pending already is not
// added again) and on the bus. Call [Relay.Wake] after the commit to have it
// published at once.
func Enqueue(ctx context.Context, tx *sql.Tx, topic string, msg *bus.Message) error {
	if tx == nil || msg == nil {
		return errors.New("hostoutbox: enqueue needs a transaction and a message")
	}
	if msg.ID == "" {
		return errors.New("hostoutbox: enqueue: the message has no id (the de-duplication id is required)")
	}
	if _, err := bus.Kind(topic); err != nil {
		return fmt.Errorf("hostoutbox: enqueue: %w", err)
	}
	at := ""
	if !msg.Time.IsZero() {
		at = msg.Time.UTC().Format(time.RFC3339Nano)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO `+Table+` (id, topic, type, source, msg_key, msg_time, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		msg.ID, topic, msg.Type, msg.Source, msg.Key, at, msg.Data)
	if err != nil {
		return fmt.Errorf("hostoutbox: enqueue: %w", err)
	}
	return nil
}

// Pending counts the messages not yet published: a health check's number,
// which stays above zero while the bus is away.
func Pending(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+Table).Scan(&n); err != nil {
		return 0, fmt.Errorf("hostoutbox: pending: %w", err)
	}
	return n, nil
}

// Defaults of a [Relay].
const (
	DefaultInterval   = 5 * time.Second
	DefaultMaxBackoff = time.Minute
)

const (
	batchSize = 100
	// publishTimeout bounds one publication, so that a broker that never
	// answers is retried rather than waited for forever.
	publishTimeout = 10 * time.Second
	// deleteTimeout bounds the deletion of a published row, which runs even
	// when Run's context was cancelled meanwhile: the broker has the
	// message, and publishing it again is avoidable.
	deleteTimeout = 5 * time.Second
)

// Relay publishes the outbox's messages, oldest first, and deletes each
// once the broker has acknowledged it. Run one relay per database: two would
// both publish the pending messages, which the ids de-duplicate, but to no
// purpose.
//
// It logs what it publishes by topic, type and id, never the message's
// data or key, which may identify a person.
type Relay struct {
	DB  *sql.DB
	Bus bus.Publisher
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Interval is how often the table is looked at when nothing woke the
	// relay (messages another process enqueued); DefaultInterval if zero.
	Interval time.Duration
	// MaxBackoff is the longest wait between two attempts while the bus
	// (or the database) fails; DefaultMaxBackoff if zero. The first wait is
	// at most 250ms.
	MaxBackoff time.Duration

	once sync.Once
	wake chan struct{}
}

func (r *Relay) wakeCh() chan struct{} {
	r.once.Do(func() { r.wake = make(chan struct{}, 1) })
	return r.wake
}

// Wake makes the relay look at the table now: call it after committing a
// transaction that enqueued a message. It never blocks; a relay that is
// publishing, or waiting after a failure, looks again when it is done.
func (r *Relay) Wake() {
	select {
	case r.wakeCh() <- struct{}{}:
	default:
	}
}

// Run publishes until ctx is cancelled, then returns nil. Messages the bus
// refuses stay in the table and are retried with exponential backoff; the
// next messages wait behind them, so that they go out in order. Run
// returns an error only if it cannot work at all: no DB or Bus, or a bus
// that was closed ([bus.ErrClosed]).
func (r *Relay) Run(ctx context.Context) error {
	if r.DB == nil || r.Bus == nil {
		return errors.New("hostoutbox: a relay needs a DB and a Bus")
	}
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	maxWait := r.MaxBackoff
	if maxWait <= 0 {
		maxWait = DefaultMaxBackoff
	}
	retry := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(250*time.Millisecond, maxWait)),
		backoff.WithMaxInterval(maxWait),
		backoff.WithMaxElapsedTime(0)) // never give up
	tick := time.NewTicker(interval)
	defer tick.Stop()
	wake := r.wakeCh()
	for {
		err := r.drain(ctx, log)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, bus.ErrClosed) {
			return fmt.Errorf("hostoutbox: relay: %w", err)
		}
		if err != nil {
			wait := retry.NextBackOff()
			log.Warn("outbox: publishing failed; the messages stay in the outbox and are tried again",
				"table", Table, "err", err, "retry_in", wait)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		retry.Reset()
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
	}
}

// row is a pending message.
type row struct {
	seq   int64
	topic string
	msg   bus.Message
}

// drain publishes the pending messages, batch after batch, until none is
// left or one fails.
func (r *Relay) drain(ctx context.Context, log *slog.Logger) error {
	for {
		batch, err := r.pending(ctx)
		if err != nil {
			return err
		}
		for _, m := range batch {
			pctx, cancel := context.WithTimeout(ctx, publishTimeout)
			err := r.Bus.Publish(pctx, m.topic, &m.msg)
			cancel()
			if err != nil {
				return fmt.Errorf("publish %s %s: %w", m.topic, m.msg.ID, err)
			}
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
			_, err = r.DB.ExecContext(dctx, `DELETE FROM `+Table+` WHERE seq = $1`, m.seq)
			cancel()
			if err != nil {
				// Published, but still pending: the next round publishes
				// it again, under the same id.
				return fmt.Errorf("forget published message %s: %w", m.msg.ID, err)
			}
			log.Info("outbox: message published", "topic", m.topic, "type", m.msg.Type, "id", m.msg.ID)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if len(batch) < batchSize {
			return nil
		}
	}
}

// pending reads the oldest pending messages. The rows are all read before
// any is published: on SQLite with a single connection, an open result set
// would hold the connection the deletions need.
func (r *Relay) pending(ctx context.Context) ([]row, error) {
	rows, err := r.DB.QueryContext(ctx, fmt.Sprintf(`SELECT seq, id, topic, type, source, msg_key, msg_time, data
		FROM %s ORDER BY seq LIMIT %d`, Table, batchSize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", Table, err)
	}
	defer rows.Close()
	var batch []row
	for rows.Next() {
		var m row
		var at string
		if err := rows.Scan(&m.seq, &m.msg.ID, &m.topic, &m.msg.Type, &m.msg.Source, &m.msg.Key, &at, &m.msg.Data); err != nil {
			return nil, fmt.Errorf("read %s: %w", Table, err)
		}
		if at != "" {
			if m.msg.Time, err = time.Parse(time.RFC3339Nano, at); err != nil {
				return nil, fmt.Errorf("read %s: message %s: time: %w", Table, m.msg.ID, err)
			}
		}
		batch = append(batch, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", Table, err)
	}
	return batch, nil
}
