package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// effects are what a transaction did that the world hears of: metrics,
// log lines, wake-ups. A transaction closure collects them; report tells
// them once the transaction has committed, so a rolled-back change counts
// nothing.
type effects struct {
	failed      []string // systems that answered a failure
	retried     []taskRef
	followUps   []taskRef // deferred erasures whose retention is over
	deadLetters []taskRef
	deferred    []deferral
	ended       []ending
	sweeps      []swept
	postponed   []taskRef // re-attempts postponed behind a system's backlog
	reached     *answeredTask
	wake        bool // the outbox has new messages
	certify     bool // a certificate waits to be issued
	forgot      bool // a request's subject identifiers were dropped
}

type taskRef struct {
	requestID, system string
	attempts          int
}

// answeredTask is a task its system answered: how far the system got.
type answeredTask struct {
	system    string
	seq       int64
	published time.Time
}

type deferral struct {
	requestID, system string
	until             time.Time
}

type ending struct {
	requestID string
	typ       lifecycle.Type
	state     lifecycle.State
	result    string // of lethe_orchestrator_requests_ended_total; "" when not the first end
}

// change runs fn in one transaction and, once it has committed, reports
// the effects fn gathered (report). fn starts from no effects each time it
// runs: a transaction may be run again.
func (e *Engine) change(ctx context.Context, fn func(tx store.Tx, fx *effects) error) error {
	var fx effects
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		fx = effects{}
		return fn(tx, &fx)
	})
	if err == nil {
		e.report(&fx)
	}
	return err
}

// report tells what a committed transaction did.
func (e *Engine) report(fx *effects) {
	for _, sys := range fx.failed {
		e.m.Failed.WithLabelValues(sys).Inc()
	}
	for _, t := range fx.retried {
		e.m.Retries.WithLabelValues(t.system).Inc()
		e.log.Warn("retrying task", "request_id", t.requestID, "system", t.system, "attempt", t.attempts)
	}
	for _, t := range fx.postponed {
		e.m.RetriesPostponed.WithLabelValues(t.system).Inc()
	}
	if a := fx.reached; a != nil {
		e.progress.answered(a.system, a.seq, a.published, e.Now())
	}
	for _, t := range fx.followUps {
		e.log.Info("deferred erasure due", "request_id", t.requestID, "system", t.system)
	}
	for _, t := range fx.deadLetters {
		e.m.DeadLetters.WithLabelValues(t.system).Inc()
		e.log.Error("task dead-lettered", "request_id", t.requestID, "system", t.system, "attempts", t.attempts)
	}
	for _, d := range fx.deferred {
		e.log.Info("erasure deferred", "request_id", d.requestID, "system", d.system, "retain_until", d.until)
	}
	for _, s := range fx.sweeps {
		e.reportSweep(s)
	}
	for _, end := range fx.ended {
		if end.result != "" {
			e.m.Ended.WithLabelValues(string(end.typ), end.result).Inc()
		}
		e.log.Info("request completed", "request_id", end.requestID, "state", end.state)
	}
	if fx.wake {
		e.cfg.Relay.Wake()
	}
	if fx.certify && e.cfg.Certifier != nil {
		e.cfg.Certifier.Wake()
	}
	if fx.forgot && e.cfg.Forgot != nil {
		e.cfg.Forgot.Wake()
	}
}

// Receipt verdicts.
const (
	verdictRejected   = "rejected"
	verdictIgnored    = "ignored"
	verdictAccepted   = "accepted"
	verdictRetrying   = string(lifecycle.TaskRetrying)
	verdictDeadLetter = string(lifecycle.TaskDeadLetter)
)

