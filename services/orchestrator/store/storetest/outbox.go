// Outbox: claims and their leases, release, concurrent claims,
// MarkPublished and ForgetTasks.

package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

func taskMessage(k *store.Task, wait time.Duration) store.OutboxMessage {
	return store.OutboxMessage{Topic: "lethe.tasks." + k.System, ID: k.ID + ":1", Type: "dev.lethe.task", Key: k.RequestID,
		Payload: []byte("task " + k.ID), Created: t0, TaskID: k.ID, Wait: wait}
}

func testOutboxClaimAndLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0))
	a, b := newTask(r.ID, "accounts", lifecycle.TaskPublished, time.Time{}), newTask(r.ID, "billing", lifecycle.TaskPublished, time.Time{})
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

	claimed := claimConcurrently(t, "relay", func(ctx context.Context, owner string) ([]store.OutboxMessage, error) {
		batch, err := s.ClaimOutbox(ctx, owner, 7, t0, t0.Add(time.Minute))
		if err != nil || len(batch) == 0 {
			return nil, err
		}
		seqs := make([]int64, len(batch))
		for j, m := range batch {
			seqs[j] = m.Seq
		}
		if !slices.IsSorted(seqs) {
			return nil, fmt.Errorf("batch out of order: %v", seqs)
		}
		return batch, s.MarkPublished(ctx, seqs, t0)
	}, func(m store.OutboxMessage) string { return "message " + m.ID })
	same(t, "messages claimed", len(claimed), len(msgs))
}

func testMarkPublished(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0))
	waiting := newTask(r.ID, "accounts", lifecycle.TaskPublished, time.Time{})
	started := newTask(r.ID, "billing", lifecycle.TaskPublished, t0.Add(5*time.Minute)) // its wait already runs
	answered := newTask(r.ID, "recordings", lifecycle.TaskAnswered, time.Time{})
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
	// Its wait starts, and its place in the system's queue is kept.
	waiting.NextAttemptAt, waiting.PublishedAt, waiting.PublishedSeq = at.Add(30*time.Second), at, seqs[0]
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
	r1, r2 := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0)), newRequest("req-2", lifecycle.Open, t0.AddDate(0, 1, 0))
	a, b, c := newTask(r1.ID, "accounts", lifecycle.TaskPublished, time.Time{}), newTask(r1.ID, "billing", lifecycle.TaskPublished, time.Time{}),
		newTask(r2.ID, "accounts", lifecycle.TaskPublished, time.Time{})
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

	mustTx(t, s, func(tx store.Tx) error { return tx.ForgetTasks(ctx, r1.ID) })
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
