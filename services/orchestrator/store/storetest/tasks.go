// Tasks: insert, read and update, due tasks (retries and deferred
// erasures, also taken at once by several transactions), and receipts
// recorded once and requests completed once under concurrent answers.

package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

func testTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0))
	b := newTask(r.ID, "billing", lifecycle.TaskPublished, t0.Add(time.Minute))
	a := newTask(r.ID, "accounts", lifecycle.TaskPending, time.Time{})
	insert(t, s, []*store.Request{r}, b, a)

	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Task(ctx, b.ID)
		if err != nil {
			return err
		}
		same(t, "Tx.Task", got, b)
		all, err := tx.Tasks(ctx, r.ID)
		if err != nil {
			return err
		}
		same(t, "Tx.Tasks, by system", all, []*store.Task{a, b})
		if n, err := tx.OpenTasks(ctx, r.ID); err != nil || n != 2 {
			t.Errorf("Tx.OpenTasks = %d %v, want 2", n, err)
		}
		wantErr(t, "insert a known task", tx.InsertTask(ctx, newTask(r.ID, "billing", lifecycle.TaskPending, time.Time{})), store.ErrDuplicate)
		return nil
	})

	// Every field survives an update.
	a.State, a.Attempts, a.NextAttemptAt = lifecycle.TaskAnswered, 3, time.Time{}
	a.Outcome, a.AnsweredAt, a.Detail, a.LegalBasis = lifecycle.Retained, t0.Add(2*time.Hour), "kept for tax", "tax law"
	a.RetainUntil = time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	a.Counts, a.Remaining = map[string]int64{"profile": 1, "invoices": 12}, 12
	a.ExportSHA256, a.ExportKey, a.Receipt = []byte{1, 2, 3}, []byte(`{"profile":[]}`), []byte{0, 1, 0xff}
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateTask(ctx, a) })
	for _, tc := range []struct {
		state lifecycle.TaskState
		open  int
	}{{lifecycle.TaskRetrying, 2}, {lifecycle.TaskDeadLetter, 1}, {lifecycle.TaskDeferred, 1}, {lifecycle.TaskAnswered, 1}} {
		c := *b
		c.State = tc.state
		mustTx(t, s, func(tx store.Tx) error {
			if err := tx.UpdateTask(ctx, &c); err != nil {
				return err
			}
			// a is answered: b alone may be open.
			if n, err := tx.OpenTasks(ctx, r.ID); err != nil || n != tc.open-1 {
				t.Errorf("Tx.OpenTasks with b %s = %d %v, want %d", tc.state, n, err, tc.open-1)
			}
			return nil
		})
	}
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateTask(ctx, b) })

	got, tasks, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Get request", got, r)
	same(t, "Get tasks after update", tasks, []*store.Task{a, b})
}

