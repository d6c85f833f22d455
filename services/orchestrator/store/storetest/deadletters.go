package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// testDeadLetters: the tasks that ran out of attempts are listed oldest
// first, by system, tenant and time; a task that leaves the state leaves
// the list.
func testDeadLetters(t *testing.T, s store.Store) {
	ctx := t.Context()
	type dead struct {
		req, tenant, system string
		at                  time.Time
	}
	rows := []dead{
		{"req-1", "demo", "billing", t0.Add(3 * time.Hour)},
		{"req-2", "demo", "recordings", t0.Add(time.Hour)},
		{"req-3", "acme", "billing", t0.Add(2 * time.Hour)},
	}
	mustTx(t, s, func(tx store.Tx) error {
		for _, d := range rows {
			r := newRequest(d.req, lifecycle.Failed, t0.AddDate(0, 1, 0))
			r.Tenant = d.tenant
			if err := tx.InsertRequest(ctx, r); err != nil {
				return err
			}
			k := newTask(d.req, d.system, lifecycle.TaskDeadLetter, time.Time{})
			k.Detail, k.DeadAt, k.Attempts = "no answer after 4 attempts", d.at, 4
			if err := tx.InsertTask(ctx, k); err != nil {
				return err
			}
			if err := tx.UpdateTask(ctx, k); err != nil { // dead_at is set as a task dies
				return err
			}
			if err := tx.InsertTask(ctx, newTask(d.req, "accounts", lifecycle.TaskAnswered, time.Time{})); err != nil {
				return err
			}
		}
		return nil
	})
	ids := func(q store.DeadLetterQuery) []string {
		t.Helper()
		got, err := s.DeadLetters(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range got {
			out = append(out, d.RequestID+"/"+d.System)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		q    store.DeadLetterQuery
		want []string
	}{
		{"all, oldest first", store.DeadLetterQuery{}, []string{"req-2/recordings", "req-3/billing", "req-1/billing"}},
		{"one system", store.DeadLetterQuery{System: "billing"}, []string{"req-3/billing", "req-1/billing"}},
		{"one tenant", store.DeadLetterQuery{Tenant: "demo"}, []string{"req-2/recordings", "req-1/billing"}},
		{"since", store.DeadLetterQuery{Since: t0.Add(2 * time.Hour)}, []string{"req-3/billing", "req-1/billing"}},
		{"limit", store.DeadLetterQuery{Limit: 1}, []string{"req-2/recordings"}},
		{"none", store.DeadLetterQuery{System: "accounts"}, nil},
	} {
		if got := ids(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	got, err := s.DeadLetters(ctx, store.DeadLetterQuery{System: "recordings"})
	if err != nil || len(got) != 1 || got[0].Tenant != "demo" || got[0].Attempts != 4 || !got[0].DeadAt.Equal(t0.Add(time.Hour)) ||
		got[0].Detail != "no answer after 4 attempts" {
		t.Fatalf("dead letter fields: %+v %v", got, err)
	}
	// Retried: no longer a dead letter.
	mustTx(t, s, func(tx store.Tx) error {
		k, err := tx.Task(ctx, "req-2:recordings")
		if err != nil {
			return err
		}
		k.State, k.DeadAt = lifecycle.TaskPublished, time.Time{}
		return tx.UpdateTask(ctx, k)
	})
	if got := ids(store.DeadLetterQuery{}); !slices.Equal(got, []string{"req-3/billing", "req-1/billing"}) {
		t.Errorf("after a retry: %v", got)
	}
}
