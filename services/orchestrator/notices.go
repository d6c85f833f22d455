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

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/outbox"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// notifier delivers the notices to data subjects that the lifecycle wrote
// into the notification outbox.
func (o *Orchestrator) notifier() *outbox.Loop[*store.Notice] {
	return &outbox.Loop[*store.Notice]{
		Name: "notice delivery", Owner: o.id, Batch: 20, Lease: 30 * time.Second, Interval: o.cfg.ScanInterval,
		Wake: o.noticeUp, Now: o.engine.Now, Log: o.log,
		Claim: o.cfg.Store.ClaimNotices, Release: o.cfg.Store.ReleaseNotices,
		Deliver: func(ctx context.Context, batch []*store.Notice) error {
			var errs []error
			for _, n := range batch {
				errs = append(errs, o.deliver(ctx, n))
			}
			return errors.Join(errs...)
		},
	}
}

// deliver tries each channel the notice has not reached yet (on the bus:
// not handed to it, or handed so long ago that the broker dropped it
// unacknowledged), then has the lifecycle record what happened
// (engine.RecordDeliveries). A crash between delivering and recording
// delivers again: with the same ce-id, which the bus de-duplicates and a
// webhook can too.
func (o *Orchestrator) deliver(ctx context.Context, n *store.Notice) error {
	if n.Payload == nil {
		return nil
	}
	msg := &lethev1.ExtensionNotice{}
	if err := o.engine.OpenNotice(n, msg); err != nil {
		return err
	}
	tried := map[string]error{}
	if n.BusAt.IsZero() && (n.BusPublishedAt.IsZero() || !o.engine.Now().Before(n.BusPublishedAt.Add(engine.NoticeAckWait))) {
		tried[proof.ChannelBus] = o.publishNotice(ctx, msg, n.CreatedAt)
	}
	if o.cfg.NoticeWebhook != "" && n.WebhookAt.IsZero() {
		bm, err := events.ExtensionNoticeMessage(msg, engine.Source, n.CreatedAt)
		if err != nil {
			return err
		}
		tried[proof.ChannelWebhook] = o.postNotice(ctx, bm.ID, bm.Type, bm.Time, msg)
	}
	if ctx.Err() != nil {
		return nil // shutting down: released, the notice is tried again
	}
	delivered, err := o.engine.RecordDeliveries(context.WithoutCancel(ctx), n, tried)
	if err != nil {
		return fmt.Errorf("record notice delivery: %w", err)
	}
	for ch, terr := range tried {
		result := "delivered"
		switch {
		case terr != nil:
			result = "failed"
			o.log.Warn("notice not delivered, will retry", "request_id", n.RequestID, "kind", n.Kind, "channel", ch, "err", terr)
		case ch == proof.ChannelBus:
			result = "published" // delivered once a mailer acknowledges it
			o.log.Info("notice published, waiting for a mailer's acknowledgement", "request_id", n.RequestID, "kind", n.Kind)
		}
		o.m.Notices.WithLabelValues(ch, result).Inc()
	}
	for _, ch := range delivered {
		o.log.Info("notice delivered", "request_id", n.RequestID, "kind", n.Kind, "channel", ch)
	}
	return nil
}

// publishNotice publishes a notice on the bus with its subject sealed to
// the mailer: the broker and the topic's readers see no identifier.
func (o *Orchestrator) publishNotice(ctx context.Context, msg *lethev1.ExtensionNotice, created time.Time) error {
	to, err := o.engine.Keys().SealKeyFor(proof.Mailer, o.engine.Now())
	if err != nil {
		return errors.New("no mailer key registered (lethectl keys add data/mailer/signing.key.pub)")
	}
	sealed := proto.Clone(msg).(*lethev1.ExtensionNotice)
	if sealed.SealedSubject, err = proof.SealSubject(to, msg.GetSubject()); err != nil {
		return err
	}
	sealed.Subject = nil
	bm, err := events.ExtensionNoticeMessage(sealed, engine.Source, created)
	if err != nil {
		return err
	}
	// Bounded, as the webhook is: a broker that does not answer must not
	// hold up the other channel and the other notices.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return o.cfg.Bus.Publish(ctx, events.TopicNotices, bm)
}

// consumeAcknowledgements records each mailer's acknowledgement of a
// notice it handed to the person, once its signature verifies with a key
// registered for the mailer.
func (o *Orchestrator) consumeAcknowledgements(ctx context.Context) error {
	return o.cfg.Bus.Consume(ctx, events.TopicNoticeDelivered, "orchestrator", func(ctx context.Context, msg *bus.Message) error {
		ack := &lethev1.NoticeDelivered{}
		if err := events.Decode(msg, ack, events.TypeNoticeDelivered); err != nil {
			o.log.Warn("notice acknowledgement dropped", "reason", "malformed", "ce_id", msg.ID)
			return err
		}
		if err := proof.VerifyNoticeDelivered(o.engine.Keys(), ack, o.engine.Now()); err != nil {
			o.m.EventsRefused.Inc()
			o.log.Warn("notice acknowledgement dropped", "reason", "not_signed_by_the_mailer", "key_id", ack.GetKeyId(), "ce_id", msg.ID)
			return bus.Permanent(fmt.Errorf("notice acknowledgement: %w", err))
		}
		news, err := o.engine.RecordAcknowledgement(ctx, ack.GetRequestId(), ack.GetNoticeId())
		if errors.Is(err, store.ErrNotFound) {
			o.log.Warn("notice acknowledgement dropped", "reason", "unknown_notice", "ce_id", msg.ID)
			return bus.Permanent(err)
		}
		if err != nil {
			return err
		}
		if news {
			o.log.Info("notice delivered", "request_id", ack.GetRequestId(), "channel", proof.ChannelBus, "by", "mailer")
		}
		return nil
	})
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
	req.Header.Set("ce-source", engine.Source)
	req.Header.Set("ce-time", at.UTC().Format(time.RFC3339Nano))
	req.Header.Set("Lethe-Signature", proof.SignNotice(o.cfg.Signer, body))
	resp, err := o.cfg.HTTPClient.Do(req)
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
