package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// RetryBatch is how many due tasks RetryDue handles in one transaction.
const RetryBatch = 100

// wait is how long attempt n waits for an answer before the next attempt:
// RetryInitial doubled per attempt, up to RetryMax, with no jitter so that
// the schedule can be read off the request.
func (e *Engine) wait(n int) time.Duration {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(e.cfg.RetryInitial),
		backoff.WithMaxInterval(e.cfg.RetryMax),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0))
	d := b.NextBackOff()
	for i := 1; i < n; i++ {
		d = b.NextBackOff()
	}
	return d
}

// reattempt is attempt for a task met alone, its request's identifiers
// opened for it.
func (e *Engine) reattempt(ctx context.Context, tx store.Tx, r *store.Request, k *store.Task, now time.Time) error {
	subject, err := e.subject(r)
	if err != nil {
		return err
	}
	return e.attempt(ctx, tx, r, identity{subject: subject}, k, tx.UpdateTask, now)
}

// RetryDue re-attempts tasks whose wait for an answer is over, or
// dead-letters them once out of attempts, and starts the follow-up of
// deferred erasures whose retention is over. It returns how many tasks it
// handled (RetryBatch at most).
func (e *Engine) RetryDue(ctx context.Context) (int, error) {
	now := e.Now()
	n := 0
	err := e.change(ctx, func(tx store.Tx, fx *effects) error {
		due, err := tx.DueTasks(ctx, now, RetryBatch)
		if err != nil {
			return err
		}
		n = len(due)
		for _, k := range due {
			r, err := tx.Request(ctx, k.RequestID)
			if err != nil {
				return err
			}
			if k.State == lifecycle.TaskDeferred {
				// The retention is over: the follow-up erasure gets
				// attempts of its own.
				k.RoundStart, k.Detail = k.Attempts, ""
				fx.followUps = append(fx.followUps, taskRef{r.ID, k.System, k.Attempts + 1})
				if err := e.reattempt(ctx, tx, r, k, now); err != nil {
					return err
				}
				continue
			}
			tries := k.Attempts - k.RoundStart
			if k.State == lifecycle.TaskPublished {
				if until, ok := e.progress.postpone(k.System, k.PublishedSeq, k.PublishedAt, now, e.wait(tries)); ok {
					// Queued behind others, not lost: no attempt is used.
					k.NextAttemptAt = until
					fx.postponed = append(fx.postponed, taskRef{r.ID, k.System, k.Attempts})
					if err := tx.UpdateTask(ctx, k); err != nil {
						return err
					}
					continue
				}
			}
			if tries >= e.cfg.MaxAttempts {
				why := fmt.Sprintf("no answer after %d attempts", tries)
				if k.Detail != "" {
					why = fmt.Sprintf("failed %d attempts, last: %s", tries, k.Detail)
				}
				if err := e.deadLetter(ctx, tx, fx, r, k, why, now); err != nil {
					return err
				}
				continue
			}
			fx.retried = append(fx.retried, taskRef{r.ID, k.System, k.Attempts + 1})
			if err := e.reattempt(ctx, tx, r, k, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		e.cfg.Relay.Wake()
	}
	return n, nil
}
