package engine

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newID returns a request id that sorts by creation time: 48 bits of
// milliseconds and 80 random bits, as in a ULID.
func newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	return "req_" + idEncoding.EncodeToString(b[:])
}

// Submit stores a new request with a task per registered system; a verified
// request is opened at once. A second submission with the same SourceRef
// returns the first request and created=false.
func (e *Engine) Submit(ctx context.Context, nr NewRequest) (r *store.Request, created bool, err error) {
	now := e.Now()
	received := e.receivedAt(nr.ReceivedAt)
	spec, pol, specJSON, err := e.policyFor(nr.Tenant, received)
	if err != nil {
		return nil, false, fmt.Errorf("submit: %w", err)
	}
	var logSpec *deadline.Spec
	if specJSON != "" {
		logSpec = &spec
	}
	sealed, err := e.sealSubject(nr.Email, nr.UserID)
	if err != nil {
		return nil, false, err
	}
	// Sealed to each connector before the transaction, which on SQLite
	// holds the store for everyone: X25519 is most of a task's cost.
	ids := identity{subject: &lethev1.Subject{Email: nr.Email, UserId: nr.UserID}}
	if nr.Verified {
		ids.sealed = e.sealForSystems(ids.subject, now)
	}
	var scope *proof.PurposeScope
	if nr.Type.ByPurpose() {
		if scope, err = e.purposeScope(nr); err != nil {
			return nil, false, err
		}
	}
	fresh := store.Request{
		ID:             newID(now),
		Tenant:         nr.Tenant,
		Type:           nr.Type,
		State:          lifecycle.PendingVerification,
		SealedSubject:  sealed,
		SubjectHash:    pseudonym.Hash(e.cfg.HashKey, subjectKey(nr.Email, nr.UserID)),
		Source:         nr.Source,
		SourceRef:      nr.SourceRef,
		ReceivedAt:     received,
		Deadline:       pol.Deadline(received),
		DeadlinePolicy: specJSON,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	if nr.By != nil {
		fresh.SubmittedBy = nr.By.ID
	}
	if scope != nil {
		b, err := json.Marshal(scope)
		if err != nil {
			return nil, false, err
		}
		fresh.Scope = string(b)
	}
	submit := func(tx store.Tx) error {
		f := fresh // a retried transaction starts from the request as it came
		r, created = &f, false
		if nr.SourceRef != "" {
			prev, err := tx.RequestBySourceRef(ctx, nr.SourceRef)
			if err == nil {
				r = prev
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		created = true
		// A verified request is stored open, its tasks with their first
		// attempt: each row is written once (on SQLite the store's one
		// writer is the pipeline's bound). The log still tells it in
		// order: created, verified, each task published.
		var verified proof.Entry
		if nr.Verified {
			check := Decision{Method: "other", Note: "verified by the submitter"}
			if nr.By != nil {
				check.Actor = *nr.By
			}
			verified = opened(r, check, nr.By != nil, now)
		}
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		received, dl := r.ReceivedAt, r.Deadline
		if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventCreated, At: now, Tenant: r.Tenant, Type: r.Type,
			SubjectHash: r.SubjectHash, ReceivedAt: &received, Deadline: &dl, DeadlinePolicy: logSpec, Detail: "source=" + r.Source, Actor: nr.By,
			Purposes: scope}); err != nil {
			return err
		}
		var tasks []*store.Task
		for _, sys := range scopeSystems(e.cfg.Systems, scope) {
			tasks = append(tasks, &store.Task{ID: events.TaskID(r.ID, sys), RequestID: r.ID, System: sys, State: lifecycle.TaskPending})
		}
		if !nr.Verified {
			for _, k := range tasks {
				if err := tx.InsertTask(ctx, k); err != nil {
					return err
				}
			}
			return nil
		}
		if err := record(ctx, tx, verified); err != nil {
			return err
		}
		for _, k := range tasks {
			if err := e.attempt(ctx, tx, r, ids, k, tx.InsertTask, now); err != nil {
				return err
			}
		}
		return nil
	}
	if nr.Verified && scope == nil {
		ids.signed = e.presign(&fresh, ids)
	}
	err = e.cfg.Store.Tx(ctx, submit)
	if errors.Is(err, store.ErrDuplicate) && nr.SourceRef != "" {
		// Another replica stored the same event's request meanwhile: the
		// second look finds it.
		err = e.cfg.Store.Tx(ctx, submit)
	}
	if err != nil {
		return nil, false, fmt.Errorf("submit: %w", err)
	}
	if created {
		e.m.Created.WithLabelValues(string(r.Type), r.Source).Inc()
		e.log.Info("request created", "request_id", r.ID, "type", r.Type, "tenant", r.Tenant, "source", r.Source, "state", r.State)
		e.cfg.Relay.Wake()
	}
	return r, created, nil
}

func subjectKey(email, userID string) string {
	if email != "" {
		return "email:" + pseudonym.Normalize(email)
	}
	return "user_id:" + userID
}

// Verify records that the subject's identity was checked, how and by
// whom, and opens the request. It returns store.ErrNotFound,
// ErrBadDecision or ErrConflict.
func (e *Engine) Verify(ctx context.Context, id string, d Decision) (*store.Request, error) {
	if err := CheckVerification(d); err != nil {
		return nil, err
	}
	var r *store.Request
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		var err error
		if r, err = tx.Request(ctx, id); err != nil {
			return err
		}
		if r.State != lifecycle.PendingVerification {
			return fmt.Errorf("request is %s, not %s: %w", r.State, lifecycle.PendingVerification, ErrConflict)
		}
		subject, err := e.subject(r)
		if err != nil {
			return err
		}
		return e.open(ctx, tx, r, identity{subject: subject}, d, true, e.Now())
	})
	if err != nil {
		return nil, err
	}
	e.log.Info("request verified", "request_id", r.ID)
	e.cfg.Relay.Wake()
	return r, nil
}

