// Package storetest is the conformance suite of the orchestrator's store:
// every engine (SQLite, PostgreSQL) passes the same tests, called from its
// own test with [Run]. The concurrency tests hold on any engine; on SQLite,
// which runs one transaction at a time, they pass trivially, and on
// PostgreSQL they prove the row locks.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// Run runs the suite. newStore returns a new, empty store and closes it
// when the test ends (t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RequestLifecycle", testRequestLifecycle},
		{"TxRollsBack", testTxRollsBack},
		{"Tasks", testTasks},
		{"DueTasks", testDueTasks},
		{"DueTasksConcurrent", testDueTasksConcurrent},
		{"ReceiptRecordedOnce", testReceiptRecordedOnce},
		{"CompletedOnce", testCompletedOnce},
		{"OutboxClaimAndLease", testOutboxClaimAndLease},
		{"OutboxConcurrentClaims", testOutboxConcurrentClaims},
		{"MarkPublished", testMarkPublished},
		{"ForgetTasks", testForgetTasks},
		{"List", testList},
		{"ListCursorStable", testListCursorStable},
		{"Log", testLog},
		{"LogConcurrentAppends", testLogConcurrentAppends},
		{"Certificates", testCertificates},
		{"Stats", testStats},
		{"CountOverdue", testCountOverdue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// t0 is the suite's clock; stores keep milliseconds.
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func newRequest(id, state string, deadline time.Time) *store.Request {
	return &store.Request{
		ID: id, Tenant: "demo", Type: "erasure", State: state,
		SubjectEmail: "person-0001@example.com", SubjectUserID: "user-0001", SubjectHash: "hash-" + id,
		Source: "api", ReceivedAt: deadline.AddDate(0, -1, 0), Deadline: deadline, CreatedAt: t0, UpdatedAt: t0,
	}
}

func newTask(requestID, system, state string, next time.Time) *store.Task {
	return &store.Task{ID: requestID + ":" + system, RequestID: requestID, System: system, State: state, Attempts: 1, NextAttemptAt: next}
}

func mustTx(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Tx(t.Context(), fn); err != nil {
		t.Fatal(err)
	}
}

func insert(t *testing.T, s store.Store, reqs []*store.Request, tasks ...*store.Task) {
	t.Helper()
	mustTx(t, s, func(tx store.Tx) error {
		for _, r := range reqs {
			if err := tx.InsertRequest(r); err != nil {
				return err
			}
		}
		for _, k := range tasks {
			if err := tx.InsertTask(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func enqueue(t *testing.T, s store.Store, msgs ...store.OutboxMessage) {
	t.Helper()
	mustTx(t, s, func(tx store.Tx) error {
		for _, m := range msgs {
			if err := tx.Enqueue(m); err != nil {
				return err
			}
		}
		return nil
	})
}

func taskMessage(k *store.Task, wait time.Duration) store.OutboxMessage {
	return store.OutboxMessage{Topic: "lethe.tasks." + k.System, ID: k.ID + ":1", Type: "dev.lethe.task", Key: k.RequestID,
		Payload: []byte("task " + k.ID), Created: t0, TaskID: k.ID, Wait: wait}
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func testRequestLifecycle(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", store.StatePendingVerification, t0.AddDate(0, 1, 0))
	r.SourceRef = "account_deleted:ev-1"
	insert(t, s, []*store.Request{r})

	got, tasks, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Get", got, r)
	same(t, "tasks of a request without any", len(tasks), 0)
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		same(t, "Tx.Request", got, r)
		got, err = tx.RequestBySourceRef(r.SourceRef)
		if err != nil {
			return err
		}
		same(t, "Tx.RequestBySourceRef", got, r)
		return nil
	})

	// The request ends: its subject is cleared, its times set.
	r.State, r.SubjectEmail, r.SubjectUserID = store.StateFulfilled, "", ""
	r.Deadline, r.UpdatedAt, r.CompletedAt = r.Deadline.AddDate(0, 2, 0), t0.Add(time.Hour), t0.Add(time.Hour+time.Millisecond)
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateRequest(r) })
	got, _, err = s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Get after update", got, r)

	// A duplicate is refused, and the transaction goes on.
	dup := newRequest("req-2", store.StateOpen, t0)
	dup.SourceRef = r.SourceRef
	other := newRequest("req-3", store.StateOpen, t0)
	mustTx(t, s, func(tx store.Tx) error {
		wantErr(t, "insert with a known source_ref", tx.InsertRequest(dup), store.ErrDuplicate)
		wantErr(t, "insert with a known id", tx.InsertRequest(newRequest(r.ID, store.StateOpen, t0)), store.ErrDuplicate)
		return tx.InsertRequest(other)
	})
	if _, _, err := s.Get(ctx, other.ID); err != nil {
		t.Errorf("request inserted after a duplicate in the same Tx: %v", err)
	}
	_, _, err = s.Get(ctx, dup.ID)
	wantErr(t, "Get of the refused duplicate", err, store.ErrNotFound)

	// Requests without a source reference do not collide.
	insert(t, s, []*store.Request{newRequest("req-4", store.StateOpen, t0), newRequest("req-5", store.StateOpen, t0)})

	_, _, err = s.Get(ctx, "req-unknown")
	wantErr(t, "Get unknown", err, store.ErrNotFound)
	mustTx(t, s, func(tx store.Tx) error {
		_, err := tx.Request("req-unknown")
		wantErr(t, "Tx.Request unknown", err, store.ErrNotFound)
		_, err = tx.RequestBySourceRef("ref-unknown")
		wantErr(t, "Tx.RequestBySourceRef unknown", err, store.ErrNotFound)
		_, err = tx.Task("task-unknown")
		wantErr(t, "Tx.Task unknown", err, store.ErrNotFound)
		return nil
	})
}

func testTxRollsBack(t *testing.T, s store.Store) {
	boom := errors.New("boom")
	err := s.Tx(t.Context(), func(tx store.Tx) error {
		if err := tx.InsertRequest(newRequest("req-1", store.StateOpen, t0)); err != nil {
			return err
		}
		if _, err := tx.AppendLog("req-1", []byte("created")); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "Tx", err, boom)
	_, _, err = s.Get(t.Context(), "req-1")
	wantErr(t, "Get after rollback", err, store.ErrNotFound)
	mustTx(t, s, func(tx store.Tx) error {
		n, err := tx.LogSize()
		same(t, "log size after rollback", n, int64(0))
		return err
	})
}

func testTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", store.StateOpen, t0.AddDate(0, 1, 0))
	b := newTask(r.ID, "billing", store.TaskPublished, t0.Add(time.Minute))
	a := newTask(r.ID, "accounts", store.TaskPending, time.Time{})
	insert(t, s, []*store.Request{r}, b, a)

	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Task(b.ID)
		if err != nil {
			return err
		}
		same(t, "Tx.Task", got, b)
		all, err := tx.Tasks(r.ID)
		if err != nil {
			return err
		}
		same(t, "Tx.Tasks, by system", all, []*store.Task{a, b})
		wantErr(t, "insert a known task", tx.InsertTask(newTask(r.ID, "billing", store.TaskPending, time.Time{})), store.ErrDuplicate)
		return nil
	})

	// Every field survives an update.
	a.State, a.Attempts, a.NextAttemptAt = store.TaskAnswered, 3, time.Time{}
	a.Outcome, a.AnsweredAt, a.Detail, a.LegalBasis = "retained", t0.Add(2*time.Hour), "kept for tax", "tax law"
	a.RetainUntil = time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	a.Counts, a.Remaining = map[string]int64{"profile": 1, "invoices": 12}, 12
	a.ExportSHA256, a.ExportData, a.Receipt = []byte{1, 2, 3}, []byte(`{"profile":[]}`), []byte{0, 1, 0xff}
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateTask(a) })

	got, tasks, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Get request", got, r)
	same(t, "Get tasks after update", tasks, []*store.Task{a, b})
}