// RecordReceipt applies one receipt (raw is its protobuf as received).
// Receipts that do not fit a task of ours are rejected; a second answer
// to a finished task is ignored. Neither changes any state.
func (e *Engine) RecordReceipt(ctx context.Context, rc *lethev1.Receipt, raw []byte) error {
	// A receipt must be signed by a key registered for its system and
	// valid now, when it is received (the time the log records): a forged,
	// misrouted or back-dated answer changes nothing.
	now := e.Now()
	if err := proof.VerifyReceipt(e.Keys(), rc, now); err != nil {
		reason := rejectReason(err)
		e.m.Rejected.WithLabelValues(reason).Inc()
		e.log.Warn("receipt rejected", "reason", reason, "task_id", rc.GetTaskId(), "system", rc.GetSystem(), "key_id", rc.GetKeyId())
		return nil
	}
	outcome := lifecycle.OutcomeOf(rc.GetOutcome())
	var verdict, reason string
	var received time.Time // of the request a receipt was accepted for
	err := e.change(ctx, func(tx store.Tx, fx *effects) error {
		verdict, reason = "", ""
		k, err := tx.Task(ctx, rc.GetTaskId())
		if errors.Is(err, store.ErrNotFound) {
			verdict, reason = verdictRejected, "unknown_task"
			return nil
		}
		if err != nil {
			return err
		}
		r, err := tx.Request(ctx, k.RequestID)
		if err != nil {
			return err
		}
		if rc.GetSystem() != k.System || rc.GetRequestId() != k.RequestID || rc.GetAction() != r.Type.Action() || !r.Type.Answers(outcome) {
			verdict, reason = verdictRejected, "mismatch"
			return nil
		}
		// Any answer of the system to this task, a duplicate too, tells
		// that it got this far in its queue.
		fx.reached = &answeredTask{k.System, k.PublishedSeq, k.PublishedAt}
		if run, err := SweepOf(r); err != nil {
			return err
		} else if run != nil && !run.Matches(k.System, rc.GetSweep()) {
			// A receipt for another sweep than the run's (its policy,
			// cut-off or categories) answers nothing asked.
			verdict, reason = verdictRejected, "mismatch"
			return nil
		}
		if lift, err := LiftOf(r); err != nil {
			return err
		} else if (lift == nil && rc.GetRestrictionId() != "") || (lift != nil && rc.GetRestrictionId() != lift.Restriction) {
			// A lift of another restriction answers nothing asked.
			verdict, reason = verdictRejected, "mismatch"
			return nil
		}
		if scope, err := PurposesOf(r); err != nil {
			return err
		} else if (scope == nil && len(rc.GetCategories()) > 0) || (scope != nil && !scope.Matches(k.System, rc.GetCategories())) {
			// An erasure of other categories than the purposes' (more, or
			// everything) is not what was asked.
			verdict, reason = verdictRejected, "mismatch"
			return nil
		}
		failed, retryable, detail := outcome == lifecycle.OutcomeFailed, rc.GetRetryable(), rc.GetDetail()
		if outcome == lifecycle.Retained && rc.GetRetainUntil() != nil && !rc.GetRetainUntil().AsTime().After(now) {
			// Data kept past its own retention date is no lawful answer (a
			// connector whose clock is behind, or a replayed old receipt
			// at a deferred erasure): try again.
			failed, retryable, detail = true, true, "retained past its retain-until date"
		}
		switch {
		case k.State == lifecycle.TaskAnswered || k.State == lifecycle.TaskDeferred:
			verdict, reason = verdictIgnored, "duplicate"
			return nil
		case k.State == lifecycle.TaskPending:
			verdict, reason = verdictRejected, "not_published"
			return nil
		case failed && (k.State == lifecycle.TaskDeadLetter || k.State == lifecycle.TaskRetrying || int(rc.GetAttempt()) < k.Attempts):
			// Already failed, or a failure of an attempt that a newer one replaced.
			verdict, reason = verdictIgnored, "stale"
			return nil
		}
		if failed {
			fx.failed = append(fx.failed, k.System)
			if retryable && k.Attempts-k.RoundStart < e.cfg.MaxAttempts {
				verdict = verdictRetrying
				k.State, k.Detail, k.NextAttemptAt = lifecycle.TaskRetrying, detail, now.Add(e.wait(k.Attempts-k.RoundStart))
				if err := tx.UpdateTask(ctx, k); err != nil {
					return err
				}
				return record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventTaskFailed, At: now, System: k.System, Attempt: k.Attempts, Detail: "retryable"})
			}
			verdict = verdictDeadLetter
			return e.deadLetter(ctx, tx, fx, r, k, "failed: "+detail, now)
		}
		// A success is taken even after the task was dead-lettered: the
		// system did the work late (after a broker outage, say), and the
		// request can still be fulfilled.
		sealed, err := e.keepExport(rc)
		if err != nil {
			verdict, reason = verdictRejected, "bad_export"
			return nil
		}
		verdict = verdictAccepted
		// The receipt is kept without its export key, which is kept once,
		// sealed, in the task until the export is collected or expires.
		kept := proto.Clone(rc).(*lethev1.Receipt)
		kept.SealedExportKey, kept.ExportKey = nil, nil
		if raw, err = proto.Marshal(kept); err != nil {
			return err
		}
		answer(k, rc, outcome, raw, now)
		k.ExportKey = sealed
		if err := tx.UpdateTask(ctx, k); err != nil {
			return err
		}
		h, err := proof.ReceiptHash(rc)
		if err != nil {
			return err
		}
		if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventReceiptAccepted, At: now, System: k.System,
			Attempt: int(rc.GetAttempt()), Outcome: k.Outcome, ReceiptHash: fmt.Sprintf("%x", h)}); err != nil {
			return err
		}
		received, fx.wake = r.ReceivedAt, true
		return e.complete(ctx, tx, fx, r, now)
	})
	if err != nil {
		return fmt.Errorf("record receipt: %w", err)
	}
	log := e.log.With("request_id", rc.GetRequestId(), "task_id", rc.GetTaskId(), "system", rc.GetSystem(), "outcome", outcome)
	switch verdict {
	case verdictRejected:
		e.m.Rejected.WithLabelValues(reason).Inc()
		log.Warn("receipt rejected", "reason", reason)
	case verdictIgnored:
		e.m.Ignored.WithLabelValues(reason).Inc()
		log.Debug("receipt ignored", "reason", reason)
	case verdictAccepted:
		e.m.Receipts.WithLabelValues(rc.GetSystem(), string(outcome)).Inc()
		e.m.LastReceipt.WithLabelValues(rc.GetSystem()).Set(float64(now.Unix()))
		e.m.Completion.WithLabelValues(rc.GetSystem()).Observe(rc.GetConnectorTime().AsTime().Sub(received).Seconds())
		log.Info("receipt accepted")
	default:
		log.Warn("system failed the task", "verdict", verdict)
	}
	return nil
}

