// Notices: insert, read and update, claims and their leases, release, and
// concurrent claims.

package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

func testNotices(t *testing.T, s store.Store) {
	r := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{r})
	fresh := &store.Notice{ID: "notice-1", RequestID: r.ID, Kind: "extension", Payload: []byte(`{"to":"person-0001@example.com"}`),
		CreatedAt: t0, NextAttemptAt: t0}
	// Delivered on the bus; the webhook failed twice and is tried again.
	retried := &store.Notice{ID: "notice-2", RequestID: r.ID, Kind: "extension", Payload: []byte{0, 1, 0xff}, CreatedAt: t0.Add(time.Millisecond),
		BusAt: t0.Add(time.Second), Attempts: 2, NextAttemptAt: t0.Add(time.Minute), LastError: "webhook: 503 Service Unavailable"}
	// Delivered everywhere: no payload left.
	done := &store.Notice{ID: "notice-3", RequestID: r.ID, Kind: "extension", CreatedAt: t0, BusAt: t0.Add(time.Second), WebhookAt: t0.Add(2 * time.Second)}
	mustTx(t, s, func(tx store.Tx) error {
		for _, n := range []*store.Notice{fresh, retried} {
			if err := tx.InsertNotice(t.Context(), n); err != nil {
				return err
			}
		}
		wantErr(t, "insert a known notice", tx.InsertNotice(t.Context(), &store.Notice{ID: fresh.ID, RequestID: r.ID, Kind: "other", CreatedAt: t0}), store.ErrDuplicate)
		return tx.InsertNotice(t.Context(), done) // the Tx goes on
	})
	read := func(step string, want ...*store.Notice) {
		t.Helper()
		mustTx(t, s, func(tx store.Tx) error {
			for _, n := range want {
				got, err := tx.Notice(t.Context(), n.ID)
				if err != nil {
					return err
				}
				same(t, step+": notice "+n.ID, got, n)
			}
			_, err := tx.Notice(t.Context(), "notice-unknown")
			wantErr(t, "unknown notice", err, store.ErrNotFound)
			return nil
		})
	}
	// DeepEqual tells a nil payload from an empty one: done's stays nil.
	read("after the insert", fresh, retried, done)

	// Every field survives an update, and a cleared payload reads back nil.
	fresh.BusAt, fresh.Attempts, fresh.NextAttemptAt, fresh.LastError = t0.Add(3*time.Second), 1, t0.Add(30*time.Second), "webhook: timeout"
	retried.Payload, retried.WebhookAt, retried.NextAttemptAt, retried.LastError = nil, t0.Add(2*time.Minute), time.Time{}, ""
	mustTx(t, s, func(tx store.Tx) error {
		for _, n := range []*store.Notice{fresh, retried} {
			if err := tx.UpdateNotice(t.Context(), n); err != nil {
				return err
			}
		}
		return nil
	})
	read("after the update", fresh, retried, done)
}

// testNoticeClaimAndLease: notices due come back in the order they are
// due, leased: another deliverer gets them once the lease runs out, or at
// once when the delivery attempt is recorded; a notice with nothing left
// to deliver never comes back.
func testNoticeClaimAndLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{r})
	notice := func(id string, next time.Time) *store.Notice {
		return &store.Notice{ID: id, RequestID: r.ID, Kind: "extension", Payload: []byte("notice " + id), CreatedAt: t0.Add(-time.Hour), NextAttemptAt: next}
	}
	// Inserted out of order.
	c, a, later, b := notice("n-c", t0), notice("n-a", t0.Add(-2*time.Minute)), notice("n-later", t0.Add(time.Millisecond)), notice("n-b", t0.Add(-time.Minute))
	delivered := notice("n-delivered", time.Time{})
	delivered.Payload, delivered.BusAt = nil, t0.Add(-time.Hour)
	mustTx(t, s, func(tx store.Tx) error {
		for _, n := range []*store.Notice{c, a, later, delivered, b} {
			if err := tx.InsertNotice(ctx, n); err != nil {
				return err
			}
		}
		return nil
	})

	claim := func(owner string, limit int, now time.Time) []store.Notice {
		return claimNotices(t, s, owner, limit, now)
	}
	same(t, "first claim, limit 2", claim("notifier-a", 2, t0), noticeValues(a, b))
	same(t, "second claim", claim("notifier-a", 10, t0), noticeValues(c))
	same(t, "claim by another owner within the lease", claim("notifier-b", 10, t0.Add(9*time.Second)), noticeValues(later))
	same(t, "claim by another owner after the lease", claim("notifier-c", 10, t0.Add(11*time.Second)), noticeValues(a, b, c))

	// notifier-c's lease lasts to t0+21s. It delivers a, and b fails and is
	// due again at once: recording the attempt ends the lease.
	a.Payload, a.BusAt, a.WebhookAt, a.NextAttemptAt = nil, t0.Add(12*time.Second), t0.Add(12*time.Second), time.Time{}
	b.Attempts, b.LastError, b.NextAttemptAt = 1, "webhook: 500", t0.Add(12*time.Second)
	mustTx(t, s, func(tx store.Tx) error {
		if err := tx.UpdateNotice(ctx, a); err != nil {
			return err
		}
		return tx.UpdateNotice(ctx, b)
	})
	same(t, "claim after the attempts were recorded", claim("notifier-d", 10, t0.Add(12*time.Second)), noticeValues(b))
	same(t, "claim much later", claim("notifier-e", 10, t0.Add(time.Hour)), noticeValues(c, later, b))
	same(t, "claim years later", claim("notifier-f", 10, t0.AddDate(5, 0, 0)), noticeValues(c, later, b))
}