func testDueTasks(t *testing.T, s store.Store) {
	r := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0))
	a := newTask(r.ID, "a", lifecycle.TaskPublished, t0.Add(-2*time.Minute))
	b := newTask(r.ID, "b", lifecycle.TaskRetrying, t0.Add(-time.Minute))
	c := newTask(r.ID, "c", lifecycle.TaskPublished, t0) // due at now exactly
	notYet := newTask(r.ID, "d", lifecycle.TaskPublished, t0.Add(time.Millisecond))
	unpublished := newTask(r.ID, "e", lifecycle.TaskPublished, time.Time{}) // the relay has not published it yet
	answered := newTask(r.ID, "f", lifecycle.TaskAnswered, t0.Add(-5*time.Minute))
	pending := newTask(r.ID, "g", lifecycle.TaskPending, time.Time{})
	dead := newTask(r.ID, "h", lifecycle.TaskDeadLetter, t0.Add(-5*time.Minute))
	insert(t, s, []*store.Request{r}, a, b, c, notYet, unpublished, answered, pending, dead)

	for _, tc := range []struct {
		limit int
		want  []*store.Task
	}{{10, []*store.Task{a, b, c}}, {2, []*store.Task{a, b}}} {
		mustTx(t, s, func(tx store.Tx) error {
			got, err := tx.DueTasks(t.Context(), t0, tc.limit)
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
		r := newRequest(fmt.Sprintf("req-%02d", i), lifecycle.Open, t0.AddDate(0, 1, 0))
		reqs = append(reqs, r)
		for _, sys := range []string{"accounts", "billing"} {
			tasks = append(tasks, newTask(r.ID, sys, lifecycle.TaskPublished, t0.Add(-time.Duration(i)*time.Second)))
		}
	}
	insert(t, s, reqs, tasks...)

	// Each worker takes tasks in transactions of its own, as the retry loop
	// of each replica does; the owner names the worker only.
	handed := claimConcurrently(t, "retry", func(ctx context.Context, _ string) ([]*store.Task, error) {
		var got []*store.Task
		err := s.Tx(ctx, func(tx store.Tx) error {
			got = nil
			due, err := tx.DueTasks(ctx, t0, 7)
			if err != nil {
				return err
			}
			for _, k := range due {
				k.Attempts++
				k.NextAttemptAt = t0.Add(time.Hour)
				if err := tx.UpdateTask(ctx, k); err != nil {
					return err
				}
				got = append(got, k)
			}
			return nil
		})
		return got, err
	}, func(k *store.Task) string { return "task " + k.ID })
	same(t, "tasks handed out", len(handed), len(tasks))
	mustTx(t, s, func(tx store.Tx) error {
		left, err := tx.DueTasks(t.Context(), t0, 100)
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
		r := newRequest(fmt.Sprintf("req-%d", round), lifecycle.Open, t0.AddDate(0, 1, 0))
		k := newTask(r.ID, "accounts", lifecycle.TaskPublished, t0.Add(time.Hour))
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
				k, err := tx.Task(t.Context(), k.ID)
				if err != nil {
					return err
				}
				if _, err := tx.Request(t.Context(), k.RequestID); err != nil {
					return err
				}
				if k.State == lifecycle.TaskAnswered {
					return nil // a duplicate
				}
				k.State, k.Outcome, k.AnsweredAt, k.Receipt = lifecycle.TaskAnswered, lifecycle.Erased, t0, []byte{byte(i)}
				if err := tx.UpdateTask(t.Context(), k); err != nil {
					return err
				}
				if err := tx.AppendLog(t.Context(), k.RequestID, []byte{'r', byte(i)}); err != nil {
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
		recs, err := tx.RequestLog(t.Context(), r.ID)
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
		r := newRequest(fmt.Sprintf("req-%d", round), lifecycle.Open, t0.AddDate(0, 1, 0))
		var tasks []*store.Task
		for _, sys := range systems {
			tasks = append(tasks, newTask(r.ID, sys, lifecycle.TaskPublished, t0.Add(time.Hour)))
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
					k, err := tx.Task(t.Context(), k.ID)
					if err != nil {
						return err
					}
					r, err := tx.Request(t.Context(), k.RequestID)
					if err != nil {
						return err
					}
					k.State, k.Outcome, k.AnsweredAt = lifecycle.TaskAnswered, lifecycle.Erased, t0
					if err := tx.UpdateTask(t.Context(), k); err != nil {
						return err
					}
					if err := tx.AppendLog(t.Context(), r.ID, []byte("answer "+k.System)); err != nil {
						return err
					}
					all, err := tx.Tasks(t.Context(), r.ID)
					if err != nil {
						return err
					}
					for _, k := range all {
						if k.State != lifecycle.TaskAnswered {
							return nil
						}
					}
					r.State, r.CompletedAt = lifecycle.Fulfilled, t0
					if err := tx.UpdateRequest(t.Context(), r); err != nil {
						return err
					}
					done = true
					return tx.PutCertificate(t.Context(), r.ID, store.PackCertificate([]byte{byte(i)}), t0)
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
		same(t, "state", got.State, lifecycle.Fulfilled)
	}
}

// testDeferredTasks: a task's round start comes back as written, and a
// deferred erasure is due, like a retry, once its date (NextAttemptAt, its
// retain-until) is not after now.
func testDeferredTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", lifecycle.PartiallyRetained, t0.AddDate(0, -1, 0))
	until := t0.AddDate(1, 0, 0)
	deferred := newTask(r.ID, "billing", lifecycle.TaskDeferred, until)
	deferred.Attempts, deferred.Outcome, deferred.LegalBasis, deferred.RetainUntil = 2, lifecycle.Retained, "tax law", until
	deferred.AnsweredAt, deferred.Counts = t0.AddDate(0, 0, -3), map[string]int64{"invoices": 12}
	// A follow-up of an earlier deferral, in its own round.
	followUp := newTask(r.ID, "accounts", lifecycle.TaskRetrying, until.Add(-time.Millisecond))
	followUp.Attempts, followUp.RoundStart, followUp.RetainUntil = 4, 3, t0.AddDate(0, 0, -1)
	answered := newTask(r.ID, "recordings", lifecycle.TaskAnswered, time.Time{})
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
			got, err := tx.DueTasks(ctx, tc.now, tc.limit)
			same(t, "DueTasks "+tc.name, got, tc.want)
			return err
		})
	}

	// The follow-up round begins: the task is published again, with the
	// attempts so far as its round start.
	deferred.State, deferred.RoundStart, deferred.Attempts, deferred.NextAttemptAt, deferred.Detail = lifecycle.TaskPublished, 2, 3, time.Time{}, ""
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateTask(ctx, deferred) })
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Task(ctx, deferred.ID)
		same(t, "task in its follow-up round", got, deferred)
		if err != nil {
			return err
		}
		due, err := tx.DueTasks(ctx, until.AddDate(0, 0, 1), 10)
		same(t, "DueTasks once the follow-up waits for its publication", due, []*store.Task{followUp})
		return err
	})
}
