package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/events"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// A task that failed or ran out of attempts (a dead letter) is not the end
// of the story: an operator re-drives it once its system is fixed (Retry,
// Replay), or records that they fixed it by hand (Resolve). Until every
// failure is resolved one way or the other, a failed request keeps its
// subject's identifiers, sealed: a retry has something to send.

// Errors of a replay.
var (
	ErrNotFailed = fmt.Errorf("only a task that failed or ran out of attempts (dead_letter) can be retried or resolved: %w", ErrConflict)
	// ErrIdentifiersGone is a retry of a request that ended before
	// failed requests kept their identifiers.
	ErrIdentifiersGone = fmt.Errorf("the request's identifiers were dropped when it ended (before failed requests kept them): resolve the task by hand, or submit a new request: %w", ErrConflict)
	// ErrBadNote is a resolution without a note, or with one too long.
	ErrBadNote = errors.New("bad note")
)

// Retry opens a new round of attempts for a's dead-lettered task of
// system: the request's state stays as it is until the round ends, when
// the request ends again (its certificate re-issued with the round in its
// log). It returns store.ErrNotFound, ErrNotFailed or ErrIdentifiersGone.
func (e *Engine) Retry(ctx context.Context, requestID, system string, by proof.Actor) (*store.Request, error) {
	var r *store.Request
	err := e.change(ctx, func(tx store.Tx, fx *effects) error {
		var err error
		r, err = e.retry(ctx, tx, fx, requestID, system, by)
		return err
	})
	if err != nil {
		return nil, err
	}
	e.cfg.Relay.Wake()
	return r, nil
}

func (e *Engine) retry(ctx context.Context, tx store.Tx, fx *effects, requestID, system string, by proof.Actor) (*store.Request, error) {
	r, k, err := e.deadTask(ctx, tx, requestID, system)
	if err != nil {
		return nil, err
	}
	if r.SealedSubject == nil && r.ClearEmail == "" && r.ClearUserID == "" {
		return nil, ErrIdentifiersGone
	}
	now := e.Now()
	if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventTaskRetried, At: now, System: k.System, Attempt: k.Attempts + 1, Actor: &by}); err != nil {
		return nil, err
	}
	// A round of its own, as a deferred erasure's follow-up has: the count
	// of attempts goes on, so each attempt's message id stays new.
	k.RoundStart, k.Detail, k.DeadAt = k.Attempts, "", time.Time{}
	fx.retried = append(fx.retried, taskRef{r.ID, k.System, k.Attempts + 1})
	fx.wake = true
	return r, e.reattempt(ctx, tx, r, k, now)
}

// Resolve records that an operator fixed a dead-lettered task by hand:
// the system's outcome is "resolved" (no receipt; the log records who and
// the note's hash) and the request ends again by what its systems answered.
// note says what was done, without personal data.
func (e *Engine) Resolve(ctx context.Context, requestID, system string, by proof.Actor, note string) (*store.Request, error) {
	if strings.TrimSpace(note) == "" {
		return nil, fmt.Errorf("a note saying what was done is required: %w", ErrBadNote)
	}
	if err := checkNote(note); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrBadNote)
	}
	var r *store.Request
	err := e.change(ctx, func(tx store.Tx, fx *effects) error {
		var k *store.Task
		var err error
		if r, k, err = e.deadTask(ctx, tx, requestID, system); err != nil {
			return err
		}
		now := e.Now()
		k.State, k.Outcome, k.AnsweredAt, k.DeadAt, k.NextAttemptAt = lifecycle.TaskAnswered, lifecycle.Resolved, now, time.Time{}, time.Time{}
		k.Detail = "resolved by hand: " + note
		if err := tx.UpdateTask(ctx, k); err != nil {
			return err
		}
		if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventTaskResolved, At: now, System: k.System,
			Actor: &by, NoteSHA256: noteHash(note)}); err != nil {
			return err
		}
		return e.complete(ctx, tx, fx, r, now)
	})
	if err != nil {
		return nil, err
	}
	e.log.Info("task resolved by hand", "request_id", r.ID, "system", system, "by", by.ID)
	return r, nil
}

// deadTask reads, locked, a request and its dead-lettered task of system.
func (e *Engine) deadTask(ctx context.Context, tx store.Tx, requestID, system string) (*store.Request, *store.Task, error) {
	r, err := tx.Request(ctx, requestID)
	if err != nil {
		return nil, nil, err
	}
	k, err := tx.Task(ctx, events.TaskID(r.ID, system))
	if err != nil {
		return nil, nil, err
	}
	if k.State != lifecycle.TaskDeadLetter {
		return nil, nil, ErrNotFailed
	}
	return r, k, nil
}

// Replayed is what a bulk replay did: the requests whose task got a new
// round, and those it could not re-drive (their identifiers dropped by an
// older version), left for a resolution by hand.
type Replayed struct {
	Retried, Skipped []string
}

// Replay re-drives the dead letters q selects, each in a transaction of
// its own (one that cannot be retried is skipped, the rest go on).
func (e *Engine) Replay(ctx context.Context, q store.DeadLetterQuery, by proof.Actor) (Replayed, error) {
	var out Replayed
	dead, err := e.cfg.Store.DeadLetters(ctx, q)
	if err != nil {
		return out, err
	}
	for _, d := range dead {
		_, err := e.Retry(ctx, d.RequestID, d.System, by)
		switch {
		case errors.Is(err, ErrIdentifiersGone), errors.Is(err, ErrNotFailed):
			out.Skipped = append(out.Skipped, d.RequestID)
		case err != nil:
			return out, err
		default:
			out.Retried = append(out.Retried, d.RequestID)
		}
	}
	return out, nil
}
