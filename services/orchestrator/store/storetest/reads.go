package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// testReadsBesideAWrite: a read outside a transaction (an API call's token
// look-up, a status poll, a scrape) answers while a write transaction
// runs, from the last commit, instead of queueing behind it; once the
// transaction commits, reads see its change.
func testReadsBesideAWrite(t *testing.T, s store.Store) {
	ctx := t.Context()
	insert(t, s, []*store.Request{newRequest("r1", lifecycle.Open, t0.AddDate(0, 1, 0))})
	tok := &store.Token{ID: "tok_r", Hash: []byte("hash of tok_r"), Name: "reader", Tenant: "*", Role: "admin", CreatedAt: t0}
	if err := s.InsertToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	var got *store.Token
	var r *store.Request
	var gotErr, getErr error
	writing(t, s, fulfil(ctx, "r1"), func() {
		// Bounded: on a store whose reads share the writer's connection,
		// they wait until the transaction ends, which it does not before
		// they answer.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		got, gotErr = s.TokenByHash(rctx, tok.Hash)
		r, _, getErr = s.Get(rctx, "r1")
	})
	if gotErr != nil || getErr != nil {
		t.Fatalf("reads while a write transaction runs: token %v, request %v; want answers without waiting for it", gotErr, getErr)
	}
	if got.ID != tok.ID {
		t.Errorf("token look-up = %q, want %q", got.ID, tok.ID)
	}
	if r.State != lifecycle.Open {
		t.Errorf("request read during the transaction is %s, want %s: the last commit, not a change in progress", r.State, lifecycle.Open)
	}
	if r, _, err := s.Get(ctx, "r1"); err != nil || r.State != lifecycle.Fulfilled {
		t.Fatalf("request read after the commit: %v, %v; want %s", r, err, lifecycle.Fulfilled)
	}
}

// testView: a view reads one snapshot: a change committed while it runs
// shows in none of its reads, the next view sees it; it runs while a
// write transaction is open; a write in it fails and changes nothing.
func testView(t *testing.T, s store.Store) {
	ctx := t.Context()
	insert(t, s, []*store.Request{newRequest("r1", lifecycle.Open, t0.AddDate(0, 1, 0))})
	read := func(tx store.Tx) (lifecycle.State, int64) {
		t.Helper()
		r, err := tx.Request(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		n, err := tx.LogSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r.State, n
	}
	err := s.View(ctx, func(tx store.Tx) error {
		state, size := read(tx)
		// Committed while the view runs: on SQLite, by the store's writer
		// beside the view's connection.
		mustTx(t, s, fulfil(ctx, "r1"))
		if st, n := read(tx); st != state || n != size {
			t.Errorf("within one view: %s with a log of %d, then %s with %d; want the same snapshot", state, size, st, n)
		}
		if err := tx.UpdateRequest(ctx, &store.Request{ID: "r1", State: lifecycle.Denied, UpdatedAt: t0}); err == nil {
			t.Error("a write in a view succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.View(ctx, func(tx store.Tx) error {
		if st, n := read(tx); st != lifecycle.Fulfilled || n != 1 {
			t.Errorf("the next view: %s with a log of %d; want %s with 1", st, n, lifecycle.Fulfilled)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Beside an open write transaction, a view answers without waiting.
	writing(t, s, func(tx store.Tx) error { return tx.AppendLog(ctx, "r1", []byte("more")) }, func() {
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s.View(vctx, func(tx store.Tx) error { _, err := tx.Request(vctx, "r1"); return err }); err != nil {
			t.Errorf("a view beside an open write transaction: %v", err)
		}
	})
}

// fulfil marks request id fulfilled and logs it.
func fulfil(ctx context.Context, id string) func(store.Tx) error {
	return func(tx store.Tx) error {
		r, err := tx.Request(ctx, id)
		if err != nil {
			return err
		}
		r.State, r.UpdatedAt = lifecycle.Fulfilled, t0.Add(time.Hour)
		if err := tx.UpdateRequest(ctx, r); err != nil {
			return err
		}
		return tx.AppendLog(ctx, id, []byte("fulfilled"))
	}
}

// writing makes change in a write transaction and holds it open while
// during runs; it commits once during returned.
func writing(t *testing.T, s store.Store, change func(store.Tx) error, during func()) {
	t.Helper()
	inTx, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.Tx(t.Context(), func(tx store.Tx) error {
			if err := change(tx); err != nil {
				return err
			}
			close(inTx)
			<-release
			return nil
		})
	}()
	select {
	case <-inTx:
	case err := <-done:
		t.Fatalf("transaction ended before its change: %v", err)
	}
	func() {
		defer close(release) // even if during fails the test
		during()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