func testDueTasks(t *testing.T, s store.Store) {
	r := newRequest("req-1", store.StateOpen, t0.AddDate(0, 1, 0))
	a := newTask(r.ID, "a", store.TaskPublished, t0.Add(-2*time.Minute))
	b := newTask(r.ID, "b", store.TaskRetrying, t0.Add(-time.Minute))
	c := newTask(r.ID, "c", store.TaskPublished, t0) // due at now exactly
	notYet := newTask(r.ID, "d", store.TaskPublished, t0.Add(time.Millisecond))
	unpublished := newTask(r.ID, "e", store.TaskPublished, time.Time{}) // the relay has not published it yet
	answered := newTask(r.ID, "f", store.TaskAnswered, t0.Add(-5*time.Minute))
	pending := newTask(r.ID, "g", store.TaskPending, time.Time{})
	dead := newTask(r.ID, "h", store.TaskDeadLetter, t0.Add(-5*time.Minute))
	insert(t, s, []*store.Request{r}, a, b, c, notYet, unpublished, answered, pending, dead)

	for _, tc := range []struct {
		limit int
		want  []*store.Task
	}{{10, []*store.Task{a, b, c}}, {2, []*store.Task{a, b}}} {
		mustTx(t, s, func(tx store.Tx) error {
			got, err := tx.DueTasks(t0, tc.limit)
			same(t, fmt.Sprintf("DueTasks limit %d", tc.limit), got, tc.want)
			return err
		})
	}
}

