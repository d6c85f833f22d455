// Exports: kept once until collected or expired.

package storetest

import (
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// testExports: DropExports deletes one request's export data and keeps
// the digests; ExpireExports deletes that of requests ended before a time,
// and counts the tasks.
func testExports(t *testing.T, s store.Store) {
	ctx := t.Context()
	var reqs []*store.Request
	var tasks []*store.Task
	for i, ended := range []time.Time{t0.Add(-40 * 24 * time.Hour), t0.Add(-10 * 24 * time.Hour), t0.Add(-50 * 24 * time.Hour), {}} {
		r := newRequest([]string{"req-old", "req-recent", "req-collected", "req-open"}[i], lifecycle.Fulfilled, t0.AddDate(0, 1, 0))
		r.Type, r.CompletedAt = lifecycle.Export, ended
		if ended.IsZero() {
			r.State = lifecycle.Open
		}
		reqs = append(reqs, r)
		for _, sys := range []string{"alpha", "beta"} {
			k := newTask(r.ID, sys, lifecycle.TaskAnswered, time.Time{})
			k.ExportData, k.ExportSHA256 = []byte("sealed "+r.ID), []byte{byte(i)}
			tasks = append(tasks, k)
		}
	}
	insert(t, s, reqs, tasks...)
	if err := s.DropExports(ctx, "req-collected"); err != nil {
		t.Fatal(err)
	}
	n, err := s.ExpireExports(ctx, t0.Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("expired %d tasks' exports, want 2 (req-old's)", n)
	}
	for _, tt := range []struct {
		id   string
		held bool
	}{{"req-old", false}, {"req-recent", true}, {"req-collected", false}, {"req-open", true}} {
		_, ks, err := s.Get(ctx, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			if (len(k.ExportData) > 0) != tt.held || len(k.ExportSHA256) == 0 {
				t.Errorf("%s/%s: export held %v (want %v), digest %x", tt.id, k.System, len(k.ExportData) > 0, tt.held, k.ExportSHA256)
			}
		}
	}
}
