package proof_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

// A task verifies with the orchestrator's key only: a connector's key, a
// changed field or no signature at all is refused.
func TestTaskSignature(t *testing.T) {
	w := prooftest.NewWorld(t, "accounts")
	now := prooftest.KeysFrom.AddDate(0, 1, 0)
	signed := func(s *proof.Signer) *lethev1.Task {
		task := &lethev1.Task{RequestId: "req-1", TaskId: "req-1.accounts", System: "accounts", Action: lethev1.Action_ACTION_ERASE,
			Tenant: "demo", Subject: &lethev1.Subject{Email: "person-0001@example.com"}, Deadline: timestamppb.New(now), Attempt: 1}
		if err := proof.SignTask(s, task); err != nil {
			t.Fatal(err)
		}
		return task
	}
	if err := proof.VerifyTask(w.Keys, signed(w.Orchestrator), now); err != nil {
		t.Fatalf("a task the orchestrator signed: %v", err)
	}
	changes := map[string]func(*lethev1.Task){
		"other subject":  func(x *lethev1.Task) { x.Subject.Email = "person-0002@example.com" },
		"other system":   func(x *lethev1.Task) { x.System = "billing" },
		"other attempt":  func(x *lethev1.Task) { x.Attempt = 2 },
		"no signature":   func(x *lethev1.Task) { x.Signature = nil },
		"signature flip": func(x *lethev1.Task) { x.Signature[0] ^= 1 },
	}
	for name, change := range changes {
		x := proto.Clone(signed(w.Orchestrator)).(*lethev1.Task)
		change(x)
		if err := proof.VerifyTask(w.Keys, x, now); !errors.Is(err, proof.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if err := proof.VerifyTask(w.Keys, signed(w.Connectors["accounts"]), now); !errors.Is(err, proof.ErrWrongSystem) {
		t.Errorf("a task signed by a connector: %v", err)
	}
	unsigned := signed(w.Orchestrator)
	unsigned.KeyId, unsigned.Signature = "", nil
	if err := proof.VerifyTask(w.Keys, unsigned, now); !errors.Is(err, proof.ErrUnknownKey) {
		t.Errorf("an unsigned task: %v", err)
	}
}

// An account.deleted event verifies with a key registered for its source.
func TestAccountDeletedSignature(t *testing.T) {
	w := prooftest.NewWorld(t, "accounts", "billing")
	now := prooftest.KeysFrom.AddDate(0, 1, 0)
	event := func(s *proof.Signer, source string) *lethev1.AccountDeleted {
		e := &lethev1.AccountDeleted{EventId: "ev-1", Tenant: "demo", Subject: &lethev1.Subject{Email: "person-0001@example.com"},
			DeletedAt: timestamppb.New(now), Source: source}
		if err := proof.SignAccountDeleted(s, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	if err := proof.VerifyAccountDeleted(w.Keys, event(w.Connectors["accounts"], "accounts"), now); err != nil {
		t.Fatalf("accounts' own event: %v", err)
	}
	if err := proof.VerifyAccountDeleted(w.Keys, event(w.Connectors["billing"], "accounts"), now); !errors.Is(err, proof.ErrWrongSystem) {
		t.Errorf("billing's key signing for accounts: %v", err)
	}
	e := event(w.Connectors["accounts"], "accounts")
	e.Tenant = "other"
	if err := proof.VerifyAccountDeleted(w.Keys, e, now); !errors.Is(err, proof.ErrBadSignature) {
		t.Errorf("a changed event: %v", err)
	}
}
