package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/outbox"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// relay publishes the outbox in order. A message is marked published only
// after the broker stored it; a crash in between publishes it again with
// the same id, which the broker de-duplicates and the connectors ignore.
func (o *Orchestrator) relay() *outbox.Loop[store.OutboxMessage] {
	return &outbox.Loop[store.OutboxMessage]{
		Name: "outbox relay", Owner: o.id, Batch: 100, Lease: 10 * time.Second, Interval: 500 * time.Millisecond,
		Wake: o.relayUp, Now: o.engine.Now, Log: o.log,
		Claim: o.cfg.Store.ClaimOutbox, Release: o.cfg.Store.ReleaseOutbox, Deliver: o.publish,
	}
}

// publish publishes a batch, all in flight at once where the bus can (a
// bus.BatchPublisher), then each message that did not go retried alone
// with backoff until the broker takes it, and marks what was published.
func (o *Orchestrator) publish(ctx context.Context, batch []store.OutboxMessage) error {
	seqs := make([]int64, 0, len(batch))
	msgs := make([]bus.Outgoing, len(batch))
	for i, m := range batch {
		msgs[i] = bus.Outgoing{Topic: m.Topic, Msg: &bus.Message{ID: m.ID, Type: m.Type, Source: engine.Source, Time: m.Created, Key: m.Key, Data: m.Payload}}
	}
	sent := make([]bool, len(batch))
	if bp, ok := o.cfg.Bus.(bus.BatchPublisher); ok {
		for i, err := range bp.PublishBatch(ctx, msgs) {
			if sent[i] = err == nil; !sent[i] && ctx.Err() == nil {
				o.m.PublishErrors.Inc()
			}
		}
	}
	for i, m := range batch {
		if !sent[i] {
			msg := msgs[i].Msg
			b := backoff.WithContext(backoff.NewExponentialBackOff(
				backoff.WithInitialInterval(100*time.Millisecond),
				backoff.WithMaxInterval(5*time.Second),
				backoff.WithMaxElapsedTime(0)), ctx)
			err := backoff.RetryNotify(func() error { return o.cfg.Bus.Publish(ctx, m.Topic, msg) }, b,
				func(err error, wait time.Duration) {
					o.m.PublishErrors.Inc()
					o.log.Warn("publish failed, retrying", "topic", m.Topic, "wait", wait, "err", err)
				})
			if err != nil {
				break // cancelled
			}
		}
		o.m.Published.WithLabelValues(m.Type).Inc()
		seqs = append(seqs, m.Seq)
	}
	if len(seqs) == 0 {
		return ctx.Err()
	}
	return o.cfg.Store.MarkPublished(context.WithoutCancel(ctx), seqs, o.cfg.Now().UTC())
}

// scan re-attempts due tasks, and ends requests never verified, every
// ScanInterval.
func (o *Orchestrator) scan(ctx context.Context) error {
	tick := time.NewTicker(o.cfg.ScanInterval)
	defer tick.Stop()
	var exportsSwept time.Time // once a minute is enough for a 30-day expiry
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if _, err := o.engine.ExpireUnverified(ctx); err != nil && ctx.Err() == nil {
			o.log.Error("expiry of unverified requests", "err", err)
		}
		if now := time.Now(); now.Sub(exportsSwept) >= time.Minute {
			exportsSwept = now
			if _, err := o.engine.ExpireExports(ctx); err != nil && ctx.Err() == nil {
				o.log.Error("expiry of uncollected exports", "err", err)
			}
		}
		for {
			n, err := o.engine.RetryDue(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				o.log.Error("retry scan", "err", err)
				break // try again at the next tick
			}
			if n < engine.RetryBatch {
				break
			}
		}
	}
}

func (o *Orchestrator) consumeReceipts(ctx context.Context) error {
	return o.cfg.Bus.Consume(ctx, events.TopicReceipts, "orchestrator", func(ctx context.Context, msg *bus.Message) error {
		rc := &lethev1.Receipt{}
		if err := events.Decode(msg, rc, events.TypeReceipt); err != nil {
			o.m.Rejected.WithLabelValues("malformed").Inc()
			o.log.Warn("receipt rejected", "reason", "malformed", "ce_id", msg.ID)
			return err
		}
		return o.engine.RecordReceipt(ctx, rc, msg.Data)
	})
}

// consumeAccountDeletions opens a verified erasure request for each
// account.deleted event; the same event twice opens one request.
func (o *Orchestrator) consumeAccountDeletions(ctx context.Context) error {
	return o.cfg.Bus.Consume(ctx, events.TopicAccountDeleted, "orchestrator", func(ctx context.Context, msg *bus.Message) error {
		ev := &lethev1.AccountDeleted{}
		if err := events.Decode(msg, ev, events.TypeAccountDeleted); err != nil {
			o.log.Warn("account deletion dropped", "reason", "malformed", "ce_id", msg.ID)
			return err
		}
		subject := ev.GetSubject()
		if sealed := ev.GetSealedSubject(); sealed != nil {
			var err error
			if subject, err = o.cfg.SealKey.OpenSubject(sealed); err != nil {
				o.m.EventsRefused.Inc()
				o.log.Warn("account deletion dropped", "reason", "not_sealed_to_us", "ce_id", msg.ID)
				return bus.Permanent(fmt.Errorf("account.deleted: %w", err))
			}
		}
		nr := engine.NewRequest{
			Type:      lifecycle.Erasure,
			Tenant:    ev.GetTenant(),
			Email:     subject.GetEmail(),
			UserID:    subject.GetUserId(),
			Verified:  true, // the account's own deletion is the identity check
			Source:    engine.SourceAccountDeleted,
			SourceRef: engine.AccountDeletedRef(ev.GetEventId()),
		}
		if ev.GetDeletedAt() != nil {
			nr.ReceivedAt = ev.GetDeletedAt().AsTime()
		}
		if err := engine.Validate(nr); err != nil || ev.GetEventId() == "" {
			o.log.Warn("account deletion dropped", "reason", "invalid", "ce_id", msg.ID)
			return bus.Permanent(errors.Join(errors.New("invalid account.deleted event"), err))
		}
		// Signed by the service it comes from: bus credentials alone open
		// no erasure.
		if err := proof.VerifyAccountDeleted(o.engine.Keys(), ev, o.engine.Now()); err != nil {
			o.m.EventsRefused.Inc()
			o.log.Warn("account deletion dropped", "reason", "not_signed_by_its_source", "source", ev.GetSource(), "key_id", ev.GetKeyId(), "ce_id", msg.ID)
			return bus.Permanent(fmt.Errorf("account.deleted: %w", err))
		}
		r, created, err := o.engine.Submit(ctx, nr)
		if err != nil {
			return err
		}
		o.log.Info("account deletion received", "request_id", r.ID, "new_request", created)
		return nil
	})
}
