package hostoutbox_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/hostoutbox"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

const topic = "event.outbox-test"

// openDB is a host application's SQLite database: a table of its own and
// the outbox.
func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE users (id TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for range 2 { // twice: Ensure is idempotent
		if err := hostoutbox.Ensure(context.Background(), db, hostoutbox.SQLite); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// startNATS starts an embedded NATS server in dir (port -1: a free one)
// and connects to it.
func startNATS(t *testing.T, dir string, port int) (*natsbus.Embedded, *natsbus.Bus) {
	t.Helper()
	srv, err := natsbus.StartEmbedded(dir, "127.0.0.1", port, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	b, err := natsbus.Connect(context.Background(), srv.URL(), natsbus.Config{Name: "hostoutbox-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return srv, b
}

// message is the test message n; its key and data hold an email, which the
// relay must not log.
func message(n int) *bus.Message {
	return &bus.Message{
		ID:     "test-msg-" + strconv.Itoa(n),
		Type:   "lethe.test.v1",
		Source: "lethe/hostoutbox-test",
		Time:   time.Date(2025, 6, 1, 12, 0, n, 123456789, time.FixedZone("CEST", 2*3600)),
		Key:    "key-person-" + strconv.Itoa(n) + "@example.com",
		Data:   []byte("data of person-" + strconv.Itoa(n) + "@example.com"),
	}
}

// change deletes user uid and enqueues msg in one transaction, which it
// commits or rolls back.
func change(t *testing.T, db *sql.DB, uid string, msg *bus.Message, commit bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, uid); err != nil {
		t.Fatal(err)
	}
	if err := hostoutbox.Enqueue(ctx, tx, topic, msg); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// collect consumes topic as a group, sending each message it gets.
func collect(t *testing.T, ctx context.Context, b bus.Consumer) <-chan *bus.Message {
	t.Helper()
	got := make(chan *bus.Message, 16)
	go b.Consume(ctx, topic, "test", func(_ context.Context, m *bus.Message) error {
		got <- m
		return nil
	})
	return got
}

// expect waits for the messages of ids, in this order, and then checks
// that nothing else arrives.
func expect(t *testing.T, got <-chan *bus.Message, ids ...int) {
	t.Helper()
	for _, n := range ids {
		select {
		case m := <-got:
			want := message(n)
			if m.ID != want.ID || m.Type != want.Type || m.Source != want.Source || m.Key != want.Key ||
				!m.Time.Equal(want.Time) || !bytes.Equal(m.Data, want.Data) {
				t.Fatalf("got %+v, want message %d %+v", m, n, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("message %d never arrived", n)
		}
	}
	select {
	case m := <-got:
		t.Fatalf("unexpected message %s (a duplicate, or one that should not have gone out)", m.ID)
	case <-time.After(time.Second):
	}
}

func pending(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	n, err := hostoutbox.Pending(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitPending waits until the outbox holds n messages.
func waitPending(t *testing.T, db *sql.DB, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for pending(t, db) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages pending, want %d", pending(t, db), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run runs r until the test ends or stop is called; stop waits for Run to
// return and fails the test if it returned an error.
func run(t *testing.T, r *hostoutbox.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// lostAck publishes for real, then loses the broker's answer: the relay's
// process "dies" (crash is called) before it can record the publication.
type lostAck struct {
	bus.Publisher
	crash func()
	calls atomic.Int32
}

func (p *lostAck) Publish(ctx context.Context, topic string, msg *bus.Message) error {
	p.calls.Add(1)
	if err := p.Publisher.Publish(ctx, topic, msg); err != nil {
		return err
	}
	p.crash()
	return errors.New("connection lost before the ack")
}

// TestCommittedPublishedOnceAcrossRestart: a committed transaction's
// message goes out once, even when the relay dies between the broker's ack
// and the row's deletion and a new relay publishes it again.
func TestCommittedPublishedOnceAcrossRestart(t *testing.T) {
	db := openDB(t)
	_, b := startNATS(t, t.TempDir(), -1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := collect(t, ctx, b)

	change(t, db, "user-1", message(1), true)
	if n := pending(t, db); n != 1 {
		t.Fatalf("%d messages pending after the commit, want 1", n)
	}

	// The first relay publishes message 1 and dies before deleting its row.
	crashed, crash := context.WithCancel(context.Background())
	first := &hostoutbox.Relay{DB: db, Bus: &lostAck{Publisher: b, crash: crash}, Interval: time.Hour}
	if err := first.Run(crashed); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := pending(t, db); n != 1 {
		t.Fatalf("%d messages pending after the crash, want message 1 still there", n)
	}

	// Its successor publishes it again (the broker drops the duplicate),
	// and what is enqueued next.
	relay := &hostoutbox.Relay{DB: db, Bus: b, Interval: time.Hour}
	run(t, relay)
	waitPending(t, db, 0)
	change(t, db, "user-2", message(2), true)
	relay.Wake()
	expect(t, got, 1, 2)
	waitPending(t, db, 0)
}

// TestRolledBackPublishesNothing: a transaction that rolls back (the
// process died before the commit, or the change failed) leaves nothing to
// publish.
func TestRolledBackPublishesNothing(t *testing.T) {
	db := openDB(t)
	_, b := startNATS(t, t.TempDir(), -1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := collect(t, ctx, b)
	relay := &hostoutbox.Relay{DB: db, Bus: b, Interval: 20 * time.Millisecond}
	run(t, relay)

	change(t, db, "user-1", message(1), false)
	relay.Wake()
	if n := pending(t, db); n != 0 {
		t.Fatalf("%d messages pending after a rollback", n)
	}
	// Message 2, committed after, is the first and only one out.
	change(t, db, "user-2", message(2), true)
	relay.Wake()
	expect(t, got, 2)
}

// failing is a bus that is down for its first fails publications.
type failing struct {
	bus.Publisher
	fails   int32
	calls   atomic.Int32
	onFail  func()
	failure error
}

func (p *failing) Publish(ctx context.Context, topic string, msg *bus.Message) error {
	if p.calls.Add(1) <= p.fails {
		p.onFail()
		return p.failure
	}
	return p.Publisher.Publish(ctx, topic, msg)
}

// TestBusDownMessagesWait: while the bus fails, the messages stay in the
// outbox, are tried again with backoff, and go out in order once it is
// back; the logs name neither their key nor their data.
func TestBusDownMessagesWait(t *testing.T) {
	db := openDB(t)
	_, b := startNATS(t, t.TempDir(), -1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := collect(t, ctx, b)

	change(t, db, "user-1", message(1), true)
	change(t, db, "user-2", message(2), true)
	var logs piitest.Capture
	var stuck atomic.Int64
	down := &failing{Publisher: b, fails: 4, failure: errors.New("nats: no servers available for connection"),
		onFail: func() {
			// The relay holds no connection while it publishes: the
			// application can read (and write) meanwhile.
			if n, err := hostoutbox.Pending(ctx, db); err == nil && n == 2 {
				stuck.Add(1)
			}
		}}
	relay := &hostoutbox.Relay{DB: db, Bus: down, Logger: logs.Logger(), Interval: time.Hour, MaxBackoff: 20 * time.Millisecond}
	run(t, relay)

	expect(t, got, 1, 2)
	waitPending(t, db, 0)
	if stuck.Load() != 4 {
		t.Fatalf("the two messages were pending at %d of the 4 failures, want all", stuck.Load())
	}
	if c := down.calls.Load(); c != 6 {
		t.Fatalf("%d publications, want 4 failed and 2 that went out", c)
	}
	logs.NoneOf(t, message(1).Key, message(2).Key, "person-1@example.com", "person-2@example.com")
}

// TestBrokerRestart: the real NATS server stops; a message enqueued
// meanwhile waits for it and goes out once, when it is back.
func TestBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS server")
	}
	db := openDB(t)
	dir := t.TempDir()
	srv, b := startNATS(t, dir, -1)
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay := &hostoutbox.Relay{DB: db, Bus: b, Interval: time.Hour, MaxBackoff: 100 * time.Millisecond}
	run(t, relay)
	change(t, db, "user-1", message(1), true)
	relay.Wake()
	waitPending(t, db, 0)

	srv.Shutdown()
	change(t, db, "user-2", message(2), true)
	relay.Wake()
	time.Sleep(500 * time.Millisecond)
	if n := pending(t, db); n != 1 {
		t.Fatalf("%d messages pending while the broker is down, want 1", n)
	}
	srv, err = natsbus.StartEmbedded(dir, "127.0.0.1", port, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	waitPending(t, db, 0)
	expect(t, collect(t, ctx, b), 1, 2)
}

// TestClosedBusStopsTheRelay: a bus that was closed will not come back.
func TestClosedBusStopsTheRelay(t *testing.T) {
	db := openDB(t)
	change(t, db, "user-1", message(1), true)
	closed := &failing{fails: 1, failure: bus.ErrClosed, onFail: func() {}}
	err := (&hostoutbox.Relay{DB: db, Bus: closed}).Run(context.Background())
	if !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Run = %v, want ErrClosed", err)
	}
	if n := pending(t, db); n != 1 {
		t.Fatalf("%d messages pending, want the one that could not go out", n)
	}
}

func TestEnqueue(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// The same message twice (a retried request): one row.
	for range 2 {
		if err := hostoutbox.Enqueue(ctx, tx, topic, message(1)); err != nil {
			t.Fatal(err)
		}
	}
	noID := message(2)
	noID.ID = ""
	for name, err := range map[string]error{
		"no id":      hostoutbox.Enqueue(ctx, tx, topic, noID),
		"bad topic":  hostoutbox.Enqueue(ctx, tx, "event.*", message(3)),
		"no message": hostoutbox.Enqueue(ctx, tx, topic, nil),
		"no tx":      hostoutbox.Enqueue(ctx, nil, topic, message(4)),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, db); n != 1 {
		t.Fatalf("%d messages pending, want 1", n)
	}
	if err := hostoutbox.Ensure(ctx, db, "mysql"); err == nil {
		t.Error("Ensure knows no MySQL, yet made no error")
	}
	if err := (&hostoutbox.Relay{}).Run(ctx); err == nil {
		t.Fatal("a relay without DB or Bus ran")
	}
}