// answer records an accepted receipt in its task.
func answer(k *store.Task, rc *lethev1.Receipt, outcome lifecycle.Outcome, raw []byte, now time.Time) {
	k.State = lifecycle.TaskAnswered
	k.Outcome = outcome
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
	k.ExportSHA256, k.Receipt = rc.GetExportSha256(), raw
	k.NextAttemptAt = time.Time{}
}

// rejectReason names why a receipt's signature was refused, for the
// lethe_orchestrator_receipts_rejected_total counter.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, proof.ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, proof.ErrWrongSystem):
		return "wrong_system"
	case errors.Is(err, proof.ErrKeyNotValid):
		return "key_not_valid"
	case errors.Is(err, proof.ErrClockSkew):
		return "clock_skew"
	case errors.Is(err, proof.ErrBadTime):
		return "bad_time"
	default:
		return "bad_signature"
	}
}

// deadLetter gives up on a task: it goes to the system's dead-letter topic
// (without the subject) and the request may end as failed.
func (e *Engine) deadLetter(ctx context.Context, tx store.Tx, fx *effects, r *store.Request, k *store.Task, why string, now time.Time) error {
	k.State, k.Detail, k.NextAttemptAt, k.DeadAt = lifecycle.TaskDeadLetter, why, time.Time{}, now
	if err := tx.UpdateTask(ctx, k); err != nil {
		return err
	}
	data, err := proto.Marshal(task(r, k))
	if err != nil {
		return err
	}
	if err := tx.Enqueue(ctx, store.OutboxMessage{Topic: events.DeadLetterTopic(k.System), ID: "dead:" + k.ID, Type: events.TypeDeadLetter, Key: r.ID, Payload: data, Created: now}); err != nil {
		return err
	}
	if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventDeadLetter, At: now, System: k.System, Attempt: k.Attempts}); err != nil {
		return err
	}
	fx.deadLetters = append(fx.deadLetters, taskRef{r.ID, k.System, k.Attempts})
	fx.wake = true
	return e.complete(ctx, tx, fx, r, now)
}

