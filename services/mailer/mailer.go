// Package mailer hands the notices Lethe owes data subjects to the people
// they tell, and acknowledges each to the orchestrator: a notice counts as
// delivered on the bus (and shows so in the certificate) only once a
// mailer says it handed it on, not when it was published.
//
// It consumes notice.v1 as the NATS user "mailer" (consumer group
// [Group]), opens the notice's subject, which the orchestrator sealed to
// its sealing key, gives the mail to a [Sender] (SMTP, [SMTP]), and then
// publishes a NoticeDelivered signed with its key, which the orchestrator's
// keys file registers for the system "mailer" (proof.Mailer). A mail that
// cannot be sent is not acknowledged: the bus delivers the notice again.
package mailer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// Group is the consumer group the mailer reads notices as; its NATS user
// may consume as this group only (natsauth.MailerGroup).
const Group = "mailer"

// Source is the CloudEvents source of its acknowledgements.
const Source = "lethe/mailer"

// Mail is one message to a data subject.
type Mail struct {
	// NoticeID names the notice ("extension:<request id>"): a sender may
	// de-duplicate by it, since the bus may deliver a notice twice.
	NoticeID string
	To       string
	Subject  string
	Body     string
}

// Sender hands a mail on to whoever reaches the person.
type Sender interface {
	Send(ctx context.Context, m Mail) error
}

// Config is what a mailer needs.
type Config struct {
	Bus bus.Bus
	// Seal opens the notices' subjects, sealed to it.
	Seal *proof.SealKey
	// Signer signs the acknowledgements; its key is registered for the
	// system "mailer" in the orchestrator's keys file.
	Signer *proof.Signer
	Sender Sender
	Logger *slog.Logger
	Now    func() time.Time
}

// Run consumes notices until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Bus == nil || cfg.Seal == nil || cfg.Signer == nil || cfg.Sender == nil {
		return errors.New("mailer: a bus, a sealing key, a signing key and a sender are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg.Bus.Consume(ctx, events.TopicNotices, Group, func(ctx context.Context, msg *bus.Message) error {
		return handle(ctx, cfg, msg)
	})
}

// handle mails one notice and acknowledges it. Its log lines and errors
// name the request, never the person.
func handle(ctx context.Context, cfg Config, msg *bus.Message) error {
	n := &lethev1.ExtensionNotice{}
	if err := events.Decode(msg, n, events.TypeNoticeExtension); err != nil {
		cfg.Logger.Warn("notice dropped", "reason", "malformed", "ce_id", msg.ID)
		return bus.Permanent(err)
	}
	subject := n.GetSubject()
	if sealed := n.GetSealedSubject(); sealed != nil {
		var err error
		if subject, err = cfg.Seal.OpenSubject(sealed); err != nil {
			cfg.Logger.Warn("notice dropped", "reason", "not_sealed_to_us", "ce_id", msg.ID)
			return bus.Permanent(err)
		}
	}
	if subject.GetEmail() == "" {
		cfg.Logger.Warn("notice dropped", "reason", "no_email", "ce_id", msg.ID)
		return bus.Permanent(errors.New("notice without an email"))
	}
	id := strings.TrimPrefix(msg.ID, "notice:")
	if err := cfg.Sender.Send(ctx, extensionMail(id, subject.GetEmail(), n)); err != nil {
		cfg.Logger.Warn("notice not mailed, will retry", "request_id", n.GetRequestId(), "err", err)
		return fmt.Errorf("mail notice %s: %w", id, err)
	}
	ack := &lethev1.NoticeDelivered{NoticeId: id, RequestId: n.GetRequestId(), DeliveredAt: timestamppb.New(cfg.Now())}
	if err := proof.SignNoticeDelivered(cfg.Signer, ack); err != nil {
		return err
	}
	am, err := events.NoticeDeliveredMessage(ack, Source, cfg.Now())
	if err != nil {
		return err
	}
	// Mailed but not acknowledged (the bus down): the notice comes again
	// and is mailed again; the sender may drop it by its id.
	if err := cfg.Bus.Publish(ctx, events.TopicNoticeDelivered, am); err != nil {
		return fmt.Errorf("acknowledge notice %s: %w", id, err)
	}
	cfg.Logger.Info("notice mailed and acknowledged", "request_id", n.GetRequestId(), "notice", id)
	return nil
}

// extensionMail tells the person their request's deadline was extended,
// with the reasons (GDPR Art. 12(3)).
func extensionMail(id, to string, n *lethev1.ExtensionNotice) Mail {
	day := func(t *timestamppb.Timestamp) string { return t.AsTime().UTC().Format("2 January 2006") }
	var b strings.Builder
	fmt.Fprintf(&b, "We received your request (reference %s) on %s.\n\n", n.GetRequestId(), day(n.GetReceivedAt()))
	fmt.Fprintf(&b, "We need more time to complete it: we will answer by %s instead of %s,\n", day(n.GetDeadline()), day(n.GetOriginalDeadline()))
	fmt.Fprintf(&b, "as the GDPR (Article 12(3)) allows for the following reason:\n\n%s\n", n.GetReason())
	return Mail{NoticeID: id, To: to, Subject: "Your data protection request " + n.GetRequestId() + ": more time needed", Body: b.String()}
}
