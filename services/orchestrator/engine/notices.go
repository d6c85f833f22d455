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

// NoticeAckWait is how long a notice handed to the bus waits for a
// mailer's acknowledgement before it is published again: the notice
// stream's age limit (natsbus.NoticeMaxAge, Kafka's default retention),
// after which the broker has dropped it.
const NoticeAckWait = 7 * 24 * time.Hour

// RecordDeliveries records what became of a notice's delivery on each
// channel tried (nil: it went through). The webhook's 2xx is delivery. The
// bus only took the notice: it is delivered there when a mailer
// acknowledges it ([Engine.RecordAcknowledgement]), and published again if
// none comes within NoticeAckWait. A failure is retried with backoff. It
// returns the channels it recorded as newly delivered.
func (e *Engine) RecordDeliveries(ctx context.Context, n *store.Notice, tried map[string]error) ([]string, error) {
	var delivered []string
	err := e.change(ctx, func(tx store.Tx, fx *effects) error {
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
			switch {
			case !ok:
			case err != nil:
				failures = append(failures, ch+": "+err.Error())
			case ch == proof.ChannelBus:
				cur.BusPublishedAt = now
			case cur.WebhookAt.IsZero(): // not recorded by another replica meanwhile
				cur.WebhookAt = now
				delivered = append(delivered, ch)
				if err := record(ctx, tx, proof.Entry{RequestID: cur.RequestID, Event: proof.EventNoticeDelivered, At: now, Notice: cur.Kind, Channel: ch}); err != nil {
					return err
				}
			}
		}
		if len(failures) > 0 {
			cur.Attempts++
			cur.LastError = failures[0]
		}
		return e.settleNotice(ctx, tx, fx, r, cur, len(failures) > 0, len(delivered) > 0, now)
	})
	return delivered, err
}

// RecordAcknowledgement records a mailer's acknowledgement that it handed
// the notice id to the person: the notice is delivered on the bus. It
// reports whether this was news (false for an acknowledgement seen before).
func (e *Engine) RecordAcknowledgement(ctx context.Context, requestID, id string) (bool, error) {
	var news bool
	err := e.change(ctx, func(tx store.Tx, fx *effects) error {
		news = false
		now := e.Now()
		r, err := tx.Request(ctx, requestID)
		if err != nil {
			return err
		}
		cur, err := tx.Notice(ctx, id)
		if err != nil {
			return err
		}
		if cur.RequestID != requestID {
			return store.ErrNotFound
		}
		if !cur.BusAt.IsZero() {
			return nil
		}
		cur.BusAt, news = now, true
		if err := record(ctx, tx, proof.Entry{RequestID: cur.RequestID, Event: proof.EventNoticeDelivered, At: now, Notice: cur.Kind, Channel: proof.ChannelBus}); err != nil {
			return err
		}
		return e.settleNotice(ctx, tx, fx, r, cur, false, true, now)
	})
	if news {
		e.m.Notices.WithLabelValues(proof.ChannelBus, "delivered").Inc()
	}
	return news, err
}

// settleNotice stores n after a delivery round or an acknowledgement: once
// it reached every channel its copy of the person's contact goes; until
// then it is tried again, soon after a failure, or, waiting for a mailer's
// acknowledgement, once the broker has dropped it. A delivery to a request
// already ended re-issues its certificate, which shows the notice.
func (e *Engine) settleNotice(ctx context.Context, tx store.Tx, fx *effects, r *store.Request, n *store.Notice, failed, delivered bool, now time.Time) error {
	switch {
	case e.deliveredEverywhere(n):
		n.Payload, n.NextAttemptAt, n.LastError = nil, time.Time{}, ""
	case failed:
		n.NextAttemptAt = now.Add(e.wait(n.Attempts))
	default:
		n.NextAttemptAt, n.LastError = time.Time{}, ""
	}
	if n.BusAt.IsZero() && !n.BusPublishedAt.IsZero() {
		if republish := n.BusPublishedAt.Add(NoticeAckWait); n.NextAttemptAt.IsZero() || republish.Before(n.NextAttemptAt) {
			n.NextAttemptAt = republish
		}
	}
	if err := tx.UpdateNotice(ctx, n); err != nil {
		return err
	}
	if delivered && !r.CompletedAt.IsZero() {
		return e.issue(ctx, tx, fx, r)
	}
	return nil
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
