// What the metrics read: Stats and its trigger-kept request counts,
// CountOverdue and Pressure.

package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

func testStats(t *testing.T, s store.Store) {
	ctx := t.Context()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "stats of an empty store", st, store.Stats{Requests: map[store.Kind]int{}})

	export := newRequest("req-3", lifecycle.Fulfilled, t0)
	export.Type = lifecycle.Export
	insert(t, s, []*store.Request{newRequest("req-1", lifecycle.Open, t0), newRequest("req-2", lifecycle.Open, t0), export})
	enqueue(t, s, store.OutboxMessage{Topic: "t", ID: "m1", Type: "x", Key: "req-1", Payload: []byte("p"), Created: t0.Add(time.Second)},
		store.OutboxMessage{Topic: "t", ID: "m2", Type: "x", Key: "req-2", Payload: []byte("p"), Created: t0.Add(2 * time.Second)})
	st, err = s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "stats", st, store.Stats{
		Requests:    map[store.Kind]int{{State: lifecycle.Open, Type: lifecycle.Erasure}: 2, {State: lifecycle.Fulfilled, Type: lifecycle.Export}: 1},
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

// countRequests counts the requests by (state, type) from the requests
// themselves, paging through List.
func countRequests(t *testing.T, s store.Store) map[store.Kind]int {
	t.Helper()
	out := map[store.Kind]int{}
	q := store.ListQuery{Limit: 7}
	for {
		reqs, next, err := s.List(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			out[store.Kind{State: r.State, Type: r.Type}]++
		}
		if next == "" {
			return out
		}
		q.After = next
	}
}

// testRequestCounts: Stats' request counts, which the store keeps as
// requests are written rather than counting them, match the requests
// after every kind of write, rolled back or not; a (state, type) without
// requests is absent.
func testRequestCounts(t *testing.T, s store.Store) {
	typed := func(id string, typ lifecycle.Type, state lifecycle.State) *store.Request {
		r := newRequest(id, state, t0.AddDate(0, 1, 0))
		r.Type = typ
		return r
	}
	steps := []struct {
		name string
		fn   func(tx store.Tx) error
		want map[store.Kind]int
	}{
		{"inserts", func(tx store.Tx) error {
			for _, r := range []*store.Request{
				typed("e1", lifecycle.Erasure, lifecycle.PendingVerification), typed("e2", lifecycle.Erasure, lifecycle.PendingVerification),
				typed("e3", lifecycle.Erasure, lifecycle.PendingVerification), typed("e4", lifecycle.Erasure, lifecycle.Open),
				typed("x1", lifecycle.Export, lifecycle.PendingVerification), typed("x2", lifecycle.Export, lifecycle.Fulfilled),
			} {
				if err := tx.InsertRequest(t.Context(), r); err != nil {
					return err
				}
			}
			return nil
		}, map[store.Kind]int{
			{State: lifecycle.PendingVerification, Type: lifecycle.Erasure}: 3, {State: lifecycle.Open, Type: lifecycle.Erasure}: 1,
			{State: lifecycle.PendingVerification, Type: lifecycle.Export}: 1, {State: lifecycle.Fulfilled, Type: lifecycle.Export}: 1,
		}},
		{"state changes of both types", func(tx store.Tx) error {
			if err := setState(t.Context(), tx, lifecycle.Open, "e1", "x1"); err != nil {
				return err
			}
			return setState(t.Context(), tx, lifecycle.PartiallyRetained, "e4")
		}, map[store.Kind]int{
			{State: lifecycle.PendingVerification, Type: lifecycle.Erasure}: 2, {State: lifecycle.Open, Type: lifecycle.Erasure}: 1, {State: lifecycle.PartiallyRetained, Type: lifecycle.Erasure}: 1,
			{State: lifecycle.Open, Type: lifecycle.Export}: 1, {State: lifecycle.Fulfilled, Type: lifecycle.Export}: 1,
		}},
		{"updates that keep the state", func(tx store.Tx) error {
			if err := setState(t.Context(), tx, lifecycle.Open, "e1", "x1"); err != nil {
				return err
			}
			return setState(t.Context(), tx, lifecycle.PendingVerification, "e2")
		}, nil},
		{"a count drops to zero", func(tx store.Tx) error { return setState(t.Context(), tx, lifecycle.Fulfilled, "x1") }, map[store.Kind]int{
			{State: lifecycle.PendingVerification, Type: lifecycle.Erasure}: 2, {State: lifecycle.Open, Type: lifecycle.Erasure}: 1, {State: lifecycle.PartiallyRetained, Type: lifecycle.Erasure}: 1,
			{State: lifecycle.Fulfilled, Type: lifecycle.Export}: 2,
		}},
		{"one request through several states in one Tx", func(tx store.Tx) error {
			for _, state := range []lifecycle.State{lifecycle.Open, lifecycle.PartiallyRetained, lifecycle.Fulfilled} {
				if err := setState(t.Context(), tx, state, "e2"); err != nil {
					return err
				}
			}
			return nil
		}, map[store.Kind]int{
			{State: lifecycle.PendingVerification, Type: lifecycle.Erasure}: 1, {State: lifecycle.Open, Type: lifecycle.Erasure}: 1, {State: lifecycle.PartiallyRetained, Type: lifecycle.Erasure}: 1,
			{State: lifecycle.Fulfilled, Type: lifecycle.Erasure}: 1, {State: lifecycle.Fulfilled, Type: lifecycle.Export}: 2,
		}},
		{"a refused duplicate", func(tx store.Tx) error {
			err := tx.InsertRequest(t.Context(), typed("e1", lifecycle.Export, lifecycle.Open))
			if !errors.Is(err, store.ErrDuplicate) {
				return fmt.Errorf("insert of a known id: %v, want ErrDuplicate", err)
			}
			return nil
		}, nil},
		{"a changed state back and forth", func(tx store.Tx) error {
			if err := setState(t.Context(), tx, lifecycle.Failed, "e1"); err != nil {
				return err
			}
			return setState(t.Context(), tx, lifecycle.Open, "e1")
		}, nil},
	}
	var want map[store.Kind]int
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
		if err := tx.InsertRequest(t.Context(), typed("x9", lifecycle.Export, lifecycle.Open)); err != nil {
			return err
		}
		if err := setState(t.Context(), tx, lifecycle.Failed, "e1", "e3", "e4"); err != nil {
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
		r := newRequest(fmt.Sprintf("req-%02d", i), lifecycle.PendingVerification, t0.AddDate(0, 1, 0))
		r.Type = []lifecycle.Type{lifecycle.Erasure, lifecycle.Export}[i%2]
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
			path := [][]lifecycle.State{
				{lifecycle.Open},
				{lifecycle.Open, lifecycle.Fulfilled},
				{lifecycle.Open, lifecycle.PartiallyRetained, lifecycle.Fulfilled},
				{lifecycle.Open, lifecycle.Failed},
				{},
			}[i%5]
			err := s.Tx(context.Background(), func(tx store.Tx) error { return tx.InsertRequest(context.Background(), r) })
			for _, state := range path {
				if err != nil {
					break
				}
				err = s.Tx(context.Background(), func(tx store.Tx) error { return setState(t.Context(), tx, state, r.ID) })
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

func testCountOverdue(t *testing.T, s store.Store) {
	day := 24 * time.Hour
	insert(t, s, []*store.Request{
		newRequest("req-1", lifecycle.Open, t0.Add(-time.Millisecond)),   // overdue
		newRequest("req-2", lifecycle.PendingVerification, t0.Add(-day)), // overdue
		newRequest("req-3", lifecycle.Open, t0),                          // due now, not over
		newRequest("req-4", lifecycle.Open, t0.Add(day)),                 // not yet
		newRequest("req-5", lifecycle.Fulfilled, t0.Add(-day)),           // ended
		newRequest("req-6", lifecycle.Failed, t0.Add(-2*day)),            // ended
		newRequest("req-7", lifecycle.PartiallyRetained, t0.Add(-3*day)), // ended
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
		k.Outcome, k.LegalBasis, k.RetainUntil = lifecycle.Retained, "tax law", until
		return k
	}
	open := newRequest("req-open", lifecycle.Open, t0.Add(10*day))
	soon := newRequest("req-soon", lifecycle.Open, t0.Add(3*day))
	pending := newRequest("req-pending", lifecycle.PendingVerification, t0.Add(5*day))
	pending.Tenant = "acme"
	// Extended, its notice not delivered yet: the original deadline stands.
	open.OriginalDeadline, open.ExtendedAt, open.ExtensionReason = t0.Add(2*day), t0, "volume"
	// Partially retained requests, answered long ago: their deadlines are
	// past but no longer pressing.
	waiting := newRequest("req-waiting", lifecycle.PartiallyRetained, t0.Add(-20*day))
	following := newRequest("req-following", lifecycle.PartiallyRetained, t0.Add(-30*day))
	distant := newRequest("req-distant", lifecycle.PartiallyRetained, t0.Add(-day))
	fulfilled := newRequest("req-fulfilled", lifecycle.Fulfilled, t0.Add(-day))
	insert(t, s, []*store.Request{open, soon, pending, waiting, following, distant, fulfilled},
		newTask(open.ID, "accounts", lifecycle.TaskPublished, t0.Add(time.Hour)),
		newTask(open.ID, "billing", lifecycle.TaskRetrying, t0.Add(time.Hour)),
		// Not a deferral: a first round (waiting for its first answer)
		// that a system once answered "retained".
		retained(newTask(open.ID, "recordings", lifecycle.TaskRetrying, t0.Add(-5*day)), t0.Add(-5*day)),
		newTask(soon.ID, "accounts", lifecycle.TaskPublished, time.Time{}), // in the outbox still
		newTask(soon.ID, "billing", lifecycle.TaskAnswered, time.Time{}),
		newTask(pending.ID, "accounts", lifecycle.TaskPending, time.Time{}),
		// Deferred: waiting for their date, or in their follow-up.
		retained(newTask(waiting.ID, "billing", lifecycle.TaskDeferred, t0.Add(30*day)), t0.Add(30*day)),
		newTask(waiting.ID, "accounts", lifecycle.TaskAnswered, time.Time{}),
		followUp(retained(newTask(following.ID, "billing", lifecycle.TaskPublished, t0.Add(time.Hour)), t0.Add(-day))),
		followUp(retained(newTask(following.ID, "recordings", lifecycle.TaskRetrying, t0.Add(time.Hour)), t0.Add(-2*day))),
		retained(newTask(distant.ID, "billing", lifecycle.TaskDeferred, t0.Add(400*day)), t0.Add(400*day)),
		// Answered, retained, in an ended request: nothing left to do.
		retained(newTask(fulfilled.ID, "billing", lifecycle.TaskAnswered, time.Time{}), t0.Add(10*day)),
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
			if err := tx.InsertNotice(ctx, n); err != nil {
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
