package proof

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

// Domains of the bus messages that make something happen: a task makes a
// connector erase; an account.deleted event opens a verified erasure. Each
// is signed, so that credentials to the bus alone erase no one.
const (
	taskDomain           = "task"
	accountDeletedDomain = "account_deleted"
)

// canonical is the deterministic encoding of m with its signature cleared
// by clear (on a copy).
func canonical[M proto.Message](m M, clear func(M)) ([]byte, error) {
	c := proto.Clone(m).(M)
	clear(c)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("canonical bytes: %w", err)
	}
	return b, nil
}

func clearTask(t *lethev1.Task) { t.Signature = nil }

func clearAccountDeleted(e *lethev1.AccountDeleted) { e.Signature = nil }

// SignTask sets the task's key id and the orchestrator's signature.
func SignTask(s *Signer, t *lethev1.Task) error {
	t.KeyId = s.Key.ID
	b, err := canonical(t, clearTask)
	if err != nil {
		return err
	}
	t.Signature = s.Sign(taskDomain, b)
	return nil
}

// VerifyTask checks that t is signed by an orchestrator key of ks valid
// at now.
func VerifyTask(ks KeySet, t *lethev1.Task, now time.Time) error {
	k, err := ks.For(t.GetKeyId(), RoleOrchestrator, "", now)
	if err != nil {
		return err
	}
	b, err := canonical(t, clearTask)
	if err != nil {
		return err
	}
	return verify(k, taskDomain, b, t.GetSignature())
}

// SignAccountDeleted sets the event's key id and signature: s is the key
// of the service that emits it, registered for the event's source.
func SignAccountDeleted(s *Signer, e *lethev1.AccountDeleted) error {
	e.KeyId = s.Key.ID
	b, err := canonical(e, clearAccountDeleted)
	if err != nil {
		return err
	}
	e.Signature = s.Sign(accountDeletedDomain, b)
	return nil
}

// VerifyAccountDeleted checks that e is signed by a key of ks registered
// for its source (the emitting service's system) and valid at now.
func VerifyAccountDeleted(ks KeySet, e *lethev1.AccountDeleted, now time.Time) error {
	k, err := ks.For(e.GetKeyId(), RoleConnector, e.GetSource(), now)
	if err != nil {
		return err
	}
	b, err := canonical(e, clearAccountDeleted)
	if err != nil {
		return err
	}
	return verify(k, accountDeletedDomain, b, e.GetSignature())
}
