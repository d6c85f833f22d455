package orchestrator

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

// wait is how long attempt n waits for an answer before the next attempt:
// RetryInitial doubled per attempt, up to RetryMax, with no jitter so that
// the schedule can be read off the request.
func (o *Orchestrator) wait(n int) time.Duration {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(o.cfg.RetryInitial),
		backoff.WithMaxInterval(o.cfg.RetryMax),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0))
	d := b.NextBackOff()
	for i := 1; i < n; i++ {
		d = b.NextBackOff()
	}
	return d
}

// relayLease is how long a relay holds the outbox messages it claimed: if
// it dies, another replica's relay publishes them after that.
const relayLease = 10 * time.Second

// relay publishes the outbox in order. A message is marked published only
// after the broker stored it; a crash in between publishes it again with the
// same id, which the broker de-duplicates and the connectors ignore.
func (o *Orchestrator) relay(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	defer func() {
		if err := o.store.ReleaseOutbox(context.WithoutCancel(ctx), o.id); err != nil {
			o.log.Warn("outbox leases not released; they run out by themselves", "err", err)
		}
	}()
	for {
		n, err := o.relayOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			o.log.Error("outbox relay", "err", err)
		}
		if n > 0 && err == nil {
			continue // there may be more
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.relayUp:
		case <-tick.C:
		}
	}
}

func (o *Orchestrator) relayOnce(ctx context.Context) (int, error) {
	now := o.now()
	msgs, err := o.store.ClaimOutbox(ctx, o.id, 100, now, now.Add(relayLease))
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	seqs := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		msg := &bus.Message{ID: m.ID, Type: m.Type, Source: source, Time: m.Created, Key: m.Key, Data: m.Payload}
		b := backoff.WithContext(backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(100*time.Millisecond),
			backoff.WithMaxInterval(5*time.Second),
			backoff.WithMaxElapsedTime(0)), ctx)
		err := backoff.RetryNotify(func() error { return o.cfg.Bus.Publish(ctx, m.Topic, msg) }, b,
			func(err error, wait time.Duration) {
				o.m.publishErrors.Inc()
				o.log.Warn("publish failed, retrying", "topic", m.Topic, "wait", wait, "err", err)
			})
		if err != nil {
			break // cancelled
		}
		o.m.published.WithLabelValues(m.Type).Inc()
		seqs = append(seqs, m.Seq)
	}
	if len(seqs) == 0 {
		return 0, ctx.Err()
	}
	return len(seqs), o.store.MarkPublished(context.WithoutCancel(ctx), seqs, o.cfg.Now().UTC())
}

// scan re-attempts due tasks every ScanInterval.
func (o *Orchestrator) scan(ctx context.Context) error {
	tick := time.NewTicker(o.cfg.ScanInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for {
			n, err := o.retryDue(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				o.log.Error("retry scan", "err", err)
				break // try again at the next tick
			}
			if n < 100 {
				break
			}
		}
	}
}

func (o *Orchestrator) consumeReceipts(ctx context.Context) error {
	return o.cfg.Bus.Consume(ctx, events.TopicReceipts, "orchestrator", func(ctx context.Context, msg *bus.Message) error {
		rc := &lethev1.Receipt{}
		if err := events.Decode(msg, rc, events.TypeReceipt); err != nil {
			o.m.rejected.WithLabelValues("malformed").Inc()
			o.log.Warn("receipt rejected", "reason", "malformed", "ce_id", msg.ID)
			return err
		}
		return o.recordReceipt(ctx, rc, msg.Data)
	})
}

// accountDeletedRef is the source reference of the request an account
// deletion event opens.
func accountDeletedRef(eventID string) string { return sourceAccountDeleted + ":" + eventID }

// consumeAccountDeletions opens a verified erasure request for each
// account.deleted event; the same event twice opens one request.
func (o *Orchestrator) consumeAccountDeletions(ctx context.Context) error {
	return o.cfg.Bus.Consume(ctx, events.TopicAccountDeleted, "orchestrator", func(ctx context.Context, msg *bus.Message) error {
		ev := &lethev1.AccountDeleted{}
		if err := events.Decode(msg, ev, events.TypeAccountDeleted); err != nil {
			o.log.Warn("account deletion dropped", "reason", "malformed", "ce_id", msg.ID)
			return err
		}
		nr := NewRequest{
			Type:      TypeErasure,
			Tenant:    ev.GetTenant(),
			Email:     ev.GetSubject().GetEmail(),
			UserID:    ev.GetSubject().GetUserId(),
			Verified:  true, // the account's own deletion is the identity check
			Source:    sourceAccountDeleted,
			SourceRef: accountDeletedRef(ev.GetEventId()),
		}
		if ev.GetDeletedAt() != nil {
			nr.ReceivedAt = ev.GetDeletedAt().AsTime()
		}
		if err := validate(nr); err != nil || ev.GetEventId() == "" {
			o.log.Warn("account deletion dropped", "reason", "invalid", "ce_id", msg.ID)
			return bus.Permanent(errors.Join(errors.New("invalid account.deleted event"), err))
		}
		r, created, err := o.Submit(ctx, nr)
		if err != nil {
			return err
		}
		o.log.Info("account deletion received", "request_id", r.ID, "new_request", created)
		return nil
	})
}
