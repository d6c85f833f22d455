// Requests: insert, read, update and rollback, every field through every
// read, and List with its cursor.

package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

func testRequestLifecycle(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", lifecycle.PendingVerification, t0.AddDate(0, 1, 0))
	r.SourceRef = "account_deleted:ev-1"
	insert(t, s, []*store.Request{r})

	got, tasks, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Get", got, r)
	same(t, "tasks of a request without any", len(tasks), 0)
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Request(ctx, r.ID)
		if err != nil {
			return err
		}
		same(t, "Tx.Request", got, r)
		got, err = tx.RequestBySourceRef(ctx, r.SourceRef)
		if err != nil {
			return err
		}
		same(t, "Tx.RequestBySourceRef", got, r)
		return nil
	})

	// The request ends: its subject is cleared, its times set.
	r.State, r.SealedSubject = lifecycle.Fulfilled, nil
	r.Deadline, r.UpdatedAt, r.CompletedAt = r.Deadline.AddDate(0, 2, 0), t0.Add(time.Hour), t0.Add(time.Hour+time.Millisecond)
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateRequest(ctx, r) })
	got, _, err = s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Get after update", got, r)

	// A duplicate is refused, and the transaction goes on.
	dup := newRequest("req-2", lifecycle.Open, t0)
	dup.SourceRef = r.SourceRef
	other := newRequest("req-3", lifecycle.Open, t0)
	mustTx(t, s, func(tx store.Tx) error {
		wantErr(t, "insert with a known source_ref", tx.InsertRequest(ctx, dup), store.ErrDuplicate)
		wantErr(t, "insert with a known id", tx.InsertRequest(ctx, newRequest(r.ID, lifecycle.Open, t0)), store.ErrDuplicate)
		return tx.InsertRequest(ctx, other)
	})
	if _, _, err := s.Get(ctx, other.ID); err != nil {
		t.Errorf("request inserted after a duplicate in the same Tx: %v", err)
	}
	_, _, err = s.Get(ctx, dup.ID)
	wantErr(t, "Get of the refused duplicate", err, store.ErrNotFound)

	// Requests without a source reference do not collide.
	insert(t, s, []*store.Request{newRequest("req-4", lifecycle.Open, t0), newRequest("req-5", lifecycle.Open, t0)})

	_, _, err = s.Get(ctx, "req-unknown")
	wantErr(t, "Get unknown", err, store.ErrNotFound)
	mustTx(t, s, func(tx store.Tx) error {
		_, err := tx.Request(ctx, "req-unknown")
		wantErr(t, "Tx.Request unknown", err, store.ErrNotFound)
		_, err = tx.RequestBySourceRef(ctx, "ref-unknown")
		wantErr(t, "Tx.RequestBySourceRef unknown", err, store.ErrNotFound)
		_, err = tx.Task(ctx, "task-unknown")
		wantErr(t, "Tx.Task unknown", err, store.ErrNotFound)
		return nil
	})
}

func testTxRollsBack(t *testing.T, s store.Store) {
	boom := errors.New("boom")
	err := s.Tx(t.Context(), func(tx store.Tx) error {
		if err := tx.InsertRequest(t.Context(), newRequest("req-1", lifecycle.Open, t0)); err != nil {
			return err
		}
		if err := tx.AppendLog(t.Context(), "req-1", []byte("created")); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "Tx", err, boom)
	_, _, err = s.Get(t.Context(), "req-1")
	wantErr(t, "Get after rollback", err, store.ErrNotFound)
	mustTx(t, s, func(tx store.Tx) error {
		n, err := tx.LogSize(t.Context())
		same(t, "log size after rollback", n, int64(0))
		return err
	})
}

// readRequest reads a request every way the store offers (in a Tx, by
// source reference, Get, List) and checks that each gives want.
func readRequest(t *testing.T, s store.Store, step string, want *store.Request) {
	t.Helper()
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Request(t.Context(), want.ID)
		if err != nil {
			return err
		}
		same(t, step+": Tx.Request", got, want)
		got, err = tx.RequestBySourceRef(t.Context(), want.SourceRef)
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
	answer := func(state lifecycle.State) func(r *store.Request) {
		return func(r *store.Request) {
			r.State, r.SealedSubject = state, nil
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
			func(r *store.Request) { r.State, r.UpdatedAt = lifecycle.Open, t0.Add(time.Minute) }},
		{"extended by an update", func(r *store.Request) { r.DeadlinePolicy = policy }, extend},
		{"answered by an update", nil, answer(lifecycle.PartiallyRetained)},
		{"all set at insert, answered by an update", func(r *store.Request) {
			r.DeadlinePolicy = policy
			extend(r)
		}, answer(lifecycle.Fulfilled)},
		{"all set at insert, cleared by an update", func(r *store.Request) {
			r.DeadlinePolicy = policy
			extend(r)
			answer(lifecycle.Fulfilled)(r)
		}, func(r *store.Request) {
			r.AnsweredAt, r.OriginalDeadline, r.ExtendedAt, r.ExtensionReason = time.Time{}, time.Time{}, time.Time{}, ""
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequest(fmt.Sprintf("req-%d", i), lifecycle.PendingVerification, deadline)
			r.SourceRef = fmt.Sprintf("ref-%d", i)
			if tc.insert != nil {
				tc.insert(r)
			}
			insert(t, s, []*store.Request{r})
			readRequest(t, s, "after the insert", r)
			tc.update(r)
			mustTx(t, s, func(tx store.Tx) error { return tx.UpdateRequest(t.Context(), r) })
			readRequest(t, s, "after the update", r)
		})
	}
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
		state := []lifecycle.State{lifecycle.Open, lifecycle.Fulfilled, lifecycle.PendingVerification}[i%3]
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
		{"state", store.ListQuery{State: lifecycle.Open}, func(r *store.Request) bool { return r.State == lifecycle.Open }},
		{"tenant", store.ListQuery{Tenant: "other"}, func(r *store.Request) bool { return r.Tenant == "other" }},
		{"state and tenant", store.ListQuery{State: lifecycle.Fulfilled, Tenant: "demo"},
			func(r *store.Request) bool { return r.State == lifecycle.Fulfilled && r.Tenant == "demo" }},
		{"source ref", store.ListQuery{SourceRef: "ref-5"}, func(r *store.Request) bool { return r.SourceRef == "ref-5" }},
		{"nothing", store.ListQuery{State: lifecycle.Failed}, func(*store.Request) bool { return false }},
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
		reqs = append(reqs, newRequest(fmt.Sprintf("req-%02d", i), lifecycle.Open, t0.Add(time.Duration(i)*time.Hour)))
	}
	insert(t, s, reqs)
	page, next, err := s.List(ctx, store.ListQuery{State: lifecycle.Open, Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	seen := ids(page)
	// Meanwhile: one arrives before the cursor, one after the end, and one
	// still to come ends.
	early, late := newRequest("req-early", lifecycle.Open, t0.Add(-time.Hour)), newRequest("req-late", lifecycle.Open, t0.Add(100*time.Hour))
	insert(t, s, []*store.Request{early, late})
	ended := reqs[8]
	ended.State = lifecycle.Fulfilled
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateRequest(ctx, ended) })
	seen = append(seen, listAll(t, s, store.ListQuery{State: lifecycle.Open, Limit: 4, After: next})...)

	var want []string
	for _, r := range reqs {
		if r != ended {
			want = append(want, r.ID)
		}
	}
	same(t, "requests listed across pages", seen, append(want, late.ID))
}
