// Exports: kept once until collected or expired.

package storetest

import (
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// testExports: DropExports destroys one request's export keys and keeps
// the digests; ExportsEndedBefore lists the requests ended before a time
// that still hold a key.
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
			k.ExportKey, k.ExportSHA256 = []byte("sealed key of "+r.ID), []byte{byte(i)}
			tasks = append(tasks, k)
		}
	}
	insert(t, s, reqs, tasks...)
	var dropped, again int
	err := s.Tx(ctx, func(tx store.Tx) error {
		var err error
		if dropped, err = tx.DropExports(ctx, "req-collected"); err != nil {
			return err
		}
		again, err = tx.DropExports(ctx, "req-collected")
		return err
	})
	if err != nil || dropped != 2 || again != 0 {
		t.Fatalf("DropExports = %d, then %d (%v), want 2 then 0", dropped, again, err)
	}
	ids, err := s.ExportsEndedBefore(ctx, t0.Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"req-old"}) {
		t.Errorf("exports ended 30 days ago still held: %v, want [req-old]", ids)
	}
	for _, tt := range []struct {
		id   string
		held bool
	}{{"req-old", true}, {"req-recent", true}, {"req-collected", false}, {"req-open", true}} {
		_, ks, err := s.Get(ctx, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			if (len(k.ExportKey) > 0) != tt.held || len(k.ExportSHA256) == 0 {
				t.Errorf("%s/%s: export key held %v (want %v), digest %x", tt.id, k.System, len(k.ExportKey) > 0, tt.held, k.ExportSHA256)
			}
		}
	}
}

// testExportLinks: a link is spent once, before it expires; a link
// never made, spent or expired is ErrNotFound alike; of concurrent uses
// one wins.
func testExportLinks(t *testing.T, s store.Store) {
	ctx := t.Context()
	link := func(name string, expires time.Time) []byte {
		h := sha256.Sum256([]byte(name))
		if err := s.InsertExportLink(ctx, &store.ExportLink{Hash: h[:], RequestID: "req-" + name, CreatedAt: t0, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		return h[:]
	}
	fresh, stale, raced := link("fresh", t0.Add(time.Hour)), link("stale", t0.Add(time.Minute)), link("raced", t0.Add(time.Hour))
	if err := s.InsertExportLink(ctx, &store.ExportLink{Hash: fresh, RequestID: "req-other", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("a second link of one hash: %v, want ErrDuplicate", err)
	}
	now := t0.Add(2 * time.Minute)
	l, err := s.UseExportLink(ctx, fresh, now)
	if err != nil || l.RequestID != "req-fresh" || !l.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("first use = %+v, %v", l, err)
	}
	unknown := sha256.Sum256([]byte("never made"))
	for name, h := range map[string][]byte{"spent": fresh, "expired": stale, "never made": unknown[:]} {
		if _, err := s.UseExportLink(ctx, h, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s link: %v, want ErrNotFound", name, err)
		}
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.UseExportLink(ctx, raced, now); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d concurrent uses of one link won, want 1", wins.Load())
	}
}
