package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

var burstStart = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// openRequest is an open erasure request, id.
func openRequest(id string) *store.Request {
	return &store.Request{ID: id, Tenant: "demo", Type: lifecycle.Erasure, State: lifecycle.Open,
		SealedSubject: []byte("sealed"), SubjectHash: "hash-" + id, Source: "api",
		ReceivedAt: burstStart, Deadline: burstStart.AddDate(0, 1, 0), CreatedAt: burstStart, UpdatedAt: burstStart}
}

// insertTasks inserts n requests of one task each, published; timed says
// whether their wait runs already (a time to be retried at) or they wait
// for the relay to mark them.
func insertTasks(t *testing.T, s store.Store, prefix string, n int, timed bool) []*store.Task {
	t.Helper()
	var tasks []*store.Task
	err := s.Tx(t.Context(), func(tx store.Tx) error {
		for i := range n {
			id := fmt.Sprintf("%s-%04d", prefix, i)
			if err := tx.InsertRequest(t.Context(), openRequest(id)); err != nil {
				return err
			}
			k := &store.Task{ID: id + ":accounts", RequestID: id, System: "accounts", State: lifecycle.TaskPublished, Attempts: 1}
			if timed {
				k.NextAttemptAt = burstStart.Add(time.Minute)
			}
			if err := tx.InsertTask(t.Context(), k); err != nil {
				return err
			}
			tasks = append(tasks, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

// The relay finds each task it marks by its key, whatever the engine's
// statistics say: analysed while every published task had a time, they say
// none waits unmarked, and in the burst that follows thousands do. With
// tasks_due holding the unmarked tasks, PostgreSQL took that index for each
// task marked, reading the whole burst each time.
func TestMarkPublishedFindsTasksByKey(t *testing.T) {
	engines := []struct {
		name    string
		open    func(t *testing.T) store.Store
		analyze string
		explain string
		byKey   func(plan string) bool
	}{
		{"sqlite", func(t *testing.T) store.Store { return openSQLite(t, filepath.Join(t.TempDir(), "lethe.db")) },
			`ANALYZE`, `EXPLAIN QUERY PLAN `,
			func(plan string) bool { return strings.Contains(plan, "(id=?)") }},
		{"postgres", func(t *testing.T) store.Store {
			if os.Getenv(storetest.EnvPostgres) == "" {
				t.Skipf("PostgreSQL tests skipped: %s is not set", storetest.EnvPostgres)
			}
			return openPostgres(t, storetest.PostgresDSN(t))
		}, `ANALYZE tasks`, `EXPLAIN `,
			func(plan string) bool {
				return strings.Contains(plan, "tasks_pkey") && !strings.Contains(plan, "tasks_due")
			}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			insertTasks(t, s, "timed", 300, true)
			db, q := store.BenchDB(s)
			if _, err := db.ExecContext(t.Context(), e.analyze); err != nil {
				t.Fatal(err)
			}
			burst := insertTasks(t, s, "burst", 2000, false)
			rows, err := db.QueryContext(t.Context(), e.explain+q(store.MarkTaskPublished),
				burstStart.UnixMilli(), int64(7), burstStart.Add(time.Minute).UnixMilli(), burst[1000].ID)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan strings.Builder
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				for i := range vals {
					vals[i] = new(sql.RawBytes)
				}
				if err := rows.Scan(vals...); err != nil {
					t.Fatal(err)
				}
				for _, v := range vals {
					plan.Write(*v.(*sql.RawBytes))
					plan.WriteByte(' ')
				}
				plan.WriteByte('\n')
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if !e.byKey(plan.String()) {
				t.Errorf("a task is not marked by its key:\n%s", plan.String())
			}
		})
	}
}

// A relay marking a request's tasks while the request's last receipt is
// recorded (it holds one task, then asks for all of them, as a request that
// ends does) must wait its turn, not deadlock: PostgreSQL would end one of
// the two with an error after a second's stall. The relay used to lock the
// tasks first; it now locks their requests first, as everything else does.
func TestMarkPublishedBesideALastReceipt(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	s := openPostgres(t, dsn)
	ctx := t.Context()
	r := openRequest("req-1")
	first := &store.Task{ID: "req-1:accounts", RequestID: r.ID, System: "accounts", State: lifecycle.TaskPublished, Attempts: 1}
	last := &store.Task{ID: "req-1:billing", RequestID: r.ID, System: "billing", State: lifecycle.TaskPublished, Attempts: 1}
	if err := s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		for _, k := range []*store.Task{first, last} {
			if err := tx.InsertTask(ctx, k); err != nil {
				return err
			}
			if err := tx.Enqueue(ctx, store.OutboxMessage{Topic: "lethe.tasks." + k.System, ID: k.ID + ":1", Type: "dev.lethe.task",
				Key: r.ID, Payload: []byte("task"), Created: burstStart, TaskID: k.ID, Wait: time.Minute}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.ClaimOutbox(ctx, "relay", 10, burstStart, burstStart.Add(time.Minute))
	if err != nil || len(msgs) != 2 {
		t.Fatalf("claimed %d messages (%v), want 2", len(msgs), err)
	}
	seqs := []int64{msgs[0].Seq, msgs[1].Seq}

	// Another connection (pgx's driver, which the store registers) sees
	// when the relay waits for a lock.
	watcher, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	relayWaits := func() bool {
		var n int
		err := watcher.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
			AND (query LIKE 'SELECT id FROM requests WHERE id IN%' OR query LIKE 'UPDATE tasks SET published_at%')`).Scan(&n)
		return err == nil && n > 0
	}

	holding, marked := make(chan struct{}), make(chan error, 1)
	receipt := make(chan error, 1)
	go func() {
		receipt <- s.Tx(ctx, func(tx store.Tx) error {
			if _, err := tx.Task(ctx, last.ID); err != nil { // the request, then the task
				return err
			}
			close(holding)
			deadline := time.Now().Add(10 * time.Second)
			for !relayWaits() {
				if time.Now().After(deadline) {
					return fmt.Errorf("the relay never waited for the receipt's locks")
				}
				time.Sleep(10 * time.Millisecond)
			}
			_, err := tx.Tasks(ctx, r.ID) // every task of the request
			return err
		})
	}()
	<-holding
	go func() { marked <- s.MarkPublished(context.WithoutCancel(ctx), seqs, burstStart) }()
	if err := <-receipt; err != nil {
		t.Fatalf("the receipt's transaction: %v", err)
	}
	if err := <-marked; err != nil {
		t.Fatalf("the relay: %v", err)
	}
	_, tasks, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range tasks {
		if k.PublishedAt.IsZero() {
			t.Errorf("task %s not marked published", k.ID)
		}
	}
}
