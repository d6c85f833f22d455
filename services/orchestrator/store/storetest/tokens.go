// Tokens of the API, and what the API's roles need of requests: who
// submitted one, the notes of decisions on it, the unverified ones due to
// expire.

package storetest

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// testTokens: a token is found by its hash, listed, revoked once (a second
// revocation keeps the first time), touched; ids and hashes are unique.
func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	hash := func(secret string) []byte { h := sha256.Sum256([]byte(secret)); return h[:] }
	a := &store.Token{ID: "tok_a", Hash: hash("a"), Name: "privacy-team", Tenant: "demo", Role: "dpo", CreatedAt: t0}
	b := &store.Token{ID: "tok_b", Hash: hash("b"), Name: "bootstrap", Tenant: "*", Role: "admin", CreatedAt: t0.Add(time.Second),
		ExpiresAt: t0.AddDate(0, 3, 0)}
	for _, k := range []*store.Token{a, b} {
		if err := s.InsertToken(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	for _, dup := range []*store.Token{{ID: "tok_a", Hash: hash("c"), Name: "x", Tenant: "demo", Role: "dpo", CreatedAt: t0},
		{ID: "tok_c", Hash: hash("a"), Name: "x", Tenant: "demo", Role: "dpo", CreatedAt: t0}} {
		if err := s.InsertToken(ctx, dup); !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("token %s with a known id or hash: %v, want ErrDuplicate", dup.ID, err)
		}
	}
	got, err := s.TokenByHash(ctx, hash("b"))
	if err != nil {
		t.Fatal(err)
	}
	same(t, "token by hash", got, b)
	if _, err := s.TokenByHash(ctx, hash("nobody")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	if err := s.TouchToken(ctx, "tok_a", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "tok_a", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "tok_a", t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "tok_nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	all, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.LastUsedAt, a.RevokedAt = t0.Add(time.Hour), t0.Add(2*time.Hour)
	same(t, "tokens, oldest first", all, []*store.Token{a, b})
}

// testSubmitters: who submitted a request and the notes of its decisions
// are kept; a list filters by submitter; UnverifiedBefore returns the
// requests pending verification received and filed before a time, oldest
// first.
func testSubmitters(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := newRequest("req-old", lifecycle.PendingVerification, t0.AddDate(0, 1, 0))
	old.ReceivedAt, old.SubmittedBy = t0.AddDate(0, 0, -40), "tok_form"
	old.CreatedAt = old.ReceivedAt
	older := newRequest("req-older", lifecycle.PendingVerification, t0.AddDate(0, 1, 0))
	older.ReceivedAt, older.SubmittedBy = t0.AddDate(0, 0, -50), "tok_form"
	older.CreatedAt = older.ReceivedAt
	recent := newRequest("req-recent", lifecycle.PendingVerification, t0.AddDate(0, 1, 0))
	recent.ReceivedAt, recent.SubmittedBy = t0.AddDate(0, 0, -1), "tok_other"
	open := newRequest("req-open", lifecycle.Open, t0.AddDate(0, 1, 0))
	open.ReceivedAt, open.VerificationNote = t0.AddDate(0, 0, -60), "code sent to the address on file"
	insert(t, s, []*store.Request{old, older, recent, open})

	acme := newRequest("req-acme", lifecycle.PendingVerification, t0.AddDate(0, 1, 0))
	acme.Tenant, acme.ReceivedAt = "acme", t0.AddDate(0, 0, -45)
	acme.CreatedAt = acme.ReceivedAt
	// Back-dated: received 45 days ago, filed now. Its wait counts from
	// filing.
	backdated := newRequest("req-backdated", lifecycle.PendingVerification, t0.AddDate(0, 1, 0))
	backdated.ReceivedAt = t0.AddDate(0, 0, -45)
	insert(t, s, []*store.Request{acme, backdated})
	unverified := func(only, except []string) []string {
		var ids []string
		mustTx(t, s, func(tx store.Tx) error {
			due, err := tx.UnverifiedBefore(ctx, t0.AddDate(0, 0, -30), only, except, 10)
			for _, r := range due {
				ids = append(ids, r.ID)
			}
			return err
		})
		return ids
	}
	same(t, "unverified before 30 days ago", unverified(nil, nil), []string{"req-older", "req-acme", "req-old"})
	same(t, "of acme only", unverified([]string{"acme"}, nil), []string{"req-acme"})
	same(t, "but acme's", unverified(nil, []string{"acme", "globex"}), []string{"req-older", "req-old"})

	mine, _, err := s.List(ctx, store.ListQuery{SubmittedBy: "tok_form", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 2 || mine[0].SubmittedBy != "tok_form" || mine[1].SubmittedBy != "tok_form" {
		t.Errorf("list by submitter: %d requests", len(mine))
	}
	mustTx(t, s, func(tx store.Tx) error {
		r, err := tx.Request(ctx, "req-old")
		if err != nil {
			return err
		}
		r.State, r.DenialNote = lifecycle.Denied, "third identical request this week"
		return tx.UpdateRequest(ctx, r)
	})
	got, _, err := s.Get(ctx, "req-old")
	if err != nil {
		t.Fatal(err)
	}
	if got.DenialNote != "third identical request this week" || got.SubmittedBy != "tok_form" || got.State != lifecycle.Denied {
		t.Errorf("a refusal's note and the submitter: %+v", got)
	}
	if got, _, _ := s.Get(ctx, "req-open"); got.VerificationNote != "code sent to the address on file" {
		t.Errorf("verification note %q", got.VerificationNote)
	}
}