// open moves a request to open and enqueues its first attempt per system,
// for ids (r's identifiers, opened once for all its tasks). A check made by a person (byPerson) is logged with them, its method and
// its note's hash; one made by an event (an account's own deletion) is
// not a person's decision.
func (e *Engine) open(ctx context.Context, tx store.Tx, r *store.Request, ids identity, check Decision, byPerson bool, now time.Time) error {
	entry := opened(r, check, byPerson, now)
	if err := e.updateRequest(ctx, tx, r); err != nil {
		return err
	}
	if err := record(ctx, tx, entry); err != nil {
		return err
	}
	tasks, err := tx.Tasks(ctx, r.ID)
	if err != nil {
		return err
	}
	for _, k := range tasks {
		if err := e.attempt(ctx, tx, r, ids, k, tx.UpdateTask, now); err != nil {
			return err
		}
	}
	return nil
}

// opened moves r to open after check, and is the log's entry saying so.
func opened(r *store.Request, check Decision, byPerson bool, now time.Time) proof.Entry {
	r.State, r.UpdatedAt = lifecycle.Open, now
	entry := proof.Entry{RequestID: r.ID, Event: proof.EventVerified, At: now}
	if byPerson {
		r.VerificationNote = check.Note
		entry.Actor, entry.Method, entry.NoteSHA256 = &check.Actor, check.Method, noteHash(check.Note)
	}
	return entry
}