// testDueTasksConcurrent: transactions running at once, each taking due
// tasks and scheduling their next attempt, never get the same task.
func testDueTasksConcurrent(t *testing.T, s store.Store) {
	var reqs []*store.Request
	var tasks []*store.Task
	for i := range 40 {
		r := newRequest(fmt.Sprintf("req-%02d", i), store.StateOpen, t0.AddDate(0, 1, 0))
		reqs = append(reqs, r)
		for _, sys := range []string{"accounts", "billing"} {
			tasks = append(tasks, newTask(r.ID, sys, store.TaskPublished, t0.Add(-time.Duration(i)*time.Second)))
		}
	}
	insert(t, s, reqs, tasks...)

	const workers = 4
	var mu sync.Mutex
	handed := map[string]int{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			<-start
			for {
				var got []string
				err := s.Tx(context.Background(), func(tx store.Tx) error {
					got = nil
					due, err := tx.DueTasks(t0, 7)
					if err != nil {
						return err
					}
					for _, k := range due {
						k.Attempts++
						k.NextAttemptAt = t0.Add(time.Hour)
						if err := tx.UpdateTask(k); err != nil {
							return err
						}
						got = append(got, k.ID)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, id := range got {
					handed[id]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, n := range handed {
		if n != 1 {
			t.Errorf("task %s handed to %d transactions", id, n)
		}
	}
	same(t, "tasks handed out", len(handed), len(tasks))
	mustTx(t, s, func(tx store.Tx) error {
		left, err := tx.DueTasks(t0, 100)
		same(t, "tasks still due", len(left), 0)
		return err
	})
}

// testReceiptRecordedOnce: transactions at once, each reading a task and
// answering it only if no answer came yet, as the orchestrator records a
// receipt: exactly one wins, and the log records one answer. Several rounds,
// so that a store without locks cannot pass by luck.
func testReceiptRecordedOnce(t *testing.T, s store.Store) {
	for round := range 5 {
		r := newRequest(fmt.Sprintf("req-%d", round), store.StateOpen, t0.AddDate(0, 1, 0))
		k := newTask(r.ID, "accounts", store.TaskPublished, t0.Add(time.Hour))
		insert(t, s, []*store.Request{r}, k)
		receiptRace(t, s, r, k)
	}
}

func receiptRace(t *testing.T, s store.Store, r *store.Request, k *store.Task) {
	const n = 8
	var wins sync.Map
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			won := false
			err := s.Tx(context.Background(), func(tx store.Tx) error {
				won = false
				k, err := tx.Task(k.ID)
				if err != nil {
					return err
				}
				if _, err := tx.Request(k.RequestID); err != nil {
					return err
				}
				if k.State == store.TaskAnswered {
					return nil // a duplicate
				}
				k.State, k.Outcome, k.AnsweredAt, k.Receipt = store.TaskAnswered, "erased", t0, []byte{byte(i)}
				if err := tx.UpdateTask(k); err != nil {
					return err
				}
				if _, err := tx.AppendLog(k.RequestID, []byte{'r', byte(i)}); err != nil {
					return err
				}
				won = true
				return nil
			})
			if err != nil {
				errs <- err
			} else if won {
				wins.Store(i, true)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var winners []int
	wins.Range(func(k, _ any) bool { winners = append(winners, k.(int)); return true })
	if len(winners) != 1 {
		t.Fatalf("%d transactions recorded the answer (%v), want 1", len(winners), winners)
	}
	_, tasks, err := s.Get(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "stored receipt", tasks[0].Receipt, []byte{byte(winners[0])})
	mustTx(t, s, func(tx store.Tx) error {
		recs, err := tx.RequestLog(r.ID)
		same(t, "log entries", len(recs), 1)
		return err
	})
}

// testCompletedOnce: the answers of all of a request's systems arrive at
// once, each recorded in its own Tx the way the orchestrator does (task,
// request, update, log; then, if every task is answered, the request ends
// and its certificate is issued). Exactly one Tx sees every answer: the
// request ends once, with one certificate, and none is lost.
func testCompletedOnce(t *testing.T, s store.Store) {
	systems := []string{"accounts", "billing", "emailanalytics", "recordings", "subprocessors"}
	for round := range 3 {
		r := newRequest(fmt.Sprintf("req-%d", round), store.StateOpen, t0.AddDate(0, 1, 0))
		var tasks []*store.Task
		for _, sys := range systems {
			tasks = append(tasks, newTask(r.ID, sys, store.TaskPublished, t0.Add(time.Hour)))
		}
		insert(t, s, []*store.Request{r}, tasks...)

		var issued sync.Map
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, len(tasks))
		for i, k := range tasks {
			wg.Go(func() {
				<-start
				done := false
				err := s.Tx(context.Background(), func(tx store.Tx) error {
					done = false
					k, err := tx.Task(k.ID)
					if err != nil {
						return err
					}
					r, err := tx.Request(k.RequestID)
					if err != nil {
						return err
					}
					k.State, k.Outcome, k.AnsweredAt = store.TaskAnswered, "erased", t0
					if err := tx.UpdateTask(k); err != nil {
						return err
					}
					if _, err := tx.AppendLog(r.ID, []byte("answer "+k.System)); err != nil {
						return err
					}
					all, err := tx.Tasks(r.ID)
					if err != nil {
						return err
					}
					for _, k := range all {
						if k.State != store.TaskAnswered {
							return nil
						}
					}
					r.State, r.CompletedAt = store.StateFulfilled, t0
					if err := tx.UpdateRequest(r); err != nil {
						return err
					}
					done = true
					return tx.PutCertificate(r.ID, []byte{byte(i)}, t0)
				})
				if err != nil {
					errs <- err
				} else if done {
					issued.Store(i, true)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		n := 0
		issued.Range(func(_, _ any) bool { n++; return true })
		if n != 1 {
			t.Fatalf("round %d: %d transactions ended the request, want 1", round, n)
		}
		got, _, err := s.Get(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "state", got.State, store.StateFulfilled)
	}
}

func testOutboxClaimAndLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", store.StateOpen, t0.AddDate(0, 1, 0))
	a, b := newTask(r.ID, "accounts", store.TaskPublished, time.Time{}), newTask(r.ID, "billing", store.TaskPublished, time.Time{})
	insert(t, s, []*store.Request{r}, a, b)
	dead := store.OutboxMessage{Topic: "lethe.dead.accounts", ID: "dead:x", Type: "dev.lethe.dead_letter", Key: r.ID, Payload: []byte("no subject"), Created: t0.Add(time.Second)}
	want := []store.OutboxMessage{taskMessage(a, 30*time.Second), taskMessage(b, time.Minute), dead}
	enqueue(t, s, want...)

	claim := func(owner string, limit int, now time.Time) []store.OutboxMessage {
		t.Helper()
		msgs, err := s.ClaimOutbox(ctx, owner, limit, now, now.Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	got := claim("relay-a", 2, t0)
	if len(got) != 2 {
		t.Fatalf("claimed %d messages with limit 2", len(got))
	}
	rest := claim("relay-a", 10, t0)
	got = append(got, rest...)
	if len(got) != 3 {
		t.Fatalf("claimed %d messages in all, want 3", len(got))
	}
	for i := range got {
		if i > 0 && got[i].Seq <= got[i-1].Seq {
			t.Errorf("messages out of order: seq %d after %d", got[i].Seq, got[i-1].Seq)
		}
		m := got[i]
		m.Seq = 0
		same(t, fmt.Sprintf("message %d", i), m, want[i])
	}

	if n := len(claim("relay-b", 10, t0.Add(9*time.Second))); n != 0 {
		t.Errorf("another relay claimed %d leased messages", n)
	}
	if n := len(claim("relay-b", 10, t0.Add(11*time.Second))); n != 3 {
		t.Errorf("after the lease ran out, another relay claimed %d messages, want 3", n)
	}
	// relay-b's lease lasts to t0+21s; released, the messages go at once.
	if err := s.ReleaseOutbox(ctx, "relay-a"); err != nil { // not its lease any more: changes nothing
		t.Fatal(err)
	}
	if n := len(claim("relay-c", 10, t0.Add(12*time.Second))); n != 0 {
		t.Errorf("a release by a relay that lost its lease freed %d messages", n)
	}
	if err := s.ReleaseOutbox(ctx, "relay-b"); err != nil {
		t.Fatal(err)
	}
	if n := len(claim("relay-c", 10, t0.Add(12*time.Second))); n != 3 {
		t.Errorf("after a release, another relay claimed %d messages, want 3", n)
	}
}

// testOutboxConcurrentClaims: relays claiming at once get disjoint batches,
// and every message is published once.
func testOutboxConcurrentClaims(t *testing.T, s store.Store) {
	var msgs []store.OutboxMessage
	for i := range 120 {
		msgs = append(msgs, store.OutboxMessage{Topic: "t", ID: fmt.Sprintf("m%03d", i), Type: "x", Key: fmt.Sprintf("req-%d", i%10), Payload: []byte{byte(i)}, Created: t0})
	}
	enqueue(t, s, msgs...)

	const relays = 4
	var mu sync.Mutex
	claimed := map[string]int{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, relays)
	for i := range relays {
		wg.Go(func() {
			<-start
			owner := fmt.Sprintf("relay-%d", i)
			for {
				batch, err := s.ClaimOutbox(context.Background(), owner, 7, t0, t0.Add(time.Minute))
				if err != nil {
					errs <- err
					return
				}
				if len(batch) == 0 {
					return
				}
				seqs := make([]int64, len(batch))
				mu.Lock()
				for j, m := range batch {
					claimed[m.ID]++
					seqs[j] = m.Seq
				}
				mu.Unlock()
				if !slices.IsSorted(seqs) {
					errs <- fmt.Errorf("batch out of order: %v", seqs)
					return
				}
				if err := s.MarkPublished(context.Background(), seqs, t0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("message %s claimed %d times", id, n)
		}
	}
	same(t, "messages claimed", len(claimed), len(msgs))
}

func testMarkPublished(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", store.StateOpen, t0.AddDate(0, 1, 0))
	waiting := newTask(r.ID, "accounts", store.TaskPublished, time.Time{})
	started := newTask(r.ID, "billing", store.TaskPublished, t0.Add(5*time.Minute)) // its wait already runs
	answered := newTask(r.ID, "recordings", store.TaskAnswered, time.Time{})
	insert(t, s, []*store.Request{r}, waiting, started, answered)
	enqueue(t, s, taskMessage(waiting, 30*time.Second), taskMessage(started, 30*time.Second), taskMessage(answered, 30*time.Second),
		store.OutboxMessage{Topic: "lethe.dead.x", ID: "dead:1", Type: "x", Key: r.ID, Payload: []byte("p"), Created: t0})

	msgs, err := s.ClaimOutbox(ctx, "relay", 10, t0, t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, m := range msgs {
		seqs = append(seqs, m.Seq)
	}
	at := t0.Add(2 * time.Second)
	if err := s.MarkPublished(ctx, seqs, at); err != nil {
		t.Fatal(err)
	}
	_, tasks, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	waiting.NextAttemptAt = at.Add(30 * time.Second)
	same(t, "tasks after their messages were published", tasks, []*store.Task{waiting, started, answered})

	again, err := s.ClaimOutbox(ctx, "relay-2", 10, t0.Add(time.Hour), t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	same(t, "published messages claimed again", len(again), 0)
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "outbox depth", st.OutboxDepth, 0)
}

func testForgetTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	r1, r2 := newRequest("req-1", store.StateOpen, t0.AddDate(0, 1, 0)), newRequest("req-2", store.StateOpen, t0.AddDate(0, 1, 0))
	a, b, c := newTask(r1.ID, "accounts", store.TaskPublished, time.Time{}), newTask(r1.ID, "billing", store.TaskPublished, time.Time{}),
		newTask(r2.ID, "accounts", store.TaskPublished, time.Time{})
	insert(t, s, []*store.Request{r1, r2}, a, b, c)
	enqueue(t, s, taskMessage(a, time.Second))
	first, err := s.ClaimOutbox(ctx, "relay", 10, t0, t0.Add(time.Second))
	if err != nil || len(first) != 1 {
		t.Fatalf("claim: %d messages, %v", len(first), err)
	}
	if err := s.MarkPublished(ctx, []int64{first[0].Seq}, t0); err != nil {
		t.Fatal(err)
	}
	dead := store.OutboxMessage{Topic: "lethe.dead.billing", ID: "dead:b", Type: "x", Key: r1.ID, Payload: []byte("no subject"), Created: t0}
	enqueue(t, s, taskMessage(b, time.Second), dead, taskMessage(c, time.Second))

	mustTx(t, s, func(tx store.Tx) error { return tx.ForgetTasks(r1.ID) })
	left, err := s.ClaimOutbox(ctx, "relay", 10, t0, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range left {
		ids = append(ids, m.ID)
	}
	same(t, "messages left after ForgetTasks", ids, []string{dead.ID, taskMessage(c, 0).ID})
}

func ids(reqs []*store.Request) []string {
	out := []string{}
	for _, r := range reqs {
		out = append(out, r.ID)
	}
	return out
}

// listAll pages through q, checking each page's size.
func listAll(t *testing.T, s store.Store, q store.ListQuery) []string {
	t.Helper()
	all := []string{}
	for page := 0; ; page++ {
		reqs, next, err := s.List(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(reqs) > q.Limit || (next != "" && len(reqs) != q.Limit) {
			t.Errorf("page %d of %+v: %d requests (limit %d), next %q", page, q, len(reqs), q.Limit, next)
		}
		all = append(all, ids(reqs)...)
		if next == "" {
			return all
		}
		if page > 100 {
			t.Fatal("List does not end")
		}
		q.After = next
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := t.Context()
	var reqs []*store.Request
	for i := range 23 {
		state := []string{store.StateOpen, store.StateFulfilled, store.StatePendingVerification}[i%3]
		// Several requests share a deadline: the id breaks the tie.
		r := newRequest(fmt.Sprintf("req-%02d", (i*7)%23), state, t0.Add(time.Duration(i/4)*time.Hour))
		if i%4 == 0 {
			r.Tenant = "other"
		}
		r.SourceRef = fmt.Sprintf("ref-%d", i)
		reqs = append(reqs, r)
	}
	insert(t, s, reqs)
	sorted := slices.Clone(reqs)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		return a.Deadline.Before(b.Deadline) || a.Deadline.Equal(b.Deadline) && a.ID < b.ID
	})
	for _, tc := range []struct {
		name  string
		q     store.ListQuery
		match func(r *store.Request) bool
	}{
		{"all", store.ListQuery{}, func(*store.Request) bool { return true }},
		{"state", store.ListQuery{State: store.StateOpen}, func(r *store.Request) bool { return r.State == store.StateOpen }},
		{"tenant", store.ListQuery{Tenant: "other"}, func(r *store.Request) bool { return r.Tenant == "other" }},
		{"state and tenant", store.ListQuery{State: store.StateFulfilled, Tenant: "demo"},
			func(r *store.Request) bool { return r.State == store.StateFulfilled && r.Tenant == "demo" }},
		{"source ref", store.ListQuery{SourceRef: "ref-5"}, func(r *store.Request) bool { return r.SourceRef == "ref-5" }},
		{"nothing", store.ListQuery{State: store.StateFailed}, func(*store.Request) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []*store.Request
			for _, r := range sorted {
				if tc.match(r) {
					want = append(want, r)
				}
			}
			for _, limit := range []int{1, 3, 50} {
				q := tc.q
				q.Limit = limit
				same(t, fmt.Sprintf("ids, limit %d", limit), listAll(t, s, q), ids(want))
			}
			// Requests come back whole.
			got, _, err := s.List(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				want = nil
			}
			same(t, "requests, default limit", got, want)
		})
	}
	for _, bad := range []string{"!!!", "bm9jb2xvbg", "eDpyZXEtMQ"} { // "nocolon", "x:req-1"
		_, _, err := s.List(ctx, store.ListQuery{After: bad})
		wantErr(t, "cursor "+bad, err, store.ErrBadCursor)
	}
}

// testListCursorStable: a cursor stays valid while requests come and go;
// every request present throughout is listed once.
func testListCursorStable(t *testing.T, s store.Store) {
	ctx := t.Context()
	var reqs []*store.Request
	for i := range 12 {
		reqs = append(reqs, newRequest(fmt.Sprintf("req-%02d", i), store.StateOpen, t0.Add(time.Duration(i)*time.Hour)))
	}
	insert(t, s, reqs)
	page, next, err := s.List(ctx, store.ListQuery{State: store.StateOpen, Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	seen := ids(page)
	// Meanwhile: one arrives before the cursor, one after the end, and one
	// still to come ends.
	early, late := newRequest("req-early", store.StateOpen, t0.Add(-time.Hour)), newRequest("req-late", store.StateOpen, t0.Add(100*time.Hour))
	insert(t, s, []*store.Request{early, late})
	ended := reqs[8]
	ended.State = store.StateFulfilled
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateRequest(ended) })
	seen = append(seen, listAll(t, s, store.ListQuery{State: store.StateOpen, Limit: 4, After: next})...)

	var want []string
	for _, r := range reqs {
		if r != ended {
			want = append(want, r.ID)
		}
	}
	same(t, "requests listed across pages", seen, append(want, late.ID))
}

// memLog is a tlog hash storage in memory, to check the store's against.
type memLog []tlog.Hash

func (m memLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m[x]
	}
	return out, nil
}

// checkTree compares the store's tree with one built in memory from the
// entries in index order, and checks an inclusion proof of each.
func checkTree(t *testing.T, s store.Store, entries [][]byte) {
	t.Helper()
	var mem memLog
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, mem)
		if err != nil {
			t.Fatal(err)
		}
		mem = append(mem, hs...)
	}
	n := int64(len(entries))
	want, err := tlog.TreeHash(n, mem)
	if err != nil {
		t.Fatal(err)
	}
	mustTx(t, s, func(tx store.Tx) error {
		size, err := tx.LogSize()
		if err != nil {
			return err
		}
		same(t, "log size", size, n)
		got, err := tlog.TreeHash(size, tx)
		if err != nil {
			return err
		}
		if got != want {
			t.Errorf("tree hash %v, computed from the entries %v", got, want)
		}
		for i, e := range entries {
			p, err := tlog.ProveRecord(n, int64(i), tx)
			if err != nil {
				return err
			}
			if err := tlog.CheckRecord(p, n, want, int64(i), tlog.RecordHash(e)); err != nil {
				t.Errorf("inclusion proof of entry %d: %v", i, err)
			}
		}
		return nil
	})
}

func testLog(t *testing.T, s store.Store) {
	var entries [][]byte
	mustTx(t, s, func(tx store.Tx) error {
		for i, req := range []string{"req-1", "req-2", "req-1"} {
			e := fmt.Appendf(nil, "entry %d of %s", i, req)
			idx, err := tx.AppendLog(req, e)
			if err != nil {
				return err
			}
			same(t, "index", idx, int64(i))
			entries = append(entries, e)
			n, err := tx.LogSize()
			same(t, "log size in the appending Tx", n, int64(i+1))
			if err != nil {
				return err
			}
		}
		recs, err := tx.RequestLog("req-1")
		same(t, "RequestLog in the appending Tx", recs, []store.LogRecord{{Index: 0, Data: entries[0]}, {Index: 2, Data: entries[2]}})
		return err
	})
	checkTree(t, s, entries)
	mustTx(t, s, func(tx store.Tx) error {
		recs, err := tx.RequestLog("req-2")
		same(t, "RequestLog", recs, []store.LogRecord{{Index: 1, Data: entries[1]}})
		if err != nil {
			return err
		}
		recs, err = tx.RequestLog("req-unknown")
		same(t, "RequestLog of a request without entries", len(recs), 0)
		return err
	})
}

// testLogConcurrentAppends: transactions appending at once get dense
// indexes, and the tree over the stored hashes is the one the entries make.
func testLogConcurrentAppends(t *testing.T, s store.Store) {
	const workers, txs, perTx = 4, 8, 2
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	indexes := map[int64]string{}
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			<-start
			req := fmt.Sprintf("req-%d", w)
			for i := range txs {
				got := map[int64]string{}
				err := s.Tx(context.Background(), func(tx store.Tx) error {
					clear(got)
					for j := range perTx {
						e := fmt.Sprintf("%s tx %d entry %d", req, i, j)
						idx, err := tx.AppendLog(req, []byte(e))
						if err != nil {
							return err
						}
						got[idx] = e
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for idx, e := range got {
					if prev, dup := indexes[idx]; dup {
						errs <- fmt.Errorf("index %d given to %q and %q", idx, prev, e)
					}
					indexes[idx] = e
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := workers * txs * perTx
	entries := make([][]byte, n)
	for idx, e := range indexes {
		if idx < 0 || idx >= int64(n) {
			t.Fatalf("index %d out of 0..%d", idx, n-1)
		}
		entries[idx] = []byte(e)
	}
	same(t, "distinct indexes", len(indexes), n)
	mustTx(t, s, func(tx store.Tx) error {
		for w := range workers {
			req := fmt.Sprintf("req-%d", w)
			recs, err := tx.RequestLog(req)
			if err != nil {
				return err
			}
			same(t, "entries of "+req, len(recs), txs*perTx)
			for i, rec := range recs {
				if i > 0 && rec.Index <= recs[i-1].Index {
					t.Errorf("RequestLog(%s) out of order", req)
				}
				if !bytes.Equal(rec.Data, entries[rec.Index]) {
					t.Errorf("entry %d: %q, appended %q", rec.Index, rec.Data, entries[rec.Index])
				}
			}
		}
		return nil
	})
	checkTree(t, s, entries)
}

func testCertificates(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Certificate(ctx, "req-1")
	wantErr(t, "certificate of an unknown request", err, store.ErrNotFound)
	insert(t, s, []*store.Request{newRequest("req-1", store.StateFulfilled, t0), newRequest("req-2", store.StateOpen, t0)})
	_, err = s.Certificate(ctx, "req-2")
	wantErr(t, "certificate of a request without one", err, store.ErrNotFound)
	for _, cert := range [][]byte{[]byte(`{"first":true}`), []byte(`{"second":true}`)} {
		mustTx(t, s, func(tx store.Tx) error { return tx.PutCertificate("req-1", cert, t0) })
		got, err := s.Certificate(ctx, "req-1")
		if err != nil {
			t.Fatal(err)
		}
		same(t, "certificate", string(got), string(cert))
	}
}

func testStats(t *testing.T, s store.Store) {
	ctx := t.Context()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "stats of an empty store", st, store.Stats{Requests: map[[2]string]int{}})

	export := newRequest("req-3", store.StateFulfilled, t0)
	export.Type = "export"
	insert(t, s, []*store.Request{newRequest("req-1", store.StateOpen, t0), newRequest("req-2", store.StateOpen, t0), export})
	enqueue(t, s, store.OutboxMessage{Topic: "t", ID: "m1", Type: "x", Key: "req-1", Payload: []byte("p"), Created: t0.Add(time.Second)},
		store.OutboxMessage{Topic: "t", ID: "m2", Type: "x", Key: "req-2", Payload: []byte("p"), Created: t0.Add(2 * time.Second)})
	st, err = s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "stats", st, store.Stats{
		Requests:    map[[2]string]int{{store.StateOpen, "erasure"}: 2, {store.StateFulfilled, "export"}: 1},
		OutboxDepth: 2, OldestUnpublished: t0.Add(time.Second),
	})
	msgs, err := s.ClaimOutbox(ctx, "relay", 1, t0, t0.Add(time.Second))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("claim: %d messages, %v", len(msgs), err)
	}
	if err := s.MarkPublished(ctx, []int64{msgs[0].Seq}, t0); err != nil {
		t.Fatal(err)
	}
	st, err = s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "outbox after one was published", [2]any{st.OutboxDepth, st.OldestUnpublished}, [2]any{1, t0.Add(2 * time.Second)})
}

func testCountOverdue(t *testing.T, s store.Store) {
	day := 24 * time.Hour
	insert(t, s, []*store.Request{
		newRequest("req-1", store.StateOpen, t0.Add(-time.Millisecond)),   // overdue
		newRequest("req-2", store.StatePendingVerification, t0.Add(-day)), // overdue
		newRequest("req-3", store.StateOpen, t0),                          // due now, not over
		newRequest("req-4", store.StateOpen, t0.Add(day)),                 // not yet
		newRequest("req-5", store.StateFulfilled, t0.Add(-day)),           // ended
		newRequest("req-6", store.StateFailed, t0.Add(-2*day)),            // ended
		newRequest("req-7", store.StatePartiallyRetained, t0.Add(-3*day)), // ended
	})
	for _, tc := range []struct {
		now  time.Time
		want int
	}{{t0, 2}, {t0.Add(-2 * day), 0}, {t0.Add(time.Millisecond), 3}, {t0.Add(2 * day), 4}} {
		n, err := s.CountOverdue(t.Context(), tc.now)
		if err != nil {
			t.Fatal(err)
		}
		same(t, fmt.Sprintf("overdue at %v", tc.now), n, tc.want)
	}
}