// testNoticeRelease: notices leased to a notifier are not claimed by
// another until it releases them; released, they go at once. A release
// gives up the releasing owner's leases only, and a notifier whose lease
// ran out and was claimed by another has nothing left to release.
func testNoticeRelease(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{r})
	notice := func(id string, next time.Time) *store.Notice {
		return &store.Notice{ID: id, RequestID: r.ID, Kind: "extension", Payload: []byte("notice " + id), CreatedAt: t0.Add(-time.Hour), NextAttemptAt: next}
	}
	a, b, c := notice("n-a", t0.Add(-2*time.Minute)), notice("n-b", t0.Add(-time.Minute)), notice("n-c", t0)
	mustTx(t, s, func(tx store.Tx) error {
		for _, n := range []*store.Notice{a, b, c} {
			if err := tx.InsertNotice(ctx, n); err != nil {
				return err
			}
		}
		return nil
	})

	claim := func(owner string, limit int, now time.Time) []store.Notice {
		return claimNotices(t, s, owner, limit, now)
	}
	release := func(owner string) {
		t.Helper()
		if err := s.ReleaseNotices(ctx, owner); err != nil {
			t.Fatal(err)
		}
	}
	// notifier-a's lease on a and b, and notifier-b's on c, last to t0+10s.
	same(t, "claim by notifier-a", claim("notifier-a", 2, t0), noticeValues(a, b))
	same(t, "claim by notifier-b", claim("notifier-b", 10, t0), noticeValues(c))
	same(t, "claim by notifier-c within the leases", claim("notifier-c", 10, t0.Add(time.Second)), noticeValues())
	release("notifier-c") // holds nothing: changes nothing
	same(t, "claim after a release by an owner without leases", claim("notifier-c", 10, t0.Add(time.Second)), noticeValues())
	release("notifier-a")
	same(t, "claim after notifier-a's release", claim("notifier-c", 10, t0.Add(time.Second)), noticeValues(a, b))

	// notifier-c's lease on a and b lasts to t0+11s. notifier-b's ran out:
	// notifier-d claims c, and notifier-b's release leaves it with d.
	same(t, "claim of c after notifier-b's lease", claim("notifier-d", 10, t0.Add(10*time.Second+time.Millisecond)), noticeValues(c))
	release("notifier-b")
	same(t, "claim after a release by a notifier that lost its lease", claim("notifier-e", 10, t0.Add(10*time.Second+time.Millisecond)), noticeValues())
	release("notifier-d")
	same(t, "claim after notifier-d's release", claim("notifier-e", 10, t0.Add(10*time.Second+time.Millisecond)), noticeValues(c))
}

// noticeValues returns the notices themselves, for messages that show
// them rather than their addresses.
func noticeValues(ns ...*store.Notice) []store.Notice {
	out := []store.Notice{}
	for _, n := range ns {
		out = append(out, *n)
	}
	return out
}

// testNoticesConcurrentClaims: deliverers claiming at once get disjoint
// batches, and every notice is delivered once.
func testNoticesConcurrentClaims(t *testing.T, s store.Store) {
	r := newRequest("req-1", lifecycle.Open, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{r})
	const total = 90
	mustTx(t, s, func(tx store.Tx) error {
		for i := range total {
			n := &store.Notice{ID: fmt.Sprintf("n-%03d", i), RequestID: r.ID, Kind: "extension", Payload: []byte{byte(i)},
				CreatedAt: t0, NextAttemptAt: t0.Add(-time.Duration(i) * time.Millisecond)}
			if err := tx.InsertNotice(t.Context(), n); err != nil {
				return err
			}
		}
		return nil
	})
	claimed := claimConcurrently(t, "notifier", func(ctx context.Context, owner string) ([]*store.Notice, error) {
		batch, err := s.ClaimNotices(ctx, owner, 7, t0, t0.Add(time.Minute))
		if err != nil || len(batch) == 0 {
			return nil, err
		}
		if !slices.IsSortedFunc(batch, func(a, b *store.Notice) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) }) {
			return nil, errors.New("batch out of order")
		}
		err = s.Tx(ctx, func(tx store.Tx) error {
			for _, n := range batch {
				n.Payload, n.BusAt, n.NextAttemptAt = nil, t0, time.Time{}
				if err := tx.UpdateNotice(ctx, n); err != nil {
					return err
				}
			}
			return nil
		})
		return batch, err
	}, func(n *store.Notice) string { return "notice " + n.ID })
	same(t, "notices claimed", len(claimed), total)
}

// claimNotices claims notices for owner under a 10 s lease, as values.
func claimNotices(t *testing.T, s store.Store, owner string, limit int, now time.Time) []store.Notice {
	t.Helper()
	got, err := s.ClaimNotices(t.Context(), owner, limit, now, now.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return noticeValues(got...)
}
