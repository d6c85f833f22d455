// Package storetest is the conformance suite of the orchestrator's store:
// every engine (SQLite, PostgreSQL) passes the same tests, called from its
// own test with [Run]. The concurrency tests hold on any engine; on SQLite,
// which runs one transaction at a time, they pass trivially, and on
// PostgreSQL they prove the row locks.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
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
		{"LogFailuresAmongConcurrentTxs", testLogFailuresAmongConcurrentTxs},
		{"Certificates", testCertificates},
		{"Witnessed", testWitnessed},
		{"Stats", testStats},
		{"CountOverdue", testCountOverdue},
		{"RequestFields", testRequestFields},
		{"DeferredTasks", testDeferredTasks},
		{"RequestCounts", testRequestCounts},
		{"RequestCountsConcurrent", testRequestCountsConcurrent},
		{"StateChangeAroundLog", testStateChangeAroundLog},
		{"Notices", testNotices},
		{"NoticeClaimAndLease", testNoticeClaimAndLease},
		{"NoticeRelease", testNoticeRelease},
		{"NoticesConcurrentClaims", testNoticesConcurrentClaims},
		{"Pressure", testPressure},
		{"Tokens", testTokens},
		{"Submitters", testSubmitters},
		{"Exports", testExports},
		{"ExportLinks", testExportLinks},
		{"DeadLetters", testDeadLetters},
		{"ReadsBesideAWrite", testReadsBesideAWrite},
		{"View", testView},
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

func newRequest(id string, state lifecycle.State, deadline time.Time) *store.Request {
	return &store.Request{
		ID: id, Tenant: "demo", Type: lifecycle.Erasure, State: state,
		SealedSubject: []byte("sealed identifiers of " + id), SubjectHash: "hash-" + id,
		Source: "api", ReceivedAt: deadline.AddDate(0, -1, 0), Deadline: deadline, CreatedAt: t0, UpdatedAt: t0,
	}
}

func newTask(requestID, system string, state lifecycle.TaskState, next time.Time) *store.Task {
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
			if err := tx.InsertRequest(t.Context(), r); err != nil {
				return err
			}
		}
		for _, k := range tasks {
			if err := tx.InsertTask(t.Context(), k); err != nil {
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
			if err := tx.Enqueue(t.Context(), m); err != nil {
				return err
			}
		}
		return nil
	})
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

// setState changes the state of the requests ids, in order, in tx.
func setState(ctx context.Context, tx store.Tx, state lifecycle.State, ids ...string) error {
	for _, id := range ids {
		r, err := tx.Request(ctx, id)
		if err != nil {
			return err
		}
		r.State, r.UpdatedAt = state, r.UpdatedAt.Add(time.Second)
		if err := tx.UpdateRequest(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// claimConcurrently runs four workers at once, named prefix-0 to
// prefix-3, each calling claim as its owner until it returns nothing.
// claim takes a batch (outbox messages, notices, due tasks) and does with
// it what its claimer does, so that the batch is not due again. The test
// fails on an error, or on an item, named by key, claimed more than once.
// It returns how often each item was claimed.
func claimConcurrently[T any](t *testing.T, prefix string, claim func(ctx context.Context, owner string) ([]T, error), key func(T) string) map[string]int {
	t.Helper()
	const workers = 4
	var mu sync.Mutex
	owners := map[string][]string{} // item -> the owners that claimed it
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			<-start
			owner := fmt.Sprintf("%s-%d", prefix, i)
			for {
				batch, err := claim(t.Context(), owner)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", owner, err)
					return
				}
				if len(batch) == 0 {
					return
				}
				mu.Lock()
				for _, item := range batch {
					owners[key(item)] = append(owners[key(item)], owner)
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
	claimed := map[string]int{}
	for item, by := range owners {
		claimed[item] = len(by)
		if len(by) != 1 {
			t.Errorf("%s claimed %d times (by %s), want once", item, len(by), strings.Join(by, ", "))
		}
	}
	return claimed
}
