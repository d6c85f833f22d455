package orchestrator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// Channels a notice is delivered on.
const (
	channelBus     = "bus"
	channelWebhook = "webhook"
)

// noticeLease is how long a notifier holds the notices it claimed: if it
// dies, another replica's delivers them after that.
const noticeLease = 30 * time.Second

// noticeBatch is how many notices a notifier claims at once.
const noticeBatch = 20

// enqueueExtensionNotice writes the notice of an extension to the person
// into the notification outbox, in the transaction that extends.
func (o *Orchestrator) enqueueExtensionNotice(tx store.Tx, r *store.Request, now time.Time) error {
	b, err := proto.Marshal(&lethev1.ExtensionNotice{
		RequestId:        r.ID,
		Tenant:           r.Tenant,
		Subject:          &lethev1.Subject{Email: r.SubjectEmail, UserId: r.SubjectUserID},
		ReceivedAt:       timestamppb.New(r.ReceivedAt),
		OriginalDeadline: timestamppb.New(r.OriginalDeadline),
		Deadline:         timestamppb.New(r.Deadline),
		Reason:           r.ExtensionReason,
		ExtendedAt:       timestamppb.New(r.ExtendedAt),
	})
	if err != nil {
		return err
	}
	return tx.InsertNotice(&store.Notice{ID: proof.NoticeExtension + ":" + r.ID, RequestID: r.ID, Kind: proof.NoticeExtension,
		Payload: b, CreatedAt: now, NextAttemptAt: now})
}

// wakeNotifier tells the notifier there is a notice to deliver.
func (o *Orchestrator) wakeNotifier() {
	select {
	case o.noticeUp <- struct{}{}:
	default:
	}
}

// notify delivers due notices until ctx is cancelled.
func (o *Orchestrator) notify(ctx context.Context) error {
	tick := time.NewTicker(o.cfg.ScanInterval)
	defer tick.Stop()
	for {
		n, err := o.deliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Error("notice delivery", "err", err)
		}
		if n == noticeBatch && err == nil {
			continue // there may be more
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.noticeUp:
		case <-tick.C:
		}
	}
}

// deliverDue delivers the notices due now and returns how many it tried.
func (o *Orchestrator) deliverDue(ctx context.Context) (int, error) {
	now := o.now()
	due, err := o.store.ClaimNotices(ctx, o.id, noticeBatch, now, now.Add(noticeLease))
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, n := range due {
		errs = append(errs, o.deliver(ctx, n))
	}
	return len(due), errors.Join(errs...)
}

// deliver tries each channel the notice has not reached yet, then records
// what happened: a delivery as evidence in the transparency log (and, for a
// request already ended, in a re-issued certificate), a failure as a retry
// with backoff. A crash between delivering and recording delivers again:
// with the same ce-id, which the bus de-duplicates and a webhook can too.
func (o *Orchestrator) deliver(ctx context.Context, n *store.Notice) error {
	if n.Payload == nil {
		return nil
	}
	msg := &lethev1.ExtensionNotice{}
	if err := proto.Unmarshal(n.Payload, msg); err != nil {
		return fmt.Errorf("notice %s: %w", n.ID, err)
	}
	bm, err := events.ExtensionNoticeMessage(msg, source, n.CreatedAt)
	if err != nil {
		return err
	}
	tried := map[string]error{}
	if n.BusAt.IsZero() {
		// Bounded, as the webhook is: a broker that does not answer must
		// not hold up the other channel and the other notices.
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		tried[channelBus] = o.cfg.Bus.Publish(pctx, events.TopicNotices, bm)
		cancel()
	}
	if o.cfg.NoticeWebhook != "" && n.WebhookAt.IsZero() {
		tried[channelWebhook] = o.postNotice(ctx, bm.ID, bm.Type, bm.Time, msg)
	}
	if ctx.Err() != nil {
		return nil // shutting down: the lease runs out and the notice is tried again
	}
	var delivered []string
	err = o.store.Tx(context.WithoutCancel(ctx), func(tx store.Tx) error {
		delivered = nil
		now := o.now()
		r, err := tx.Request(n.RequestID) // request first, as every transaction locks
		if err != nil {
			return err
		}
		cur, err := tx.Notice(n.ID)
		if err != nil {
			return err
		}
		var failures []string
		for _, ch := range []string{channelBus, channelWebhook} {
			err, ok := tried[ch]
			if !ok {
				continue
			}
			at := &cur.BusAt
			if ch == channelWebhook {
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
			if err := o.record(tx, proof.Entry{RequestID: cur.RequestID, Event: proof.EventNoticeDelivered, At: now, Notice: cur.Kind, Channel: ch}); err != nil {
				return err
			}
		}
		switch {
		case !cur.BusAt.IsZero() && (o.cfg.NoticeWebhook == "" || !cur.WebhookAt.IsZero()):
			// Delivered everywhere: the copy of the person's contact goes.
			cur.Payload, cur.NextAttemptAt, cur.LastError = nil, time.Time{}, ""
		case len(failures) > 0:
			cur.Attempts++
			cur.LastError = failures[0]
			cur.NextAttemptAt = now.Add(o.wait(cur.Attempts))
		}
		if err := tx.UpdateNotice(cur); err != nil {
			return err
		}
		if len(delivered) > 0 && !r.CompletedAt.IsZero() {
			// The certificate of an ended request shows the delivery too.
			tasks, err := tx.Tasks(r.ID)
			if err != nil {
				return err
			}
			return o.issue(tx, r, tasks, now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record notice delivery: %w", err)
	}
	for ch, terr := range tried {
		result := "delivered"
		if terr != nil {
			result = "failed"
			o.log.Warn("notice not delivered, will retry", "request_id", n.RequestID, "kind", n.Kind, "channel", ch, "err", terr)
		}
		o.m.notices.WithLabelValues(ch, result).Inc()
	}
	for _, ch := range delivered {
		o.log.Info("notice delivered", "request_id", n.RequestID, "kind", n.Kind, "channel", ch)
	}
	return nil
}

// postNotice POSTs a notice to the webhook as a CloudEvent in binary mode
// (ce-* headers, the notice as JSON), signed with the orchestrator's key
// (Lethe-Signature, see proof.VerifyNotice; the public key is at /v1/keys). Any 2xx is delivery.
// Its errors name no one: they are logged and stored.
func (o *Orchestrator) postNotice(ctx context.Context, id, typ string, at time.Time, msg proto.Message) error {
	body, err := protojson.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.cfg.NoticeWebhook, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", id)
	req.Header.Set("ce-type", typ)
	req.Header.Set("ce-source", source)
	req.Header.Set("ce-time", at.UTC().Format(time.RFC3339Nano))
	req.Header.Set("Lethe-Signature", proof.SignNotice(o.signer, body))
	resp, err := o.httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("webhook timed out")
		}
		return errors.New("webhook unreachable")
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}