// complete ends the request once every system has answered or run out of
// attempts (lifecycle.FinalState says how), and drops the subject's
// identifiers, which only the keyed hash outlives. A failed request is
// completed again when a late answer, a retry (Retry) or a resolution by
// hand (Resolve) turns its last dead letter into a success.
//
// An erasure that a system answered "retained until" a date (billing's
// invoices, kept by law) is answered in full but not over: the request
// ends as partially_retained, its task is deferred to that date, when a
// follow-up erasure runs, and the subject's identifiers stay until then
// (the follow-up needs them; the retaining system holds them anyway).
func (e *Engine) complete(ctx context.Context, tx store.Tx, fx *effects, r *store.Request, now time.Time) error {
	// Most answers leave another system to answer: counting is cheaper
	// than reading every task, receipts and all, on each of them.
	if open, err := tx.OpenTasks(ctx, r.ID); err != nil || open > 0 {
		return err
	}
	tasks, err := tx.Tasks(ctx, r.ID)
	if err != nil {
		return err
	}
	parts := make([]lifecycle.Part, 0, len(tasks))
	for _, k := range tasks {
		switch k.State {
		case lifecycle.TaskAnswered, lifecycle.TaskDeferred:
			parts = append(parts, lifecycle.Part{Outcome: k.Outcome, RetainUntil: k.RetainUntil})
		case lifecycle.TaskDeadLetter:
			parts = append(parts, lifecycle.Part{Outcome: lifecycle.DeadLetter})
		default:
			return nil // a system has yet to answer
		}
	}
	state := lifecycle.FinalState(r.Type, parts)
	firstEnd := r.CompletedAt.IsZero()
	r.State, r.UpdatedAt, r.CompletedAt = state, now, now
	if r.AnsweredAt.IsZero() && state != lifecycle.Failed {
		r.AnsweredAt = now
	}
	// A failed request keeps them too, sealed, for a retry once its
	// system is fixed (Retry), until every failure is resolved.
	if state != lifecycle.PartiallyRetained && state != lifecycle.Failed {
		forget(r)
		fx.forgot = true
	}
	if err := e.updateRequest(ctx, tx, r); err != nil {
		return err
	}
	if err := tx.ForgetTasks(ctx, r.ID); err != nil {
		return err
	}
	for i, k := range tasks {
		if k.State != lifecycle.TaskAnswered || !parts[i].Defers(r.Type) {
			continue // deferred in an earlier round, or nothing kept
		}
		k.State, k.NextAttemptAt = lifecycle.TaskDeferred, k.RetainUntil
		if err := tx.UpdateTask(ctx, k); err != nil {
			return err
		}
		until := k.RetainUntil
		if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventErasureDeferred, At: now, System: k.System, RetainUntil: &until}); err != nil {
			return err
		}
		fx.deferred = append(fx.deferred, deferral{r.ID, k.System, until})
	}
	event, result := proof.EventFulfilled, metrics.WithinObjective
	switch state {
	case lifecycle.Failed:
		event, result = proof.EventFailed, metrics.EndedFailed
	case lifecycle.PartiallyRetained:
		event = proof.EventPartiallyRetained
	}
	if state != lifecycle.Failed && now.Sub(r.ReceivedAt) > e.cfg.Objective {
		result = metrics.Late
	}
	if !firstEnd {
		result = ""
	}
	fx.ended = append(fx.ended, ending{r.ID, r.Type, state, result})
	if r.Type == lifecycle.Sweep {
		s, err := sweptRun(r, tasks, state, now)
		if err != nil {
			return err
		}
		fx.sweeps = append(fx.sweeps, s)
	}
	if r.Type == lifecycle.Export {
		if err := assembled(ctx, tx, r, tasks, now); err != nil {
			return err
		}
	}
	if r.Type == lifecycle.Lift && state == lifecycle.Fulfilled && firstEnd {
		if err := e.lifted(ctx, tx, fx, r, now); err != nil {
			return err
		}
	}
	if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: event, At: now}); err != nil {
		return err
	}
	return e.issue(ctx, tx, fx, r)
}
