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
		{"RequestFields", testRequestFields},
		{"DeferredTasks", testDeferredTasks},
		{"RequestCounts", testRequestCounts},
		{"RequestCountsConcurrent", testRequestCountsConcurrent},
		{"StateChangeAroundLog", testStateChangeAroundLog},
		{"Notices", testNotices},
		{"NoticeClaimAndLease", testNoticeClaimAndLease},
		{"NoticesConcurrentClaims", testNoticesConcurrentClaims},
		{"Pressure", testPressure},
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

	claimed := claimConcurrently(t, "relay", func(owner string) ([]string, error) {
		batch, err := s.ClaimOutbox(context.Background(), owner, 7, t0, t0.Add(time.Minute))
		if err != nil || len(batch) == 0 {
			return nil, err
		}
		ids, seqs := make([]string, len(batch)), make([]int64, len(batch))
		for j, m := range batch {
			ids[j], seqs[j] = m.ID, m.Seq
		}
		if !slices.IsSorted(seqs) {
			return nil, fmt.Errorf("batch out of order: %v", seqs)
		}
		return ids, s.MarkPublished(context.Background(), seqs, t0)
	})
	same(t, "messages claimed", len(claimed), len(msgs))
}

// claimConcurrently runs four workers named prefix-N that call claim until
// it returns nothing, and fails the test on an error or on an id claimed
// twice. It returns the ids claimed.
func claimConcurrently(t *testing.T, prefix string, claim func(owner string) ([]string, error)) map[string]int {
	t.Helper()
	const workers = 4
	var mu sync.Mutex
	claimed := map[string]int{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			<-start
			owner := fmt.Sprintf("%s-%d", prefix, i)
			for {
				ids, err := claim(owner)
				if err != nil {
					errs <- err
					return
				}
				if len(ids) == 0 {
					return
				}
				mu.Lock()
				for _, id := range ids {
					claimed[id]++
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
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
	return claimed
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

// readRequest reads a request every way the store offers (in a Tx, by
// source reference, Get, List) and checks that each gives want.
func readRequest(t *testing.T, s store.Store, step string, want *store.Request) {
	t.Helper()
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Request(want.ID)
		if err != nil {
			return err
		}
		same(t, step+": Tx.Request", got, want)
		got, err = tx.RequestBySourceRef(want.SourceRef)
		if err != nil {
			return err
		}
		same(t, step+": Tx.RequestBySourceRef", got, want)
		return nil
	})
	got, _, err := s.Get(t.Context(), want.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, step+": Get", got, want)
	list, _, err := s.List(t.Context(), store.ListQuery{SourceRef: want.SourceRef})
	if err != nil {
		t.Fatal(err)
	}
	same(t, step+": List", list, []*store.Request{want})
}

// testRequestFields: a request's deadline policy, extension and first
// answer come back as written, through every read, after an insert and
// after an update; zero values stay zero. The deadline policy is written
// once, with the request (as its tenant and type are).
func testRequestFields(t *testing.T, s store.Store) {
	policy := `{"zone":"Europe/Berlin","roll":"next_business_day","holidays":["2026-12-25","2026-12-26"]}`
	deadline := t0.AddDate(0, 1, 0)
	extend := func(r *store.Request) {
		r.OriginalDeadline, r.Deadline = r.Deadline, r.Deadline.AddDate(0, 2, 0)
		r.ExtendedAt, r.ExtensionReason = t0.Add(time.Hour+7*time.Millisecond), "complex request: 14 systems, 3 of them archives"
		r.UpdatedAt = r.ExtendedAt
	}
	answer := func(state string) func(r *store.Request) {
		return func(r *store.Request) {
			r.State, r.SubjectEmail, r.SubjectUserID = state, "", ""
			r.UpdatedAt, r.CompletedAt, r.AnsweredAt = t0.Add(2*time.Hour), t0.Add(2*time.Hour), t0.Add(2*time.Hour+time.Millisecond)
		}
	}
	tests := []struct {
		name   string
		insert func(r *store.Request) // sets fields before the insert; nil: none
		update func(r *store.Request) // changes the request for UpdateRequest
	}{
		{"zero throughout", nil, func(r *store.Request) { r.UpdatedAt = t0.Add(time.Minute) }},
		{"policy at insert, kept by an update", func(r *store.Request) { r.DeadlinePolicy = policy },
			func(r *store.Request) { r.State, r.UpdatedAt = store.StateOpen, t0.Add(time.Minute) }},
		{"extended by an update", func(r *store.Request) { r.DeadlinePolicy = policy }, extend},
		{"answered by an update", nil, answer(store.StatePartiallyRetained)},
		{"all set at insert, answered by an update", func(r *store.Request) {
			r.DeadlinePolicy = policy
			extend(r)
		}, answer(store.StateFulfilled)},
		{"all set at insert, cleared by an update", func(r *store.Request) {
			r.DeadlinePolicy = policy
			extend(r)
			answer(store.StateFulfilled)(r)
		}, func(r *store.Request) {
			r.AnsweredAt, r.OriginalDeadline, r.ExtendedAt, r.ExtensionReason = time.Time{}, time.Time{}, time.Time{}, ""
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequest(fmt.Sprintf("req-%d", i), store.StatePendingVerification, deadline)
			r.SourceRef = fmt.Sprintf("ref-%d", i)
			if tc.insert != nil {
				tc.insert(r)
			}
			insert(t, s, []*store.Request{r})
			readRequest(t, s, "after the insert", r)
			tc.update(r)
			mustTx(t, s, func(tx store.Tx) error { return tx.UpdateRequest(r) })
			readRequest(t, s, "after the update", r)
		})
	}
}

// testDeferredTasks: a task's round start comes back as written, and a
// deferred erasure is due, like a retry, once its date (NextAttemptAt, its
// retain-until) is not after now.
func testDeferredTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", store.StatePartiallyRetained, t0.AddDate(0, -1, 0))
	until := t0.AddDate(1, 0, 0)
	deferred := newTask(r.ID, "billing", store.TaskDeferred, until)
	deferred.Attempts, deferred.Outcome, deferred.LegalBasis, deferred.RetainUntil = 2, "retained", "tax law", until
	deferred.AnsweredAt, deferred.Counts = t0.AddDate(0, 0, -3), map[string]int64{"invoices": 12}
	// A follow-up of an earlier deferral, in its own round.
	followUp := newTask(r.ID, "accounts", store.TaskRetrying, until.Add(-time.Millisecond))
	followUp.Attempts, followUp.RoundStart, followUp.RetainUntil = 4, 3, t0.AddDate(0, 0, -1)
	answered := newTask(r.ID, "recordings", store.TaskAnswered, time.Time{})
	insert(t, s, []*store.Request{r}, deferred, followUp, answered)

	_, tasks, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "tasks", tasks, []*store.Task{followUp, deferred, answered})
	for _, tc := range []struct {
		name  string
		now   time.Time
		limit int
		want  []*store.Task
	}{
		{"before the date", until.Add(-time.Millisecond), 10, []*store.Task{followUp}},
		{"at the date", until, 10, []*store.Task{followUp, deferred}},
		{"after the date", until.AddDate(0, 0, 1), 10, []*store.Task{followUp, deferred}},
		{"after the date, limit 1", until.AddDate(0, 0, 1), 1, []*store.Task{followUp}},
	} {
		mustTx(t, s, func(tx store.Tx) error {
			got, err := tx.DueTasks(tc.now, tc.limit)
			same(t, "DueTasks "+tc.name, got, tc.want)
			return err
		})
	}

	// The follow-up round begins: the task is published again, with the
	// attempts so far as its round start.
	deferred.State, deferred.RoundStart, deferred.Attempts, deferred.NextAttemptAt, deferred.Detail = store.TaskPublished, 2, 3, time.Time{}, ""
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateTask(deferred) })
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Task(deferred.ID)
		same(t, "task in its follow-up round", got, deferred)
		if err != nil {
			return err
		}
		due, err := tx.DueTasks(until.AddDate(0, 0, 1), 10)
		same(t, "DueTasks once the follow-up waits for its publication", due, []*store.Task{followUp})
		return err
	})
}

