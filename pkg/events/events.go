// Package events names Lethe's topics and CloudEvents types and turns the
// protobuf messages of proto/lethe/v1 into bus messages and back.
package events

import (
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lethe-dev/lethe/pkg/bus"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

// CloudEvents types.
const (
	TypeTaskErase       = "dev.lethe.task.erase.v1"
	TypeTaskExport      = "dev.lethe.task.export.v1"
	TypeTaskSweep       = "dev.lethe.task.sweep.v1"
	TypeTaskReapply     = "dev.lethe.task.reapply.v1"
	TypeReceipt         = "dev.lethe.receipt.v1"
	TypeDeadLetter      = "dev.lethe.task.dead.v1"
	TypeAccountDeleted  = "dev.lethe.account.deleted.v1"
	TypeNoticeExtension = "dev.lethe.notice.extension.v1"
	TypeNoticeDelivered = "dev.lethe.notice.delivered.v1"
)

// Topics that are not per system.
const (
	TopicReceipts       = "receipt.v1"
	TopicAccountDeleted = "event.account-deleted"
	// TopicNotices carries notices to data subjects for whoever delivers
	// them (a mailer).
	TopicNotices = "notice.v1"
	// TopicNoticeDelivered carries a mailer's acknowledgements of the
	// notices it handed to the people they tell.
	TopicNoticeDelivered = "event.notice-delivered"
)

// TaskTopic is the topic a system's connector consumes.
func TaskTopic(system string) string { return "task." + system }

// DeadLetterTopic receives the tasks of a system that ran out of attempts.
func DeadLetterTopic(system string) string { return "dead." + system }

// TaskID is the idempotency key of one system's part of one request.
func TaskID(requestID, system string) string { return requestID + "." + system }

// TaskMessage wraps a task. Its id names the task and the attempt, so a
// re-publish of the same attempt is de-duplicated by the broker while a new
// attempt is not.
func TaskMessage(t *lethev1.Task, source string, now time.Time) (*bus.Message, error) {
	typ := TypeTaskErase
	switch t.GetAction() {
	case lethev1.Action_ACTION_EXPORT:
		typ = TypeTaskExport
	case lethev1.Action_ACTION_SWEEP:
		typ = TypeTaskSweep
	case lethev1.Action_ACTION_REAPPLY:
		typ = TypeTaskReapply
	}
	return message(t, t.GetTaskId()+"#"+strconv.Itoa(int(t.GetAttempt())), typ, source, t.GetRequestId(), now)
}

// ReceiptMessage wraps a receipt; re-sending the same answer keeps its id.
func ReceiptMessage(r *lethev1.Receipt, source string, now time.Time) (*bus.Message, error) {
	id := fmt.Sprintf("receipt:%s#%d:%s", r.GetTaskId(), r.GetAttempt(), r.GetOutcome())
	return message(r, id, TypeReceipt, source, r.GetRequestId(), now)
}

// AccountDeletedMessage wraps an account deletion event.
func AccountDeletedMessage(e *lethev1.AccountDeleted, source string, now time.Time) (*bus.Message, error) {
	return message(e, "account-deleted:"+e.GetEventId(), TypeAccountDeleted, source, e.GetEventId(), now)
}

// ExtensionNoticeMessage makes the bus message of an extension notice; its
// id is the same on every publication, so the bus drops a repeat.
func ExtensionNoticeMessage(n *lethev1.ExtensionNotice, source string, now time.Time) (*bus.Message, error) {
	return message(n, "notice:extension:"+n.GetRequestId(), TypeNoticeExtension, source, n.GetRequestId(), now)
}

// NoticeDeliveredMessage wraps a mailer's acknowledgement of a notice.
func NoticeDeliveredMessage(n *lethev1.NoticeDelivered, source string, now time.Time) (*bus.Message, error) {
	return message(n, "notice-delivered:"+n.GetNoticeId(), TypeNoticeDelivered, source, n.GetRequestId(), now)
}

func message(m proto.Message, id, typ, source, key string, now time.Time) (*bus.Message, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	return &bus.Message{ID: id, Type: typ, Source: source, Time: now, Key: key, Data: data}, nil
}

// Decode reads a bus message of the wanted CloudEvents type into m. A message
// of another type or one that does not decode is a permanent error: no
// redelivery will change it.
func Decode(msg *bus.Message, m proto.Message, types ...string) error {
	ok := len(types) == 0
	for _, t := range types {
		ok = ok || msg.Type == t
	}
	if !ok {
		return bus.Permanent(fmt.Errorf("unexpected event type %q", msg.Type))
	}
	if err := proto.Unmarshal(msg.Data, m); err != nil {
		return bus.Permanent(fmt.Errorf("decode %s: %w", msg.Type, err))
	}
	return nil
}
