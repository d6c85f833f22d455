// Package outbox runs the loop that empties a leased queue of the store:
// the task relay (outbox messages to the bus) and the notice sender
// (notices to data subjects) are both one [Loop]. Several orchestrator
// replicas may share the queue: each claims a batch under a lease, so
// none delivers what another holds, and a replica that dies hands its
// batch on when the lease runs out.
package outbox

import (
	"context"
	"log/slog"
	"time"
)

// Signal wakes a [Loop] early: the lifecycle sends it after a commit that
// gave the loop work, so a message goes out at once rather than at the
// next tick.
type Signal chan struct{}

// NewSignal returns a signal that keeps one wake-up while the loop is busy.
func NewSignal() Signal { return make(Signal, 1) }

// Wake wakes the loop, or does nothing if a wake-up is pending already.
func (s Signal) Wake() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// Loop claims batches of a queue under a lease and delivers them.
type Loop[T any] struct {
	// Name names the queue in logs ("outbox relay", "notices").
	Name string
	// Owner names this replica's leases.
	Owner string
	// Batch is how many items are claimed at once; a full batch is
	// followed at once by the next claim.
	Batch int
	// Lease is how long a claim holds items: if the loop dies, another
	// replica's loop claims them after that.
	Lease time.Duration
	// Interval is how often the queue is looked at without a Wake.
	Interval time.Duration
	Wake     Signal
	Now      func() time.Time
	Log      *slog.Logger
	// Claim leases up to limit items due at now until until.
	Claim func(ctx context.Context, owner string, limit int, now, until time.Time) ([]T, error)
	// Deliver delivers a claimed batch and records what was delivered. A
	// crash between the two delivers again, under the same ids, which the
	// receivers de-duplicate.
	Deliver func(ctx context.Context, batch []T) error
	// Release gives up the loop's leases when it stops, so that another
	// replica takes them at once.
	Release func(ctx context.Context, owner string) error
}

// Run delivers until ctx is cancelled, then releases its leases.
func (l *Loop[T]) Run(ctx context.Context) error {
	tick := time.NewTicker(l.Interval)
	defer tick.Stop()
	defer func() {
		if err := l.Release(context.WithoutCancel(ctx), l.Owner); err != nil {
			l.Log.Warn(l.Name+": leases not released; they run out by themselves", "err", err)
		}
	}()
	for {
		n, err := l.once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			l.Log.Error(l.Name, "err", err)
		}
		if n == l.Batch && err == nil {
			continue // there may be more
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.Wake:
		case <-tick.C:
		}
	}
}

// once claims one batch and delivers it; it returns the batch's size.
func (l *Loop[T]) once(ctx context.Context) (int, error) {
	now := l.Now()
	batch, err := l.Claim(ctx, l.Owner, l.Batch, now, now.Add(l.Lease))
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	return len(batch), l.Deliver(ctx, batch)
}