// countRequests counts the requests by (state, type) from the requests
// themselves, paging through List.
func countRequests(t *testing.T, s store.Store) map[[2]string]int {
	t.Helper()
	out := map[[2]string]int{}
	q := store.ListQuery{Limit: 7}
	for {
		reqs, next, err := s.List(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			out[[2]string{r.State, r.Type}]++
		}
		if next == "" {
			return out
		}
		q.After = next
	}
}

// setState changes the state of the requests ids, in order, in tx.
func setState(tx store.Tx, state string, ids ...string) error {
	for _, id := range ids {
		r, err := tx.Request(id)
		if err != nil {
			return err
		}
		r.State, r.UpdatedAt = state, r.UpdatedAt.Add(time.Second)
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
	}
	return nil
}

// testRequestCounts: Stats' request counts, which the store keeps as
// requests are written rather than counting them, match the requests
// after every kind of write, rolled back or not; a (state, type) without
// requests is absent.
func testRequestCounts(t *testing.T, s store.Store) {
	typed := func(id, typ, state string) *store.Request {
		r := newRequest(id, state, t0.AddDate(0, 1, 0))
		r.Type = typ
		return r
	}
	steps := []struct {
		name string
		fn   func(tx store.Tx) error
		want map[[2]string]int
	}{
		{"inserts", func(tx store.Tx) error {
			for _, r := range []*store.Request{
				typed("e1", "erasure", store.StatePendingVerification), typed("e2", "erasure", store.StatePendingVerification),
				typed("e3", "erasure", store.StatePendingVerification), typed("e4", "erasure", store.StateOpen),
				typed("x1", "export", store.StatePendingVerification), typed("x2", "export", store.StateFulfilled),
			} {
				if err := tx.InsertRequest(r); err != nil {
					return err
				}
			}
			return nil
		}, map[[2]string]int{
			{store.StatePendingVerification, "erasure"}: 3, {store.StateOpen, "erasure"}: 1,
			{store.StatePendingVerification, "export"}: 1, {store.StateFulfilled, "export"}: 1,
		}},
		{"state changes of both types", func(tx store.Tx) error {
			if err := setState(tx, store.StateOpen, "e1", "x1"); err != nil {
				return err
			}
			return setState(tx, store.StatePartiallyRetained, "e4")
		}, map[[2]string]int{
			{store.StatePendingVerification, "erasure"}: 2, {store.StateOpen, "erasure"}: 1, {store.StatePartiallyRetained, "erasure"}: 1,
			{store.StateOpen, "export"}: 1, {store.StateFulfilled, "export"}: 1,
		}},
		{"updates that keep the state", func(tx store.Tx) error {
			if err := setState(tx, store.StateOpen, "e1", "x1"); err != nil {
				return err
			}
			return setState(tx, store.StatePendingVerification, "e2")
		}, nil},
		{"a count drops to zero", func(tx store.Tx) error { return setState(tx, store.StateFulfilled, "x1") }, map[[2]string]int{
			{store.StatePendingVerification, "erasure"}: 2, {store.StateOpen, "erasure"}: 1, {store.StatePartiallyRetained, "erasure"}: 1,
			{store.StateFulfilled, "export"}: 2,
		}},
		{"one request through several states in one Tx", func(tx store.Tx) error {
			for _, state := range []string{store.StateOpen, store.StatePartiallyRetained, store.StateFulfilled} {
				if err := setState(tx, state, "e2"); err != nil {
					return err
				}
			}
			return nil
		}, map[[2]string]int{
			{store.StatePendingVerification, "erasure"}: 1, {store.StateOpen, "erasure"}: 1, {store.StatePartiallyRetained, "erasure"}: 1,
			{store.StateFulfilled, "erasure"}: 1, {store.StateFulfilled, "export"}: 2,
		}},
		{"a refused duplicate", func(tx store.Tx) error {
			err := tx.InsertRequest(typed("e1", "export", store.StateOpen))
			if !errors.Is(err, store.ErrDuplicate) {
				return fmt.Errorf("insert of a known id: %v, want ErrDuplicate", err)
			}
			return nil
		}, nil},
		{"a changed state back and forth", func(tx store.Tx) error {
			if err := setState(tx, store.StateFailed, "e1"); err != nil {
				return err
			}
			return setState(tx, store.StateOpen, "e1")
		}, nil},
	}
	var want map[[2]string]int
	for _, step := range steps {
		mustTx(t, s, step.fn)
		if step.want != nil {
			want = step.want
		}
		st, err := s.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		same(t, step.name+": counts", st.Requests, want)
		same(t, step.name+": counts against the requests", st.Requests, countRequests(t, s))
	}

	// A rolled-back change counts for nothing.
	boom := errors.New("boom")
	err := s.Tx(t.Context(), func(tx store.Tx) error {
		if err := tx.InsertRequest(typed("x9", "export", store.StateOpen)); err != nil {
			return err
		}
		if err := setState(tx, store.StateFailed, "e1", "e3", "e4"); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "Tx", err, boom)
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	same(t, "counts after a rollback", st.Requests, want)
}

// testRequestCountsConcurrent: transactions at once move requests of both
// types through their states, as replicas do; the counts match the
// requests after all of them.
func testRequestCountsConcurrent(t *testing.T, s store.Store) {
	const n = 40
	var reqs []*store.Request
	for i := range n {
		r := newRequest(fmt.Sprintf("req-%02d", i), store.StatePendingVerification, t0.AddDate(0, 1, 0))
		r.Type = []string{"erasure", "export"}[i%2]
		reqs = append(reqs, r)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, r := range reqs {
		wg.Go(func() {
			<-start
			// Each request goes its own way; the states are always changed
			// in the order a request moves through them.
			path := [][]string{
				{store.StateOpen},
				{store.StateOpen, store.StateFulfilled},
				{store.StateOpen, store.StatePartiallyRetained, store.StateFulfilled},
				{store.StateOpen, store.StateFailed},
				{},
			}[i%5]
			err := s.Tx(context.Background(), func(tx store.Tx) error { return tx.InsertRequest(r) })
			for _, state := range path {
				if err != nil {
					break
				}
				err = s.Tx(context.Background(), func(tx store.Tx) error { return setState(tx, state, r.ID) })
			}
			if err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	same(t, "counts against the requests", st.Requests, countRequests(t, s))
	total := 0
	for _, c := range st.Requests {
		total += c
	}
	same(t, "requests counted", total, n)
}

// testStateChangeAroundLog: transactions that lock in the documented
// order (request, tasks, log) queue rather than deadlock, whether they
// change a request's state before appending to the log (as Verify does)
// or after (as a receipt that completes its request does).
func testStateChangeAroundLog(t *testing.T, s store.Store) {
	a, b := newRequest("req-a", store.StatePendingVerification, t0.AddDate(0, 1, 0)), newRequest("req-b", store.StateOpen, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{a, b})
	aChanged, bAppended := make(chan struct{}), make(chan struct{})
	// meet lets the other transaction reach its point before going on; on
	// an engine that runs one transaction at a time it cannot, and the
	// wait ends.
	meet := func(done, other chan struct{}) {
		select {
		case <-done:
		default:
			close(done)
		}
		select {
		case <-other:
		case <-time.After(300 * time.Millisecond):
		}
	}
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() {
		errA = s.Tx(context.Background(), func(tx store.Tx) error {
			if err := setState(tx, store.StateOpen, a.ID); err != nil {
				return err
			}
			meet(aChanged, bAppended)
			_, err := tx.AppendLog(a.ID, []byte("verified a"))
			return err
		})
	})
	wg.Go(func() {
		errB = s.Tx(context.Background(), func(tx store.Tx) error {
			if _, err := tx.Request(b.ID); err != nil {
				return err
			}
			if _, err := tx.AppendLog(b.ID, []byte("receipt b")); err != nil {
				return err
			}
			meet(bAppended, aChanged)
			return setState(tx, store.StateFulfilled, b.ID)
		})
	})
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("state change then log: %v; log then state change: %v", errA, errB)
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	same(t, "counts", st.Requests, map[[2]string]int{{store.StateOpen, "erasure"}: 1, {store.StateFulfilled, "erasure"}: 1})
}

func testNotices(t *testing.T, s store.Store) {
	r := newRequest("req-1", store.StateOpen, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{r})
	fresh := &store.Notice{ID: "notice-1", RequestID: r.ID, Kind: "extension", Payload: []byte(`{"to":"person-0001@example.com"}`),
		CreatedAt: t0, NextAttemptAt: t0}
	// Delivered on the bus; the webhook failed twice and is tried again.
	retried := &store.Notice{ID: "notice-2", RequestID: r.ID, Kind: "extension", Payload: []byte{0, 1, 0xff}, CreatedAt: t0.Add(time.Millisecond),
		BusAt: t0.Add(time.Second), Attempts: 2, NextAttemptAt: t0.Add(time.Minute), LastError: "webhook: 503 Service Unavailable"}
	// Delivered everywhere: no payload left.
	done := &store.Notice{ID: "notice-3", RequestID: r.ID, Kind: "extension", CreatedAt: t0, BusAt: t0.Add(time.Second), WebhookAt: t0.Add(2 * time.Second)}
	mustTx(t, s, func(tx store.Tx) error {
		for _, n := range []*store.Notice{fresh, retried} {
			if err := tx.InsertNotice(n); err != nil {
				return err
			}
		}
		wantErr(t, "insert a known notice", tx.InsertNotice(&store.Notice{ID: fresh.ID, RequestID: r.ID, Kind: "other", CreatedAt: t0}), store.ErrDuplicate)
		return tx.InsertNotice(done) // the Tx goes on
	})
	read := func(step string, want ...*store.Notice) {
		t.Helper()
		mustTx(t, s, func(tx store.Tx) error {
			for _, n := range want {
				got, err := tx.Notice(n.ID)
				if err != nil {
					return err
				}
				same(t, step+": notice "+n.ID, got, n)
			}
			_, err := tx.Notice("notice-unknown")
			wantErr(t, "unknown notice", err, store.ErrNotFound)
			return nil
		})
	}
	// DeepEqual tells a nil payload from an empty one: done's stays nil.
	read("after the insert", fresh, retried, done)

	// Every field survives an update, and a cleared payload reads back nil.
	fresh.BusAt, fresh.Attempts, fresh.NextAttemptAt, fresh.LastError = t0.Add(3*time.Second), 1, t0.Add(30*time.Second), "webhook: timeout"
	retried.Payload, retried.WebhookAt, retried.NextAttemptAt, retried.LastError = nil, t0.Add(2*time.Minute), time.Time{}, ""
	mustTx(t, s, func(tx store.Tx) error {
		for _, n := range []*store.Notice{fresh, retried} {
			if err := tx.UpdateNotice(n); err != nil {
				return err
			}
		}
		return nil
	})
	read("after the update", fresh, retried, done)
}

// testNoticeClaimAndLease: notices due come back in the order they are
// due, leased: another deliverer gets them once the lease runs out, or at
// once when the delivery attempt is recorded; a notice with nothing left
// to deliver never comes back.
func testNoticeClaimAndLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", store.StateOpen, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{r})
	notice := func(id string, next time.Time) *store.Notice {
		return &store.Notice{ID: id, RequestID: r.ID, Kind: "extension", Payload: []byte("notice " + id), CreatedAt: t0.Add(-time.Hour), NextAttemptAt: next}
	}
	// Inserted out of order.
	c, a, later, b := notice("n-c", t0), notice("n-a", t0.Add(-2*time.Minute)), notice("n-later", t0.Add(time.Millisecond)), notice("n-b", t0.Add(-time.Minute))
	delivered := notice("n-delivered", time.Time{})
	delivered.Payload, delivered.BusAt = nil, t0.Add(-time.Hour)
	mustTx(t, s, func(tx store.Tx) error {
		for _, n := range []*store.Notice{c, a, later, delivered, b} {
			if err := tx.InsertNotice(n); err != nil {
				return err
			}
		}
		return nil
	})

	claim := func(owner string, limit int, now time.Time) []store.Notice {
		t.Helper()
		got, err := s.ClaimNotices(ctx, owner, limit, now, now.Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return noticeValues(got...)
	}
	same(t, "first claim, limit 2", claim("notifier-a", 2, t0), noticeValues(a, b))
	same(t, "second claim", claim("notifier-a", 10, t0), noticeValues(c))
	same(t, "claim by another owner within the lease", claim("notifier-b", 10, t0.Add(9*time.Second)), noticeValues(later))
	same(t, "claim by another owner after the lease", claim("notifier-c", 10, t0.Add(11*time.Second)), noticeValues(a, b, c))

	// notifier-c's lease lasts to t0+21s. It delivers a, and b fails and is
	// due again at once: recording the attempt ends the lease.
	a.Payload, a.BusAt, a.WebhookAt, a.NextAttemptAt = nil, t0.Add(12*time.Second), t0.Add(12*time.Second), time.Time{}
	b.Attempts, b.LastError, b.NextAttemptAt = 1, "webhook: 500", t0.Add(12*time.Second)
	mustTx(t, s, func(tx store.Tx) error {
		if err := tx.UpdateNotice(a); err != nil {
			return err
		}
		return tx.UpdateNotice(b)
	})
	same(t, "claim after the attempts were recorded", claim("notifier-d", 10, t0.Add(12*time.Second)), noticeValues(b))
	same(t, "claim much later", claim("notifier-e", 10, t0.Add(time.Hour)), noticeValues(c, later, b))
	same(t, "claim years later", claim("notifier-f", 10, t0.AddDate(5, 0, 0)), noticeValues(c, later, b))
}

// noticeValues returns the notices themselves, for messages that show
// them rather than their addresses.
func noticeValues(ns ...*store.Notice) []store.Notice {
	out := []store.Notice{}
	for _, n := range ns {
		out = append(out, *n)
	}
	return out
}

// testNoticesConcurrentClaims: deliverers claiming at once get disjoint
// batches, and every notice is delivered once.
func testNoticesConcurrentClaims(t *testing.T, s store.Store) {
	r := newRequest("req-1", store.StateOpen, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{r})
	const total = 90
	mustTx(t, s, func(tx store.Tx) error {
		for i := range total {
			n := &store.Notice{ID: fmt.Sprintf("n-%03d", i), RequestID: r.ID, Kind: "extension", Payload: []byte{byte(i)},
				CreatedAt: t0, NextAttemptAt: t0.Add(-time.Duration(i) * time.Millisecond)}
			if err := tx.InsertNotice(n); err != nil {
				return err
			}
		}
		return nil
	})
	claimed := claimConcurrently(t, "notifier", func(owner string) ([]string, error) {
		batch, err := s.ClaimNotices(context.Background(), owner, 7, t0, t0.Add(time.Minute))
		if err != nil || len(batch) == 0 {
			return nil, err
		}
		if !slices.IsSortedFunc(batch, func(a, b *store.Notice) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) }) {
			return nil, errors.New("batch out of order")
		}
		ids := make([]string, len(batch))
		err = s.Tx(context.Background(), func(tx store.Tx) error {
			for j, n := range batch {
				ids[j] = n.ID
				n.Payload, n.BusAt, n.NextAttemptAt = nil, t0, time.Time{}
				if err := tx.UpdateNotice(n); err != nil {
					return err
				}
			}
			return nil
		})
		return ids, err
	})
	same(t, "notices claimed", len(claimed), total)
}

func testPressure(t *testing.T, s store.Store) {
	ctx := t.Context()
	day := 24 * time.Hour
	bounds := []time.Time{t0, t0.Add(5 * day), t0.Add(5*day + time.Millisecond), t0.Add(30 * day)}
	dueBounds := []time.Time{t0, t0.Add(30 * day), t0.Add(30*day + time.Millisecond), t0.Add(365 * day)}

	p, err := s.Pressure(ctx, bounds, dueBounds)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "pressure of an empty store", p, store.Pressure{OpenBefore: []int{0, 0, 0, 0}, DeferredBefore: []int{0, 0, 0, 0},
		Pending: map[string]store.PendingTasks{}, EarliestByTenant: map[string]time.Time{}})

	// A follow-up round started after the task's first attempt.
	followUp := func(k *store.Task) *store.Task {
		k.Attempts, k.RoundStart = 2, 1
		return k
	}
	retained := func(k *store.Task, until time.Time) *store.Task {
		k.Outcome, k.LegalBasis, k.RetainUntil = "retained", "tax law", until
		return k
	}
	open := newRequest("req-open", store.StateOpen, t0.Add(10*day))
	soon := newRequest("req-soon", store.StateOpen, t0.Add(3*day))
	pending := newRequest("req-pending", store.StatePendingVerification, t0.Add(5*day))
	pending.Tenant = "acme"
	// Extended, its notice not delivered yet: the original deadline stands.
	open.OriginalDeadline, open.ExtendedAt, open.ExtensionReason = t0.Add(2*day), t0, "volume"
	// Partially retained requests, answered long ago: their deadlines are
	// past but no longer pressing.
	waiting := newRequest("req-waiting", store.StatePartiallyRetained, t0.Add(-20*day))
	following := newRequest("req-following", store.StatePartiallyRetained, t0.Add(-30*day))
	distant := newRequest("req-distant", store.StatePartiallyRetained, t0.Add(-day))
	fulfilled := newRequest("req-fulfilled", store.StateFulfilled, t0.Add(-day))
	insert(t, s, []*store.Request{open, soon, pending, waiting, following, distant, fulfilled},
		newTask(open.ID, "accounts", store.TaskPublished, t0.Add(time.Hour)),
		newTask(open.ID, "billing", store.TaskRetrying, t0.Add(time.Hour)),
		// Not a deferral: a first round (waiting for its first answer)
		// that a system once answered "retained".
		retained(newTask(open.ID, "recordings", store.TaskRetrying, t0.Add(-5*day)), t0.Add(-5*day)),
		newTask(soon.ID, "accounts", store.TaskPublished, time.Time{}), // in the outbox still
		newTask(soon.ID, "billing", store.TaskAnswered, time.Time{}),
		newTask(pending.ID, "accounts", store.TaskPending, time.Time{}),
		// Deferred: waiting for their date, or in their follow-up.
		retained(newTask(waiting.ID, "billing", store.TaskDeferred, t0.Add(30*day)), t0.Add(30*day)),
		newTask(waiting.ID, "accounts", store.TaskAnswered, time.Time{}),
		followUp(retained(newTask(following.ID, "billing", store.TaskPublished, t0.Add(time.Hour)), t0.Add(-day))),
		followUp(retained(newTask(following.ID, "recordings", store.TaskRetrying, t0.Add(time.Hour)), t0.Add(-2*day))),
		retained(newTask(distant.ID, "billing", store.TaskDeferred, t0.Add(400*day)), t0.Add(400*day)),
		// Answered, retained, in an ended request: nothing left to do.
		retained(newTask(fulfilled.ID, "billing", store.TaskAnswered, time.Time{}), t0.Add(10*day)),
	)
	notice := func(id string, bus, webhook, next time.Time) *store.Notice {
		return &store.Notice{ID: id, RequestID: open.ID, Kind: "extension", CreatedAt: t0, BusAt: bus, WebhookAt: webhook, NextAttemptAt: next}
	}
	mustTx(t, s, func(tx store.Tx) error {
		for _, n := range []*store.Notice{
			notice("n-new", time.Time{}, time.Time{}, t0),
			notice("n-on-bus", t0, time.Time{}, t0.Add(time.Minute)),
			notice("n-on-webhook", time.Time{}, t0, t0.Add(time.Minute)),
			notice("n-bus-only", t0, time.Time{}, time.Time{}),          // no webhook configured: done
			notice("n-given-up", time.Time{}, time.Time{}, time.Time{}), // out of deliveries
			notice("n-done", t0, t0, time.Time{}),
		} {
			if err := tx.InsertNotice(n); err != nil {
				return err
			}
		}
		return nil
	})

	p, err = s.Pressure(ctx, bounds, dueBounds)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "pressure", p, store.Pressure{
		OpenBefore:       []int{0, 1, 2, 3},
		Open:             3,
		EarliestOpen:     soon.Deadline,
		EarliestByTenant: map[string]time.Time{"demo": soon.Deadline, "acme": pending.Deadline},
		UntoldDeadline:   open.OriginalDeadline, // "n-new" has reached no channel
		Pending: map[string]store.PendingTasks{
			"accounts": {Count: 2, EarliestDeadline: soon.Deadline},
			// The follow-up counts, its request's deadline does not.
			"billing":    {Count: 2, EarliestDeadline: open.Deadline},
			"recordings": {Count: 2, EarliestDeadline: open.Deadline},
		},
		DeferredBefore:     []int{2, 2, 3, 3},
		Deferred:           4,
		UndeliveredBus:     2,
		UndeliveredWebhook: 2,
	})
}
