package engine_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// ended submits n requests and has alpha fail each for good: each ends,
// failed, its certificate waiting.
func (f *fixture) ended(t *testing.T, n int) []string {
	t.Helper()
	ctx := t.Context()
	var ids []string
	for i := range n {
		r, _, err := f.eng.Submit(ctx, engine.NewRequest{Type: lifecycle.Erasure, Tenant: "demo", Email: fmt.Sprintf("person-%04d@example.com", i+1),
			Verified: true, Source: engine.SourceAPI})
		if err != nil {
			t.Fatal(err)
		}
		rc, raw := f.failure(t, r.ID)
		if err := f.eng.RecordReceipt(ctx, rc, raw); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

func (f *fixture) waiting(t *testing.T) int {
	t.Helper()
	st, err := f.st.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.CertificatesWaiting
}

// verified reads the request's stored certificate and verifies it.
func (f *fixture) verified(t *testing.T, id string) *proof.Certificate {
	t.Helper()
	b, err := f.st.Certificate(t.Context(), id)
	if err != nil {
		t.Fatalf("certificate of %s: %v", id, err)
	}
	c, err := proof.Verify(b, f.eng.Keys())
	if err != nil {
		t.Fatalf("certificate of %s: %v", id, err)
	}
	return c
}

// The transaction that ends a request leaves its certificate waiting and
// wakes the certifier once committed; IssueHeld issues every waiting one,
// each on a checkpoint covering its log; a second round finds none.
func TestIssueHeld(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	ids := f.ended(t, 3)
	select {
	case <-f.certify:
	default:
		t.Error("the end of a request did not wake the certifier")
	}
	if _, err := f.st.Certificate(ctx, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("certificate before it is issued: %v, want not found", err)
	}
	if n := f.waiting(t); n != 3 {
		t.Fatalf("%d certificates wait, want 3", n)
	}
	n, err := f.eng.IssueHeld(ctx, "")
	if err != nil || n != 3 {
		t.Fatalf("IssueHeld = %d, %v; want 3 issued", n, err)
	}
	for _, id := range ids {
		if c := f.verified(t, id); c.RequestID != id || c.State != lifecycle.Failed {
			t.Errorf("certificate of %s: request %s, %s; want it, failed", id, c.RequestID, c.State)
		}
	}
	if n := f.waiting(t); n != 0 {
		t.Errorf("%d certificates wait after they were issued", n)
	}
	if got := testutil.ToFloat64(f.m.CertificatesIssued); got != 3 {
		t.Errorf("lethe_orchestrator_certificates_issued_total = %v, want 3", got)
	}
	if n, err := f.eng.IssueHeld(ctx, ""); err != nil || n != 0 {
		t.Errorf("a second round issued %d (%v), want none", n, err)
	}
	f.logs.NoneOf(t, "person-0001@example.com")
}

// A reader of a certificate that waits gets it issued first, and only it.
func TestCertificateIssuedOnRead(t *testing.T) {
	f := newFixture(t)
	ids := f.ended(t, 2)
	b, err := f.eng.Certificate(t.Context(), ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if c, err := proof.Verify(b, f.eng.Keys()); err != nil || c.RequestID != ids[1] {
		t.Fatalf("certificate read: %v, %v", c, err)
	}
	if n := f.waiting(t); n != 1 {
		t.Errorf("%d certificates wait after one was read, want the other's", n)
	}
	if _, err := f.eng.Certificate(t.Context(), "req_unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("certificate of an unknown request: %v, want not found", err)
	}
}

// A request that changes again while its certificate is being built
// (here: its log grows, and its certificate waits for the larger log) is
// not written from the older snapshot: it waits on, and the next round
// issues it on a checkpoint covering the change.
func TestIssueHeldChangedMeanwhile(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	id := f.ended(t, 1)[0]
	var grown int64
	f.st.during = func() {
		err := f.st.Store.Tx(ctx, func(tx store.Tx) error {
			if err := tx.AppendLog(ctx, id, proof.Entry{RequestID: id, Event: proof.EventNoticeDelivered, At: f.now,
				Notice: proof.NoticeExtension, Channel: proof.ChannelBus}.Encode()); err != nil {
				return err
			}
			var err error
			if grown, err = tx.LogSize(ctx); err != nil {
				return err
			}
			return tx.HoldCertificate(ctx, id, grown)
		})
		if err != nil {
			t.Error(err)
		}
	}
	if n, err := f.eng.IssueHeld(ctx, ""); err != nil || n != 0 {
		t.Fatalf("IssueHeld with a change meanwhile = %d, %v; want none issued", n, err)
	}
	if _, err := f.st.Certificate(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a certificate from before the change was written: %v", err)
	}
	if n, err := f.eng.IssueHeld(ctx, ""); err != nil || n != 1 {
		t.Fatalf("the next round = %d, %v; want it issued", n, err)
	}
	th, err := proof.OpenCheckpoint(f.eng.Keys(), []byte(f.verified(t, id).Log.Checkpoint))
	if err != nil || th.Size < grown {
		t.Errorf("issued on a checkpoint of %d entries (%v), want at least %d", th.Size, err, grown)
	}
}
