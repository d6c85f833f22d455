package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
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

// Request types.
const (
	TypeErasure = "erasure"
	TypeExport  = "export"
)

// Sources of requests.
const (
	sourceAPI            = "api"
	sourceAccountDeleted = "account_deleted"
)

// ErrConflict is returned for a transition the request's state forbids.
var ErrConflict = errors.New("conflict")

// NewRequest is a request as it arrives, already validated.
type NewRequest struct {
	Type       string
	Tenant     string
	Email      string
	UserID     string
	ReceivedAt time.Time // zero: now
	Verified   bool
	Source     string // api | account_deleted
	SourceRef  string // unique per source event; "" for none
}

const source = "lethe/orchestrator"

// now is the orchestrator's clock, to the millisecond that the store and
// the log keep.
func (o *Orchestrator) now() time.Time { return o.cfg.Now().UTC().Truncate(time.Millisecond) }

// receipt is a time of receipt as a request keeps it: in UTC, to the
// millisecond; now when t is zero (not given).
func (o *Orchestrator) receipt(t time.Time) time.Time {
	if t.IsZero() {
		return o.now()
	}
	return t.UTC().Truncate(time.Millisecond)
}

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
func (o *Orchestrator) Submit(ctx context.Context, nr NewRequest) (r *store.Request, created bool, err error) {
	now := o.now()
	received := o.receipt(nr.ReceivedAt)
	spec, pol, specJSON, err := o.policyFor(nr.Tenant, received)
	if err != nil {
		return nil, false, fmt.Errorf("submit: %w", err)
	}
	var logSpec *deadline.Spec
	if specJSON != "" {
		logSpec = &spec
	}
	r = &store.Request{
		ID:             newID(now),
		Tenant:         nr.Tenant,
		Type:           nr.Type,
		State:          store.StatePendingVerification,
		SubjectEmail:   nr.Email,
		SubjectUserID:  nr.UserID,
		SubjectHash:    pseudonym.Hash(o.cfg.HashKey, subjectKey(nr.Email, nr.UserID)),
		Source:         nr.Source,
		SourceRef:      nr.SourceRef,
		ReceivedAt:     received.UTC(),
		Deadline:       pol.Deadline(received),
		DeadlinePolicy: specJSON,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	fresh := *r
	submit := func(tx store.Tx) error {
		f := fresh // a retried transaction starts from the request as it came
		r, created = &f, false
		if nr.SourceRef != "" {
			prev, err := tx.RequestBySourceRef(nr.SourceRef)
			if err == nil {
				r = prev
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		created = true
		if err := tx.InsertRequest(r); err != nil {
			return err
		}
		received, dl := r.ReceivedAt, r.Deadline
		if err := o.record(tx, proof.Entry{RequestID: r.ID, Event: proof.EventCreated, At: now, Tenant: r.Tenant, Type: lifecycle.Type(r.Type),
			SubjectHash: r.SubjectHash, ReceivedAt: &received, Deadline: &dl, DeadlinePolicy: logSpec, Detail: "source=" + r.Source}); err != nil {
			return err
		}
		for _, sys := range o.cfg.Systems {
			if err := tx.InsertTask(&store.Task{ID: events.TaskID(r.ID, sys), RequestID: r.ID, System: sys, State: store.TaskPending}); err != nil {
				return err
			}
		}
		if nr.Verified {
			return o.open(tx, r, now)
		}
		return nil
	}
	err = o.store.Tx(ctx, submit)
	if errors.Is(err, store.ErrDuplicate) && nr.SourceRef != "" {
		// Another replica stored the same event's request meanwhile: the
		// second look finds it.
		err = o.store.Tx(ctx, submit)
	}
	if err != nil {
		return nil, false, fmt.Errorf("submit: %w", err)
	}
	if created {
		o.m.created.WithLabelValues(r.Type, r.Source).Inc()
		o.log.Info("request created", "request_id", r.ID, "type", r.Type, "tenant", r.Tenant, "source", r.Source, "state", r.State)
		o.wakeRelay()
	}
	return r, created, nil
}

func subjectKey(email, userID string) string {
	if email != "" {
		return "email:" + pseudonym.Normalize(email)
	}
	return "user_id:" + userID
}

// Verify records that the subject's identity was checked and opens the
// request. It returns store.ErrNotFound or ErrConflict.
func (o *Orchestrator) Verify(ctx context.Context, id string) (*store.Request, error) {
	var r *store.Request
	err := o.store.Tx(ctx, func(tx store.Tx) error {
		var err error
		if r, err = tx.Request(id); err != nil {
			return err
		}
		if r.State != store.StatePendingVerification {
			return fmt.Errorf("request is %s, not %s: %w", r.State, store.StatePendingVerification, ErrConflict)
		}
		return o.open(tx, r, o.now())
	})
	if err != nil {
		return nil, err
	}
	o.log.Info("request verified", "request_id", r.ID)
	o.wakeRelay()
	return r, nil
}

// open moves a request to open and enqueues its first attempt per system.
func (o *Orchestrator) open(tx store.Tx, r *store.Request, now time.Time) error {
	r.State, r.UpdatedAt = store.StateOpen, now
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	if err := o.record(tx, proof.Entry{RequestID: r.ID, Event: proof.EventVerified, At: now}); err != nil {
		return err
	}
	tasks, err := tx.Tasks(r.ID)
	if err != nil {
		return err
	}
	for _, k := range tasks {
		if err := o.attempt(tx, r, k, now); err != nil {
			return err
		}
	}
	return nil
}

// attempt enqueues the next attempt of task k. Its wait for an answer, which
// doubles with each attempt (exponential backoff), starts when the relay has
// published it.
func (o *Orchestrator) attempt(tx store.Tx, r *store.Request, k *store.Task, now time.Time) error {
	k.Attempts++
	k.State = store.TaskPublished
	k.NextAttemptAt = time.Time{}
	if err := tx.UpdateTask(k); err != nil {
		return err
	}
	t := o.task(r, k, true)
	msg, err := events.TaskMessage(t, source, now)
	if err != nil {
		return err
	}
	if err := o.record(tx, proof.Entry{RequestID: r.ID, Event: proof.EventTaskPublished, At: now, System: k.System, Attempt: k.Attempts}); err != nil {
		return err
	}
	return tx.Enqueue(store.OutboxMessage{Topic: events.TaskTopic(k.System), ID: msg.ID, Type: msg.Type, Key: msg.Key, Payload: msg.Data, Created: now,
		TaskID: k.ID, Wait: o.wait(k.Attempts - k.RoundStart)})
}

func (o *Orchestrator) task(r *store.Request, k *store.Task, withSubject bool) *lethev1.Task {
	action := lethev1.Action_ACTION_ERASE
	if r.Type == TypeExport {
		action = lethev1.Action_ACTION_EXPORT
	}
	t := &lethev1.Task{
		RequestId: r.ID,
		TaskId:    k.ID,
		System:    k.System,
		Action:    action,
		Tenant:    r.Tenant,
		Deadline:  timestamppb.New(r.Deadline),
		Attempt:   uint32(k.Attempts),
	}
	if withSubject {
		t.Subject = &lethev1.Subject{Email: r.SubjectEmail, UserId: r.SubjectUserID}
	}
	return t
}

// recordReceipt applies one receipt. Receipts that do not fit a task of
// ours are rejected; a second answer to a finished task is ignored. Neither
// changes any state.
func (o *Orchestrator) recordReceipt(ctx context.Context, rc *lethev1.Receipt, raw []byte) error {
	// A receipt must be signed by a key registered for its system: a forged
	// or misrouted answer changes nothing.
	if err := proof.VerifyReceipt(o.keys.KeySet(), rc); err != nil {
		reason := rejectReason(err)
		o.m.rejected.WithLabelValues(reason).Inc()
		o.log.Warn("receipt rejected", "reason", reason, "task_id", rc.GetTaskId(), "system", rc.GetSystem(), "key_id", rc.GetKeyId())
		return nil
	}
	now := o.now()
	var verdict, reason string
	var wake bool
	var received *time.Time // of the request a receipt was accepted for
	err := o.store.Tx(ctx, func(tx store.Tx) error {
		verdict, reason, wake = "", "", false
		k, err := tx.Task(rc.GetTaskId())
		if errors.Is(err, store.ErrNotFound) {
			verdict, reason = "rejected", "unknown_task"
			return nil
		}
		if err != nil {
			return err
		}
		r, err := tx.Request(k.RequestID)
		if err != nil {
			return err
		}
		if rc.GetSystem() != k.System || rc.GetRequestId() != k.RequestID || rc.GetAction() != o.task(r, k, false).GetAction() {
			verdict, reason = "rejected", "mismatch"
			return nil
		}
		failed, retryable, detail := rc.GetOutcome() == lethev1.Outcome_OUTCOME_FAILED, rc.GetRetryable(), rc.GetDetail()
		if rc.GetOutcome() == lethev1.Outcome_OUTCOME_RETAINED && rc.GetRetainUntil() != nil && !rc.GetRetainUntil().AsTime().After(now) {
			// Data kept past its own retention date is no lawful answer (a
			// connector whose clock is behind, or a replayed old receipt
			// at a deferred erasure): try again.
			failed, retryable, detail = true, true, "retained past its retain-until date"
		}
		switch {
		case k.State == store.TaskAnswered || k.State == store.TaskDeferred:
			verdict, reason = "ignored", "duplicate"
			return nil
		case k.State == store.TaskPending:
			verdict, reason = "rejected", "not_published"
			return nil
		case failed && (k.State == store.TaskDeadLetter || k.State == store.TaskRetrying || int(rc.GetAttempt()) < k.Attempts):
			// Already failed, or a failure of an attempt that a newer one replaced.
			verdict, reason = "ignored", "stale"
			return nil
		}
		if failed {
			o.m.failed.WithLabelValues(k.System).Inc()
			if retryable && k.Attempts-k.RoundStart < o.cfg.MaxAttempts {
				verdict = "retrying"
				k.State, k.Detail, k.NextAttemptAt = store.TaskRetrying, detail, now.Add(o.wait(k.Attempts-k.RoundStart))
				if err := tx.UpdateTask(k); err != nil {
					return err
				}
				return o.record(tx, proof.Entry{RequestID: r.ID, Event: proof.EventTaskFailed, At: now, System: k.System, Attempt: k.Attempts, Detail: "retryable"})
			}
			verdict, wake = "dead_letter", true
			return o.deadLetter(tx, r, k, "failed: "+detail, now)
		}
		// A success is taken even after the task was dead-lettered: the
		// system did the work late (after a broker outage, say), and the
		// request can still be fulfilled.
		verdict = "accepted"
		k.State = store.TaskAnswered
		k.Outcome = outcomeName(rc.GetOutcome())
		k.AnsweredAt = now
		k.Detail = ""
		k.LegalBasis = rc.GetLegalBasis()
		k.RetainUntil = time.Time{}
		if rc.GetRetainUntil() != nil {
			k.RetainUntil = rc.GetRetainUntil().AsTime()
		}
		k.Counts = map[string]int64{}
		for _, c := range rc.GetCounts() {
			k.Counts[c.GetCategory()] = c.GetCount()
		}
		k.Remaining = rc.GetRemaining()
		k.ExportSHA256, k.ExportData, k.Receipt = rc.GetExportSha256(), rc.GetExportData(), raw
		k.NextAttemptAt = time.Time{}
		if err := tx.UpdateTask(k); err != nil {
			return err
		}
		h, err := proof.ReceiptHash(rc)
		if err != nil {
			return err
		}
		if err := o.record(tx, proof.Entry{RequestID: r.ID, Event: proof.EventReceiptAccepted, At: now, System: k.System,
			Attempt: int(rc.GetAttempt()), Outcome: lifecycle.Outcome(k.Outcome), ReceiptHash: fmt.Sprintf("%x", h)}); err != nil {
			return err
		}
		wake, received = true, &r.ReceivedAt
		return o.complete(tx, r, now)
	})
	if err != nil {
		return fmt.Errorf("record receipt: %w", err)
	}
	log := o.log.With("request_id", rc.GetRequestId(), "task_id", rc.GetTaskId(), "system", rc.GetSystem(), "outcome", outcomeName(rc.GetOutcome()))
	switch verdict {
	case "rejected":
		o.m.rejected.WithLabelValues(reason).Inc()
		log.Warn("receipt rejected", "reason", reason)
	case "ignored":
		o.m.ignored.WithLabelValues(reason).Inc()
		log.Debug("receipt ignored", "reason", reason)
	case "accepted":
		o.m.receipts.WithLabelValues(rc.GetSystem(), outcomeName(rc.GetOutcome())).Inc()
		o.m.lastReceipt.WithLabelValues(rc.GetSystem()).Set(float64(now.Unix()))
		if received != nil {
			o.m.completion.WithLabelValues(rc.GetSystem()).Observe(rc.GetConnectorTime().AsTime().Sub(*received).Seconds())
		}
		log.Info("receipt accepted")
	default:
		log.Warn("system failed the task", "verdict", verdict)
	}
	if wake {
		o.wakeRelay()
	}
	return nil
}

// deadLetter gives up on a task: it goes to the system's dead-letter topic
// (without the subject) and the request may end as failed.
func (o *Orchestrator) deadLetter(tx store.Tx, r *store.Request, k *store.Task, why string, now time.Time) error {
	k.State, k.Detail, k.NextAttemptAt = store.TaskDeadLetter, why, time.Time{}
	if err := tx.UpdateTask(k); err != nil {
		return err
	}
	data, err := proto.Marshal(o.task(r, k, false))
	if err != nil {
		return err
	}
	if err := tx.Enqueue(store.OutboxMessage{Topic: events.DeadLetterTopic(k.System), ID: "dead:" + k.ID, Type: events.TypeDeadLetter, Key: r.ID, Payload: data, Created: now}); err != nil {
		return err
	}
	if err := o.record(tx, proof.Entry{RequestID: r.ID, Event: proof.EventDeadLetter, At: now, System: k.System, Attempt: k.Attempts}); err != nil {
		return err
	}
	o.m.deadLetters.WithLabelValues(k.System).Inc()
	o.log.Error("task dead-lettered", "request_id", r.ID, "system", k.System, "attempts", k.Attempts)
	return o.complete(tx, r, now)
}

// complete ends the request once every system has answered or run out of
// attempts, and drops the subject's identifiers, which only the keyed hash
// outlives. A failed request is completed again when a late answer turns
// its last dead letter into a success.
//
// An erasure that a system answered "retained until" a date (billing's
// invoices, kept by law) is answered in full but not over: the request
// ends as partially_retained, its task is deferred to that date, when a
// follow-up erasure runs, and the subject's identifiers stay until then
// (the follow-up needs them; the retaining system holds them anyway).
func (o *Orchestrator) complete(tx store.Tx, r *store.Request, now time.Time) error {
	tasks, err := tx.Tasks(r.ID)
	if err != nil {
		return err
	}
	state := store.StateFulfilled
	var deferred []*store.Task
	for _, k := range tasks {
		switch k.State {
		case store.TaskAnswered:
			if r.Type == TypeErasure && k.Outcome == "retained" && k.RetainUntil.After(now) {
				deferred = append(deferred, k)
			}
		case store.TaskDeferred:
			deferred = append(deferred, nil) // deferred in an earlier round
		case store.TaskDeadLetter:
			state = store.StateFailed
		default:
			return nil
		}
	}
	if state == store.StateFulfilled && len(deferred) > 0 {
		state = store.StatePartiallyRetained
	}
	firstEnd := r.CompletedAt.IsZero()
	r.State, r.UpdatedAt, r.CompletedAt = state, now, now
	if r.AnsweredAt.IsZero() && state != store.StateFailed {
		r.AnsweredAt = now
	}
	if state != store.StatePartiallyRetained {
		r.SubjectEmail, r.SubjectUserID = "", ""
	}
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	if err := tx.ForgetTasks(r.ID); err != nil {
		return err
	}
	for _, k := range deferred {
		if k == nil {
			continue
		}
		k.State, k.NextAttemptAt = store.TaskDeferred, k.RetainUntil
		if err := tx.UpdateTask(k); err != nil {
			return err
		}
		until := k.RetainUntil
		if err := o.record(tx, proof.Entry{RequestID: r.ID, Event: proof.EventErasureDeferred, At: now, System: k.System, RetainUntil: &until}); err != nil {
			return err
		}
		o.log.Info("erasure deferred", "request_id", r.ID, "system", k.System, "retain_until", until)
	}
	event, result := proof.EventFulfilled, "within_objective"
	switch {
	case state == store.StateFailed:
		event, result = proof.EventFailed, "failed"
	case state == store.StatePartiallyRetained:
		event = proof.EventPartiallyRetained
	}
	if result != "failed" && now.Sub(r.ReceivedAt) > o.cfg.Objective {
		result = "late"
	}
	if firstEnd {
		o.m.ended.WithLabelValues(r.Type, result).Inc()
	}
	if err := o.record(tx, proof.Entry{RequestID: r.ID, Event: event, At: now}); err != nil {
		return err
	}
	o.log.Info("request completed", "request_id", r.ID, "state", state)
	return o.issue(tx, r, tasks, now)
}

// record appends an entry to the transparency log, in the transaction that
// makes the change it records.
func (o *Orchestrator) record(tx store.Tx, e proof.Entry) error {
	_, err := tx.AppendLog(e.RequestID, e.Encode())
	return err
}

// issue signs a tree head over the log as it now stands and issues the
// request's certificate: its answers, its log entries with their inclusion
// proofs, all signed by the orchestrator. It is issued again when the
// request changes after it ended (a late answer, a deferred erasure done,
// a notice delivered).
func (o *Orchestrator) issue(tx store.Tx, r *store.Request, tasks []*store.Task, now time.Time) error {
	size, err := tx.LogSize()
	if err != nil {
		return err
	}
	root, err := tlog.TreeHash(size, tx)
	if err != nil {
		return fmt.Errorf("tree hash: %w", err)
	}
	spec, _, err := requestPolicy(r)
	if err != nil {
		return err
	}
	c := proof.Certificate{
		RequestID: r.ID, Tenant: r.Tenant, Type: lifecycle.Type(r.Type), SubjectHash: r.SubjectHash,
		ReceivedAt: r.ReceivedAt, Deadline: r.Deadline, DeadlinePolicy: spec, CompletedAt: r.CompletedAt, State: lifecycle.State(r.State),
		Log: proof.LogProof{TreeHead: proof.SignTreeHead(o.signer, size, root, now)},
	}
	if !r.AnsweredAt.IsZero() && !r.AnsweredAt.Equal(r.CompletedAt) {
		c.AnsweredAt = &r.AnsweredAt
	}
	for _, k := range tasks {
		if k.State != store.TaskAnswered && k.State != store.TaskDeferred {
			c.Systems = append(c.Systems, proof.SystemResult{System: k.System, Outcome: lifecycle.DeadLetter, Detail: k.Detail})
			continue
		}
		res, err := proof.SystemResultOf(k.Receipt)
		if err != nil {
			return err
		}
		c.Systems = append(c.Systems, res)
	}
	records, err := tx.RequestLog(r.ID)
	if err != nil {
		return err
	}
	entries := make([]proof.Entry, 0, len(records))
	for _, rec := range records {
		p, err := tlog.ProveRecord(size, rec.Index, tx)
		if err != nil {
			return fmt.Errorf("inclusion proof: %w", err)
		}
		c.Log.Entries = append(c.Log.Entries, proof.LoggedEntry{Index: rec.Index, Entry: rec.Data, Proof: p})
		e, err := proof.DecodeEntry(rec.Data)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	if !r.ExtendedAt.IsZero() {
		first, channels := proof.NoticeDeliveries(entries, proof.NoticeExtension)
		c.Extension = &proof.Extension{At: r.ExtendedAt, Reason: r.ExtensionReason, OriginalDeadline: r.OriginalDeadline,
			NoticeDeliveredAt: first, NoticeChannels: channels}
	}
	c.DeadlineMet = !c.RespondedAt().After(c.EffectiveDeadline())
	c.Sign(o.signer)
	return tx.PutCertificate(r.ID, c.Encode(), now)
}

// retryDue re-attempts tasks whose wait for an answer is over, or
// dead-letters them once out of attempts. It returns how many it handled.
func (o *Orchestrator) retryDue(ctx context.Context) (int, error) {
	now := o.now()
	n := 0
	err := o.store.Tx(ctx, func(tx store.Tx) error {
		due, err := tx.DueTasks(now, 100)
		if err != nil {
			return err
		}
		n = len(due)
		for _, k := range due {
			r, err := tx.Request(k.RequestID)
			if err != nil {
				return err
			}
			if k.State == store.TaskDeferred {
				// The retention is over: the follow-up erasure gets
				// attempts of its own.
				o.log.Info("deferred erasure due", "request_id", r.ID, "system", k.System)
				k.RoundStart, k.Detail = k.Attempts, ""
				if err := o.attempt(tx, r, k, now); err != nil {
					return err
				}
				continue
			}
			if k.Attempts-k.RoundStart >= o.cfg.MaxAttempts {
				n := k.Attempts - k.RoundStart
				why := fmt.Sprintf("no answer after %d attempts", n)
				if k.Detail != "" {
					why = fmt.Sprintf("failed %d attempts, last: %s", n, k.Detail)
				}
				if err := o.deadLetter(tx, r, k, why, now); err != nil {
					return err
				}
				continue
			}
			o.m.retries.WithLabelValues(k.System).Inc()
			o.log.Warn("retrying task", "request_id", r.ID, "system", k.System, "attempt", k.Attempts+1)
			if err := o.attempt(tx, r, k, now); err != nil {
				return err
			}
		}
		return nil
	})
	if n > 0 {
		o.wakeRelay()
	}
	return n, err
}

func outcomeName(o lethev1.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
}
