package engine

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// enqueueExtensionNotice writes the notice of an extension to the person
// into the notification outbox, in the transaction that extends.
func (e *Engine) enqueueExtensionNotice(ctx context.Context, tx store.Tx, r *store.Request, now time.Time) error {
	subject, err := e.subject(r)
	if err != nil {
		return err
	}
	b, err := e.sealNotice(&lethev1.ExtensionNotice{
		RequestId:        r.ID,
		Tenant:           r.Tenant,
		Subject:          subject,
		ReceivedAt:       timestamppb.New(r.ReceivedAt),
		OriginalDeadline: timestamppb.New(r.OriginalDeadline),
		Deadline:         timestamppb.New(r.Deadline),
		Reason:           r.ExtensionReason,
		ExtendedAt:       timestamppb.New(r.ExtendedAt),
	})
	if err != nil {
		return err
	}
	return tx.InsertNotice(ctx, &store.Notice{ID: proof.NoticeExtension + ":" + r.ID, RequestID: r.ID, Kind: proof.NoticeExtension,
		Payload: b, CreatedAt: now, NextAttemptAt: now})
}

// RecordDeliveries records what became of a notice's delivery on each
// channel tried (nil: delivered): a delivery as evidence in the
// transparency log (and, for a request already ended, in a re-issued
// certificate), a failure as a retry with backoff. Once the notice reached
// every channel, its copy of the person's contact is dropped. It returns
// the channels it recorded as newly delivered.
func (e *Engine) RecordDeliveries(ctx context.Context, n *store.Notice, tried map[string]error) ([]string, error) {
	var delivered []string
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		delivered = nil
		now := e.Now()
		r, err := tx.Request(ctx, n.RequestID) // request first, as every transaction locks
		if err != nil {
			return err
		}
		cur, err := tx.Notice(ctx, n.ID)
		if err != nil {
			return err
		}
		var failures []string
		for _, ch := range []string{proof.ChannelBus, proof.ChannelWebhook} {
			err, ok := tried[ch]
			if !ok {
				continue
			}
			at := &cur.BusAt
			if ch == proof.ChannelWebhook {
				at = &cur.WebhookAt
			}
			if err != nil {
				failures = append(failures, ch+": "+err.Error())
				continue
			}
			if !at.IsZero() {
				continue // another replica recorded it meanwhile
			}
			*at = now
			delivered = append(delivered, ch)
			if err := record(ctx, tx, proof.Entry{RequestID: cur.RequestID, Event: proof.EventNoticeDelivered, At: now, Notice: cur.Kind, Channel: ch}); err != nil {
				return err
			}
		}
		switch {
		case e.deliveredEverywhere(cur):
			// The copy of the person's contact goes.
			cur.Payload, cur.NextAttemptAt, cur.LastError = nil, time.Time{}, ""
		case len(failures) > 0:
			cur.Attempts++
			cur.LastError = failures[0]
			cur.NextAttemptAt = now.Add(e.wait(cur.Attempts))
		}
		if err := tx.UpdateNotice(ctx, cur); err != nil {
			return err
		}
		if len(delivered) > 0 && !r.CompletedAt.IsZero() {
			// The certificate of an ended request shows the delivery too.
			tasks, err := tx.Tasks(ctx, r.ID)
			if err != nil {
				return err
			}
			return e.issue(ctx, tx, r, tasks, now)
		}
		return nil
	})
	return delivered, err
}

// deliveredEverywhere reports whether n reached every notice channel.
func (e *Engine) deliveredEverywhere(n *store.Notice) bool {
	for _, ch := range e.cfg.NoticeChannels {
		if (ch == proof.ChannelBus && n.BusAt.IsZero()) || (ch == proof.ChannelWebhook && n.WebhookAt.IsZero()) {
			return false
		}
	}
	return true
}