// attempt enqueues the next attempt of task k of r, whose identifiers are
// ids, storing k with put: tx.UpdateTask, or tx.InsertTask for a task not
// stored yet. Its wait for an answer, which doubles with each attempt
// (exponential backoff), starts when the relay has published it.
func (e *Engine) attempt(ctx context.Context, tx store.Tx, r *store.Request, ids identity, k *store.Task, put func(context.Context, *store.Task) error, now time.Time) error {
	k.Attempts++
	k.State = lifecycle.TaskPublished
	k.NextAttemptAt, k.PublishedAt, k.PublishedSeq = time.Time{}, time.Time{}, 0
	if err := put(ctx, k); err != nil {
		return err
	}
	t := task(r, k)
	if scope, err := PurposesOf(r); err != nil {
		return err
	} else if scope != nil {
		t.Categories = scope.Systems[k.System]
	}
	if r.Type == lifecycle.Sweep {
		// About no one: a sweep carries no subject to seal.
		sw, err := sweepTask(r, k.System)
		if err != nil {
			return err
		}
		t.Sweep = sw
		return e.enqueue(ctx, tx, r, k, t, now)
	}
	if r.Type == lifecycle.Lift {
		// The restriction's marks are its own: the lift names no one.
		s, err := LiftOf(r)
		if err != nil {
			return err
		}
		t.RestrictionId = s.Restriction
		return e.enqueue(ctx, tx, r, k, t, now)
	}
	if r.Type == lifecycle.Reapply {
		// People named by keyed hashes only: nothing to seal.
		s, err := reapplyOf(r)
		if err != nil {
			return err
		}
		t.SubjectHashes = s.Hashes
		return e.enqueue(ctx, tx, r, k, t, now)
	}
	// Sealed: the broker and the topic's readers see no identifier; only
	// the system's connector opens it.
	to, err := e.Keys().SealKeyFor(k.System, now)
	if err != nil {
		// One system not registered right must not hold up the others: its
		// attempt fails (and, tried again, ends in a dead letter that pages).
		k.State, k.Detail, k.NextAttemptAt = lifecycle.TaskRetrying, "no sealing key registered for the system", now.Add(e.wait(k.Attempts-k.RoundStart))
		if err := tx.UpdateTask(ctx, k); err != nil {
			return err
		}
		return record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventTaskFailed, At: now, System: k.System, Attempt: k.Attempts,
			Detail: "no sealing key registered"})
	}
	if t.SealedSubject = ids.sealed[k.System]; t.SealedSubject == nil {
		if t.SealedSubject, err = proof.SealSubject(to, ids.subject); err != nil {
			return err
		}
	}
	if ahead := ids.signed[k.System]; ahead != nil {
		t.KeyId, t.Signature = ahead.GetKeyId(), ahead.GetSignature()
		if !proto.Equal(t, ahead) {
			t.KeyId, t.Signature = "", nil // not the task signed ahead
		}
	}
	return e.enqueue(ctx, tx, r, k, t, now)
}

// presign signs, outside the store's transaction, the first attempt of
// each task a new request r will have (the store's one writer should not
// spend its time on signatures): attempt uses them where its task is the
// same, and signs anew where it is not.
func (e *Engine) presign(r *store.Request, ids identity) map[string]*lethev1.Task {
	signed := map[string]*lethev1.Task{}
	for sys, sealed := range ids.sealed {
		t := task(r, &store.Task{ID: events.TaskID(r.ID, sys), System: sys, Attempts: 1})
		t.SealedSubject = sealed
		if proof.SignTask(e.cfg.Signer, t) == nil {
			signed[sys] = t
		}
	}
	return signed
}

// enqueue signs task t of k, unless it was signed ahead, and puts it in
// the outbox, logged.
func (e *Engine) enqueue(ctx context.Context, tx store.Tx, r *store.Request, k *store.Task, t *lethev1.Task, now time.Time) error {
	// Signed: a connector acts on no task but the orchestrator's.
	if len(t.GetSignature()) == 0 {
		if err := proof.SignTask(e.cfg.Signer, t); err != nil {
			return err
		}
	}
	msg, err := events.TaskMessage(t, Source, now)
	if err != nil {
		return err
	}
	if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventTaskPublished, At: now, System: k.System, Attempt: k.Attempts}); err != nil {
		return err
	}
	return tx.Enqueue(ctx, store.OutboxMessage{Topic: events.TaskTopic(k.System), ID: msg.ID, Type: msg.Type, Key: msg.Key, Payload: msg.Data, Created: now,
		TaskID: k.ID, Wait: e.wait(k.Attempts - k.RoundStart)})
}

// task is the task message of k, without the subject (which only the one
// sent to the system carries, sealed to it).
func task(r *store.Request, k *store.Task) *lethev1.Task {
	t := &lethev1.Task{
		RequestId: r.ID,
		TaskId:    k.ID,
		System:    k.System,
		Action:    r.Type.Action(),
		Tenant:    r.Tenant,
		Deadline:  timestamppb.New(r.Deadline),
		Attempt:   uint32(k.Attempts),
	}
	return t
}
