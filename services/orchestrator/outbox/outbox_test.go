package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/outbox"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// sink records what a loop delivered, marking it published as the relay
// does, and can be made to wait.
type sink struct {
	st   store.Store
	mu   sync.Mutex
	got  map[string]int
	hold chan struct{} // nil: deliver at once
}

func (s *sink) deliver(ctx context.Context, batch []store.OutboxMessage) error {
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	seqs := make([]int64, 0, len(batch))
	s.mu.Lock()
	for _, m := range batch {
		s.got[m.ID]++
		seqs = append(seqs, m.Seq)
	}
	s.mu.Unlock()
	return s.st.MarkPublished(context.WithoutCancel(ctx), seqs, time.Now())
}

func (s *sink) count() (ids, deliveries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.got {
		deliveries += n
	}
	return len(s.got), deliveries
}

func enqueue(t *testing.T, st store.Store, from, n int) {
	t.Helper()
	err := st.Tx(t.Context(), func(tx store.Tx) error {
		for i := from; i < from+n; i++ {
			if err := tx.Enqueue(t.Context(), store.OutboxMessage{Topic: "task.alpha", ID: fmt.Sprintf("m%04d", i), Type: "t", Key: "k",
				Payload: []byte("p"), Created: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newLoop(st store.Store, owner string, wake outbox.Signal, s *sink, interval time.Duration) *outbox.Loop[store.OutboxMessage] {
	return &outbox.Loop[store.OutboxMessage]{
		Name: "test relay", Owner: owner, Batch: 10, Lease: time.Minute, Interval: interval, Wake: wake,
		Now: time.Now, Log: slog.New(slog.DiscardHandler),
		Claim: st.ClaimOutbox, Release: st.ReleaseOutbox, Deliver: s.deliver,
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lethe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Two loops over one queue deliver every message once: batches follow
// each other at once while full, and a Wake is enough for new work (the
// tick is an hour away).
func TestLoopsDeliverEachMessageOnce(t *testing.T) {
	st := openStore(t)
	enqueue(t, st, 0, 95)
	s := &sink{st: st, got: map[string]int{}}
	ctx, cancel := context.WithCancel(t.Context())
	wakeA, wakeB := outbox.NewSignal(), outbox.NewSignal()
	var wg sync.WaitGroup
	for _, l := range []*outbox.Loop[store.OutboxMessage]{newLoop(st, "a", wakeA, s, time.Hour), newLoop(st, "b", wakeB, s, time.Hour)} {
		wg.Go(func() {
			if err := l.Run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, "95 messages delivered", func() bool { n, _ := s.count(); return n == 95 })
	enqueue(t, st, 95, 3)
	wakeA.Wake()
	wakeA.Wake() // a second wake-up while one is pending is dropped, not blocked on
	waitFor(t, "98 messages delivered", func() bool { n, _ := s.count(); return n == 98 })
	cancel()
	wg.Wait()
	if ids, deliveries := s.count(); deliveries != ids {
		t.Errorf("%d deliveries of %d messages", deliveries, ids)
	}
}

// A loop that stops releases its leases: another replica's loop delivers
// the batch it held at once, not when the lease (a minute) runs out.
func TestStoppedLoopHandsItsBatchOn(t *testing.T) {
	st := openStore(t)
	enqueue(t, st, 0, 5)
	stuck := &sink{st: st, got: map[string]int{}, hold: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- newLoop(st, "a", outbox.NewSignal(), stuck, 10*time.Millisecond).Run(ctx) }()
	waitFor(t, "a claims the batch", func() bool {
		msgs, err := st.ClaimOutbox(t.Context(), "probe", 10, time.Now(), time.Now())
		return err == nil && len(msgs) == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := &sink{st: st, got: map[string]int{}}
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	go newLoop(st, "b", outbox.NewSignal(), s, 10*time.Millisecond).Run(ctx2)
	waitFor(t, "b delivers the released batch", func() bool { n, _ := s.count(); return n == 5 })
	if n, _ := stuck.count(); n != 0 {
		t.Errorf("the stopped loop delivered %d", n)
	}
}
