package proof

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

// Domains of the bus messages that make something happen: a task makes a
// connector erase; an account.deleted event opens a verified erasure; a
// notice's acknowledgement is evidence in a certificate. Each is signed,
// so that credentials to the bus alone erase no one and prove nothing.
const (
	taskDomain           = "task"
	accountDeletedDomain = "account_deleted"
	// noticeDeliveredDomain: a mailer's acknowledgement makes a notice
	// count as delivered.
	noticeDeliveredDomain = "notice_delivered"
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

func clearNoticeDelivered(n *lethev1.NoticeDelivered) { n.Signature = nil }

// signMessage is s's signature, in domain, over m's canonical bytes.
func signMessage[M proto.Message](s *Signer, domain string, m M, clear func(M)) ([]byte, error) {
	b, err := canonical(m, clear)
	if err != nil {
		return nil, err
	}
	return s.Sign(domain, b), nil
}

// verifyMessage checks sig, in domain, over m's canonical bytes with the
// key keyID of ks, which must be of role (and system) and valid at now.
func verifyMessage[M proto.Message](ks KeySet, keyID, role, system string, now time.Time, domain string, m M, clear func(M), sig []byte) error {
	k, err := ks.For(keyID, role, system, now)
	if err != nil {
		return err
	}
	b, err := canonical(m, clear)
	if err != nil {
		return err
	}
	return verify(k, domain, b, sig)
}

// SignTask sets the task's key id and the orchestrator's signature.
func SignTask(s *Signer, t *lethev1.Task) (err error) {
	t.KeyId = s.Key.ID
	t.Signature, err = signMessage(s, taskDomain, t, clearTask)
	return err
}

// VerifyTask checks that t is signed by an orchestrator key of ks valid
// at now.
func VerifyTask(ks KeySet, t *lethev1.Task, now time.Time) error {
	return verifyMessage(ks, t.GetKeyId(), RoleOrchestrator, "", now, taskDomain, t, clearTask, t.GetSignature())
}

// SignAccountDeleted sets the event's key id and signature: s is the key
// of the service that emits it, registered for the event's source.
func SignAccountDeleted(s *Signer, e *lethev1.AccountDeleted) (err error) {
	e.KeyId = s.Key.ID
	e.Signature, err = signMessage(s, accountDeletedDomain, e, clearAccountDeleted)
	return err
}

// VerifyAccountDeleted checks that e is signed by a key of ks registered
// for its source (the emitting service's system) and valid at now.
func VerifyAccountDeleted(ks KeySet, e *lethev1.AccountDeleted, now time.Time) error {
	return verifyMessage(ks, e.GetKeyId(), RoleConnector, e.GetSource(), now, accountDeletedDomain, e, clearAccountDeleted, e.GetSignature())
}

// Mailer is the system a mailer's key is registered for (a key of role
// connector): the service that hands notices to data subjects and
// acknowledges each (NoticeDelivered); notices on the bus are sealed to
// its sealing key.
const Mailer = "mailer"

// SignNoticeDelivered sets a mailer's acknowledgement's key id and
// signature.
func SignNoticeDelivered(s *Signer, n *lethev1.NoticeDelivered) (err error) {
	n.KeyId = s.Key.ID
	n.Signature, err = signMessage(s, noticeDeliveredDomain, n, clearNoticeDelivered)
	return err
}

// VerifyNoticeDelivered checks that n is signed by a key of ks registered
// for the mailer and valid at now.
func VerifyNoticeDelivered(ks KeySet, n *lethev1.NoticeDelivered, now time.Time) error {
	return verifyMessage(ks, n.GetKeyId(), RoleConnector, Mailer, now, noticeDeliveredDomain, n, clearNoticeDelivered, n.GetSignature())
}
